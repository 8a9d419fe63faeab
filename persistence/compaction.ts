// Compaction: write snapshot(N) = the state of the log up to seq N, and,
// when the retention policy says so, drop exactly the entries it covers, in
// one transaction, so a crash leaves either the old or the new state.
//
// The snapshot is built from the log, never from a live in-memory document,
// so it cannot contain anything the log lacks. The expensive part (replay and
// encoding) runs outside the write transaction; in the server it runs on a
// worker thread (compaction-worker.ts) so big documents do not stall sockets.

import * as Y from 'yjs';
import { coverageOfDoc, encodeCoverage } from './coverage.js';
import type { CompactionResult } from './event-store.js';
import { replay } from './replay.js';
import type { OpenDatabase } from './sqlite-database.js';

/** 'all' keeps every log entry (the history); 'snapshot' drops entries a snapshot covers. */
export type RetentionPolicy = 'all' | 'snapshot';

export function compactDocument(open: OpenDatabase, doc: string, retention: RetentionPolicy): CompactionResult | null {
  const { db, statements } = open;
  // A deferred transaction is one consistent read view of the file, even
  // while other connections append.
  const plan = db.transaction(() => {
    const row = statements.documentByName.get(doc);
    if (row === undefined || row.last_seq === 0) return null;
    const snapshot = statements.latestSnapshotAtOrBefore.get(row.id, row.last_seq);
    if (snapshot !== undefined && snapshot.seq === row.last_seq) return null;
    const tail = statements.updatesBetween.all(row.id, snapshot?.seq ?? 0, row.last_seq).map((r) => r.update_bytes);
    return { docId: row.id, seq: row.last_seq, base: snapshot?.state ?? null, tail };
  })();
  if (plan === null) return null;

  const ydoc = replay(plan.base, plan.tail);
  const state = Y.encodeStateAsUpdate(ydoc);
  const coverage = encodeCoverage(coverageOfDoc(ydoc));
  ydoc.destroy();

  const pruned = db.transaction(() => {
    statements.insertSnapshot.run(plan.docId, plan.seq, Date.now(), state, coverage);
    return retention === 'snapshot' ? statements.pruneUpdatesUpTo.run(plan.docId, plan.seq).changes : 0;
  }).immediate();
  return { doc, seq: plan.seq, size: state.length, pruned };
}
