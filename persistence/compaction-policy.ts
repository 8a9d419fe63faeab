// What compaction keeps and how a snapshot is built, shared by every backend:
// snapshot(N) = the state of the log up to seq N, built by replaying the log
// (never from a live document, so it cannot hold anything the log lacks), and
// the rules that decide which log entries and older snapshots go.

import * as Y from 'yjs';
import { coverageOfDoc, encodeCoverage } from './coverage.js';
import { replay } from './replay.js';

/** 'all' keeps every log entry (the history); 'snapshot' drops entries a snapshot covers. */
export type RetentionPolicy = 'all' | 'snapshot';

/** What compaction keeps: log entries (retention) and older snapshots. */
export interface CompactionPolicy {
  retention: RetentionPolicy;
  /**
   * Older snapshots kept: the first one in each span of this many seqs (the
   * latest, and the one a pruned log continues from, are always kept). Under
   * retention 'all' they only speed up history reads (`stateAt`); under
   * 'snapshot' they are the only points of history left. Keeping one per
   * compaction would grow the store by a whole document state every few
   * hundred edits. 0 keeps them all.
   */
  keepSnapshotsEvery: number;
}

/**
 * Whether the snapshot that was the latest (at `previousSeq`) goes once a
 * newer one is written: it stays when the retained log continues from it, or
 * when it is the first of its span; `hasEarlierInSpan` says whether another
 * snapshot already opens that span (see spanStart).
 */
export function dropsPreviousSnapshot(
  policy: CompactionPolicy, previousSeq: number, firstRetainedSeq: number | null, hasEarlierInSpan: (spanStart: number) => boolean,
): boolean {
  const every = policy.keepSnapshotsEvery;
  if (every <= 0) return false;
  // The snapshot the retained log continues from (an earlier writer may have pruned up to it) always stays.
  if (firstRetainedSeq !== null && previousSeq === firstRetainedSeq - 1) return false;
  return hasEarlierInSpan(Math.floor(previousSeq / every) * every);
}

/** A snapshot built from the log, not yet written. */
export interface BuiltSnapshot {
  doc: string;
  seq: number;
  state: Uint8Array;
  coverage: Uint8Array;
}

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

/**
 * Replays `base` + `tail` (or `tail` onto a cached document) into snapshot(seq):
 * the state and its coverage. The document goes back into the cache, if any.
 */
export function buildSnapshotFrom(
  plan: { doc: string; seq: number; base: Uint8Array | null; tail: Uint8Array[]; onto?: Y.Doc }, cache?: CompactionCache,
): BuiltSnapshot {
  const ydoc = replay(plan.base, plan.tail, plan.onto);
  const state = Y.encodeStateAsUpdate(ydoc);
  const coverage = encodeCoverage(coverageOfDoc(ydoc));
  if (cache !== undefined) cache.put(plan.doc, plan.seq, ydoc, state.length);
  else ydoc.destroy();
  return { doc: plan.doc, seq: plan.seq, state, coverage };
}
