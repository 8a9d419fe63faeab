// Copying every document's log and snapshots from one store to another
// (SQLite to PostgreSQL and back), rows as they are: seqs, times, users,
// display names, instances and version names intact. Resumable: per document, only snapshots the target lacks
// and entries beyond its last seq are written, each page in one transaction,
// so an interrupted copy run again carries on where it stopped. A document
// the target already holds with a different history (its entries are not the
// source's, or its log goes further) is left alone and reported: entries of
// one history appended to another would not apply.

import type { EventStore, LogTransfer } from './event-store.js';

export interface CopyProgress {
  doc: string;
  /** Index of the document among all of them, from 0. */
  index: number;
  documents: number;
  /** Entries copied so far, over all documents. */
  entries: number;
}

/** A document the target holds with another history than the source's: nothing of it was copied. */
export interface CopyConflict {
  doc: string;
  /** Where the two histories were found to differ. */
  seq: number;
  problem: string;
}

export interface CopyReport {
  documents: number;
  /** Entries written by this run (not those the target held already). */
  entries: number;
  snapshots: number;
  conflicts: CopyConflict[];
}

type Store = EventStore & LogTransfer;

const PAGE = 2000;

export async function copyStore(from: Store, to: Store, options: { onProgress?: (progress: CopyProgress) => void } = {}): Promise<CopyReport> {
  const docs = await from.documents();
  const report: CopyReport = { documents: docs.length, entries: 0, snapshots: 0, conflicts: [] };
  for (const [index, doc] of docs.entries()) {
    options.onProgress?.({ doc, index, documents: docs.length, entries: report.entries });
    const source = await from.info(doc);
    if (source === null) continue;
    const conflict = await historyConflict(from, to, doc, source.seq);
    if (conflict !== null) {
      report.conflicts.push(conflict);
      continue;
    }
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

/**
 * Null when the target holds nothing of `doc` or a beginning of the source's
 * history of it (an earlier or interrupted copy): its last entry is the
 * source's entry at that seq, byte for byte and with the same facts; where
 * that entry was pruned on either side, the latest snapshot both hold at or
 * before it is the same.
 */
async function historyConflict(from: Store, to: Store, doc: string, sourceSeq: number): Promise<CopyConflict | null> {
  const targetSeq = (await to.info(doc))?.seq ?? 0;
  if (targetSeq === 0) return null;
  if (targetSeq > sourceSeq) {
    return { doc, seq: targetSeq, problem: `the target's log goes further (seq ${targetSeq}) than the source's (seq ${sourceSeq})` };
  }
  const [theirs] = await to.entries(doc, { afterSeq: targetSeq - 1, limit: 1 });
  const [ours] = await from.entries(doc, { afterSeq: targetSeq - 1, limit: 1 });
  if (theirs?.seq === targetSeq && ours?.seq === targetSeq) {
    const same = Buffer.compare(theirs.update, ours.update) === 0 && theirs.receivedAt.getTime() === ours.receivedAt.getTime() &&
      theirs.instanceId === ours.instanceId && theirs.user === ours.user;
    return same ? null : { doc, seq: targetSeq, problem: `the target's entry at seq ${targetSeq} is not the source's: another history of the document` };
  }
  const targetSnapshots = new Map((await to.snapshotRecords(doc)).map((s) => [s.seq, s.state]));
  const shared = (await from.snapshotRecords(doc))
    .filter((s) => s.seq <= targetSeq && targetSnapshots.has(s.seq))
    .sort((a, b) => b.seq - a.seq)[0];
  if (shared !== undefined && Buffer.compare(shared.state, targetSnapshots.get(shared.seq)!) === 0) return null;
  return {
    doc, seq: shared?.seq ?? targetSeq,
    problem: shared === undefined
      ? `the target holds the document up to seq ${targetSeq} with nothing to compare against the source (no common entry or snapshot)`
      : `the target's snapshot at seq ${shared.seq} is not the source's: another history of the document`,
  };
}
