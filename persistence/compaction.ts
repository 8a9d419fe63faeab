// Compaction: write snapshot(N) = the state of the log up to seq N, and,
// when the retention policy says so, drop exactly the entries it covers, in
// one transaction, so a crash leaves either the old or the new state.
//
// The snapshot is built from the log, never from a live in-memory document,
// so it cannot contain anything the log lacks. The expensive part (replay and
// encoding) runs outside the write transaction; in the server it runs on a
// worker thread (compaction-worker.ts) so big documents do not stall sockets,
// and the server's own connection writes the result, so that one connection
// alone takes the write lock and appends never wait for a compaction.

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

/** A snapshot built from the log, not yet written. */
export interface BuiltSnapshot {
  doc: string;
  docId: number;
  seq: number;
  state: Uint8Array;
  coverage: Uint8Array;
}

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
  return { doc, docId: plan.docId, seq: plan.seq, state, coverage };
}

/** What compaction keeps: log entries (retention) and older snapshots. */
export interface CompactionPolicy {
  retention: RetentionPolicy;
  /**
   * Older snapshots kept: the first one in each span of this many seqs (the
   * latest, and the one a pruned log continues from, are always kept). Under
   * retention 'all' they only speed up history reads (`stateAt`); under
   * 'snapshot' they are the only points of history left. Keeping one per
   * compaction would grow the file by a whole document state every few
   * hundred edits. 0 keeps them all.
   */
  keepSnapshotsEvery: number;
}

/**
 * Writes a built snapshot and, when the policy says so, drops the entries it
 * covers and the previous snapshot: one transaction.
 */
export function writeSnapshot(open: OpenDatabase, snapshot: BuiltSnapshot, policy: CompactionPolicy): CompactionResult {
  const { db, statements } = open;
  const pruned = db.transaction(() => {
    const { docId, seq } = snapshot;
    const previous = statements.snapshotBefore.get(docId, seq);
    statements.insertSnapshot.run(docId, seq, Date.now(), snapshot.state, snapshot.coverage);
    const pruned = policy.retention === 'snapshot' ? statements.pruneUpdatesUpTo.run(docId, seq).changes : 0;
    const every = policy.keepSnapshotsEvery;
    // The snapshot the retained log continues from (an earlier writer may have pruned up to it) always stays.
    const firstRetained = statements.firstRetained.get(docId)?.seq ?? null;
    if (previous !== undefined && every > 0 && (firstRetained === null || previous.seq !== firstRetained - 1)) {
      // Otherwise the previous latest stays only as the first snapshot of its span.
      const spanStart = Math.floor(previous.seq / every) * every;
      if (statements.snapshotInSpanBefore.get(docId, spanStart, previous.seq) !== undefined) {
        statements.deleteSnapshot.run(docId, previous.seq);
      }
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
