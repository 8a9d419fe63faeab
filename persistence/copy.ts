// Copying every document's log and snapshots from one store to another
// (SQLite to PostgreSQL and back), rows as they are: seqs, times, users,
// display names, instances and version names intact. Resumable: per document, only snapshots the target lacks
// and entries beyond its last seq are written, each page in one transaction,
// so an interrupted copy run again carries on where it stopped.

import type { EventStore, LogTransfer } from './event-store.js';

export interface CopyProgress {
  doc: string;
  /** Index of the document among all of them, from 0. */
  index: number;
  documents: number;
  /** Entries copied so far, over all documents. */
  entries: number;
}

export interface CopyReport {
  documents: number;
  /** Entries written by this run (not those the target held already). */
  entries: number;
  snapshots: number;
}

type Store = EventStore & LogTransfer;

const PAGE = 2000;

export async function copyStore(from: Store, to: Store, options: { onProgress?: (progress: CopyProgress) => void } = {}): Promise<CopyReport> {
  const docs = await from.documents();
  const report: CopyReport = { documents: docs.length, entries: 0, snapshots: 0 };
  for (const [index, doc] of docs.entries()) {
    options.onProgress?.({ doc, index, documents: docs.length, entries: report.entries });
    const source = await from.info(doc);
    if (source === null) continue;
    // Snapshots first: where the source's retention pruned the start of the
    // log, the entries continue from a snapshot the target must hold.
    const held = new Set((await to.info(doc))?.snapshots.map((s) => s.seq) ?? []);
    for (const snapshot of await from.snapshotRecords(doc)) {
      if (held.has(snapshot.seq)) continue;
      await to.importSnapshot(doc, snapshot);
      report.snapshots += 1;
    }
    let after = (await to.info(doc))?.seq ?? 0;
    for (;;) {
      const page = await from.entries(doc, { afterSeq: after, limit: PAGE });
      if (page.length === 0) break;
      const last = page[page.length - 1].seq;
      await to.importEntries(doc, page, last);
      report.entries += page.length;
      after = last;
      options.onProgress?.({ doc, index, documents: docs.length, entries: report.entries });
    }
    // A document whose every entry was pruned still has its last seq.
    if (after < source.seq) await to.importEntries(doc, [], source.seq);
    // Names replace a name at the same seq, so copying them again changes nothing.
    for (const name of await from.versionNames(doc)) await to.nameVersion(doc, name);
  }
  return report;
}
