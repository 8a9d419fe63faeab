// Compaction on the SQLite file: build snapshot(N) from the log (reads only,
// so it can run on the worker's connection, compaction-worker.ts), then write
// it and, when the retention policy says so, drop exactly the entries it
// covers, in one IMMEDIATE transaction on the store's own connection, so a
// crash leaves either the old or the new state and appends never wait for a
// replay. The rules themselves are in ../compaction-policy.ts.

import {
  buildSnapshotFrom, dropsPreviousSnapshot, type BuiltSnapshot, type CompactionCache, type CompactionPolicy,
} from '../compaction-policy.js';
import type { CompactionResult } from '../event-store.js';
import type { OpenDatabase } from './database.js';

/**
 * Builds snapshot(N) for the document's last seq N: reads only (one
 * consistent view of the file, even while other connections append), so it
 * can run on any connection; null when there is nothing new to snapshot.
 */
export function buildSnapshot(open: OpenDatabase, doc: string, cache?: CompactionCache): BuiltSnapshot | null {
  const { db, statements } = open;
  const cached = cache?.take(doc);
  const plan = db.transaction(() => {
    const row = statements.documentByName.get(doc);
    if (row === undefined || row.last_seq === 0) return null;
    const snapshot = statements.latestSnapshotAtOrBefore.get(row.id, row.last_seq);
    if (snapshot !== undefined && snapshot.seq === row.last_seq) return null;
    // The cached state is the log up to its seq; usable while the entries after it are all there.
    if (cached !== undefined && cached.seq >= (snapshot?.seq ?? 0) && cached.seq < row.last_seq) {
      const tail = statements.updatesBetween.all(row.id, cached.seq, row.last_seq).map((r) => r.update_bytes);
      if (tail.length === row.last_seq - cached.seq) return { doc, seq: row.last_seq, base: null, tail, onto: cached.ydoc };
    }
    const tail = statements.updatesBetween.all(row.id, snapshot?.seq ?? 0, row.last_seq).map((r) => r.update_bytes);
    return { doc, seq: row.last_seq, base: snapshot?.state ?? null, tail, onto: undefined };
  })();
  if (plan === null || plan.onto === undefined) cached?.ydoc.destroy();
  if (plan === null) return null;
  return buildSnapshotFrom(plan, cache);
}

/**
 * Writes a built snapshot and, when the policy says so, drops the entries it
 * covers and the previous snapshot: one transaction.
 */
export function writeSnapshot(open: OpenDatabase, snapshot: BuiltSnapshot, policy: CompactionPolicy): CompactionResult {
  const { db, statements } = open;
  const pruned = db.transaction(() => {
    const { seq } = snapshot;
    const row = statements.documentByName.get(snapshot.doc);
    if (row === undefined) throw new Error(`document ${snapshot.doc} vanished before its snapshot was written`);
    const docId = row.id;
    const previous = statements.snapshotBefore.get(docId, seq);
    statements.insertSnapshot.run(docId, seq, Date.now(), snapshot.state, snapshot.coverage);
    const pruned = policy.retention === 'snapshot' ? statements.pruneUpdatesUpTo.run(docId, seq).changes : 0;
    const firstRetained = statements.firstRetained.get(docId)?.seq ?? null;
    if (previous !== undefined && dropsPreviousSnapshot(policy, previous.seq, firstRetained,
      (spanStart) => statements.snapshotInSpanBefore.get(docId, spanStart, previous.seq) !== undefined)) {
      statements.deleteSnapshot.run(docId, previous.seq);
    }
    return pruned;
  }).immediate();
  return { doc: snapshot.doc, seq: snapshot.seq, size: snapshot.state.length, pruned };
}

export function compactDocument(
  open: OpenDatabase, doc: string, policy: CompactionPolicy, cache?: CompactionCache,
): CompactionResult | null {
  const snapshot = buildSnapshot(open, doc, cache);
  return snapshot === null ? null : writeSnapshot(open, snapshot, policy);
}
