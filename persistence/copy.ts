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

/** A document the target holds with another history than the source's, or that the source can no longer continue: nothing of it was copied. */
export interface NotCopied {
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
  notCopied: NotCopied[];
}

type Store = EventStore & LogTransfer;

const PAGE = 2000;

export async function copyStore(from: Store, to: Store, options: { onProgress?: (progress: CopyProgress) => void } = {}): Promise<CopyReport> {
  const docs = await from.documents();
  const report: CopyReport = { documents: docs.length, entries: 0, snapshots: 0, notCopied: [] };
  for (const [index, doc] of docs.entries()) {
    options.onProgress?.({ doc, index, documents: docs.length, entries: report.entries });
    const source = await from.info(doc);
    if (source === null) continue;
    const problem = await cannotContinue(from, to, doc, source.seq);
    if (problem !== null) {
      report.notCopied.push(problem);
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
 * Null when the target holds nothing of `doc`, or a beginning of the
 * source's history of it that the source's entries continue (an earlier or
 * interrupted copy). The target's last entry must be the source's entry at
 * that seq, byte for byte and with the same facts; where either side's
 * retention pruned that entry, both must hold the same snapshot at exactly
 * that seq (an earlier one would say nothing of the entries after it). A
 * target with snapshots and no log yet (a copy stopped between the two) must
 * hold the source's snapshots. Otherwise the problem, and nothing is copied.
 */
async function cannotContinue(from: Store, to: Store, doc: string, sourceSeq: number): Promise<NotCopied | null> {
  const targetSeq = (await to.info(doc))?.seq ?? 0;
  const theirSnapshots = await to.snapshotRecords(doc);
  const ourSnapshots = new Map((await from.snapshotRecords(doc)).map((r) => [r.seq, r.state]));
  const sameSnapshot = (seq: number) => {
    const theirs = theirSnapshots.find((r) => r.seq === seq);
    const ours = ourSnapshots.get(seq);
    return theirs !== undefined && ours !== undefined && Buffer.compare(theirs.state, ours) === 0;
  };
  if (targetSeq === 0) {
    const foreign = theirSnapshots.find((r) => !sameSnapshot(r.seq));
    return foreign === undefined ? null
      : { doc, seq: foreign.seq, problem: `the target's snapshot at seq ${foreign.seq} is not the source's: another history of the document` };
  }
  if (targetSeq > sourceSeq) {
    return { doc, seq: targetSeq, problem: `the target's log goes further (seq ${targetSeq}) than the source's (seq ${sourceSeq})` };
  }
  const [theirs] = await to.entries(doc, { afterSeq: targetSeq - 1, limit: 1 });
  const [ours] = await from.entries(doc, { afterSeq: targetSeq - 1, limit: 1 });
  const theirsKept = theirs?.seq === targetSeq;
  const oursKept = ours?.seq === targetSeq;
  if (theirsKept && oursKept) {
    const same = Buffer.compare(theirs.update, ours.update) === 0 && theirs.receivedAt.getTime() === ours.receivedAt.getTime() &&
      theirs.instanceId === ours.instanceId && theirs.user === ours.user;
    return same ? null : { doc, seq: targetSeq, problem: `the target's entry at seq ${targetSeq} is not the source's: another history of the document` };
  }
  if (!oursKept && targetSeq < sourceSeq) {
    // The entries the target lacks begin after a gap: a log cannot continue across it.
    return {
      doc, seq: targetSeq,
      problem: `the source no longer holds seq ${targetSeq} and the entries after it that the target lacks (its retention pruned them); copy into a store that does not hold the document, which then starts from the source's snapshot`,
    };
  }
  if (sameSnapshot(targetSeq)) return null;
  return {
    doc, seq: targetSeq,
    problem: `the target holds the document up to seq ${targetSeq} and nothing there to compare with the source (an entry or a snapshot at that seq on both sides)`,
  };
}
