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

/**
 * Documents as the last compaction left them (the state at `seq`), so the
 * next compaction of a busy document applies only the new entries instead of
 * decoding its whole snapshot again. Bounded by the size of their states.
 */
export class CompactionCache {
  private readonly entries = new Map<string, { seq: number; ydoc: Y.Doc; size: number }>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  take(doc: string): { seq: number; ydoc: Y.Doc } | undefined {
    const entry = this.entries.get(doc);
    if (entry !== undefined) {
      this.entries.delete(doc);
      this.bytes -= entry.size;
    }
    return entry;
  }

  put(doc: string, seq: number, ydoc: Y.Doc, size: number): void {
    if (size > this.maxBytes) {
      ydoc.destroy();
      return;
    }
    this.entries.set(doc, { seq, ydoc, size });
    this.bytes += size;
    for (const [name, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(name);
      this.bytes -= entry.size;
      entry.ydoc.destroy();
    }
  }
}

export function compactDocument(
  open: OpenDatabase, doc: string, retention: RetentionPolicy, cache?: CompactionCache,
): CompactionResult | null {
  const { db, statements } = open;
  const cached = cache?.take(doc);
  // A deferred transaction is one consistent read view of the file, even
  // while other connections append.
  const plan = db.transaction(() => {
    const row = statements.documentByName.get(doc);
    if (row === undefined || row.last_seq === 0) return null;
    const snapshot = statements.latestSnapshotAtOrBefore.get(row.id, row.last_seq);
    if (snapshot !== undefined && snapshot.seq === row.last_seq) return null;
    // The cached state is the log up to its seq; usable while the entries after it are all there.
    if (cached !== undefined && cached.seq >= (snapshot?.seq ?? 0) && cached.seq < row.last_seq) {
      const tail = statements.updatesBetween.all(row.id, cached.seq, row.last_seq).map((r) => r.update_bytes);
      if (tail.length === row.last_seq - cached.seq) return { docId: row.id, seq: row.last_seq, base: null, tail, onto: cached.ydoc };
    }
    const tail = statements.updatesBetween.all(row.id, snapshot?.seq ?? 0, row.last_seq).map((r) => r.update_bytes);
    return { docId: row.id, seq: row.last_seq, base: snapshot?.state ?? null, tail, onto: undefined };
  })();
  if (plan === null || plan.onto === undefined) cached?.ydoc.destroy();
  if (plan === null) return null;

  const ydoc = replay(plan.base, plan.tail, plan.onto);
  const state = Y.encodeStateAsUpdate(ydoc);
  const coverage = encodeCoverage(coverageOfDoc(ydoc));
  if (cache !== undefined) cache.put(doc, plan.seq, ydoc, state.length);
  else ydoc.destroy();

  const pruned = db.transaction(() => {
    statements.insertSnapshot.run(plan.docId, plan.seq, Date.now(), state, coverage);
    return retention === 'snapshot' ? statements.pruneUpdatesUpTo.run(plan.docId, plan.seq).changes : 0;
  }).immediate();
  return { doc, seq: plan.seq, size: state.length, pruned };
}
