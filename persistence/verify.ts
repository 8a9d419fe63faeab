// Checking one document's log against its snapshots, the same way on every
// backend: the backend feeds the document's row, its snapshots and then its
// log entries in seq order; the checker replays them and reports gaps,
// entries that do not apply and snapshots that differ from the replay.

import * as Y from 'yjs';
import { decodeCoverage, equalCoverage, coverageOfDoc, type Coverage } from './coverage.js';
import type { VerifyProblem } from './event-store.js';
import { canonicalState, equalBytes } from './replay.js';

export interface SnapshotRow {
  seq: number;
  state: Uint8Array;
  coverage: Uint8Array;
}

export class LogVerifier {
  readonly problems: VerifyProblem[] = [];
  entries = 0;
  private readonly ydoc = new Y.Doc();
  private seq = 0;
  private snapshotIndex = 0;
  /** After which seq entries are to be fed; null when the log cannot be checked (a problem says why). */
  readonly afterSeq: number | null;

  /**
   * `snapshots` in seq order; `firstRetainedSeq` is the lowest seq still in
   * the log (null when none is). Replay starts at seq 1 or, where retention
   * pruned the log, at the snapshot the retained log continues from (which is
   * then trusted).
   */
  constructor(
    private readonly doc: string, private readonly lastSeq: number, private readonly snapshots: SnapshotRow[], firstRetainedSeq: number | null,
  ) {
    // With every entry pruned, replay starts after the last seq.
    const firstToReplay = firstRetainedSeq ?? lastSeq + 1;
    if (firstToReplay > 1) {
      const base = snapshots.find((s) => s.seq === firstToReplay - 1);
      if (base === undefined) {
        this.problems.push({ doc, seq: firstToReplay, problem: `the log starts at seq ${firstToReplay} and no snapshot covers seq ${firstToReplay - 1}` });
        this.afterSeq = null;
        return;
      }
      try {
        Y.applyUpdate(this.ydoc, base.state);
      } catch (error) {
        this.problems.push({ doc, seq: base.seq, problem: `snapshot does not decode: ${reason(error)}` });
        this.afterSeq = null;
        return;
      }
      this.seq = base.seq;
      this.snapshotIndex = snapshots.indexOf(base) + 1;
    }
    this.afterSeq = this.seq;
    this.checkSnapshotsUpTo(this.seq);
  }

  entry(seq: number, update: Uint8Array): void {
    const { doc } = this;
    if (seq !== this.seq + 1) this.problems.push({ doc, seq, problem: `gap in the log: seq ${this.seq + 1} to ${seq - 1} missing` });
    try {
      Y.applyUpdate(this.ydoc, update);
    } catch (error) {
      this.problems.push({ doc, seq, problem: `log entry does not apply: ${reason(error)}` });
    }
    this.seq = seq;
    this.entries += 1;
    this.checkSnapshotsUpTo(seq);
  }

  finish(): VerifyProblem[] {
    const { doc } = this;
    if (this.afterSeq !== null) {
      if (this.seq !== this.lastSeq) {
        this.problems.push({ doc, seq: this.lastSeq, problem: `the document records last seq ${this.lastSeq} but the log ends at ${this.seq}` });
      }
      for (; this.snapshotIndex < this.snapshots.length; this.snapshotIndex++) {
        this.problems.push({ doc, seq: this.snapshots[this.snapshotIndex].seq, problem: 'snapshot beyond the end of the log' });
      }
    }
    this.ydoc.destroy();
    return this.problems;
  }

  private checkSnapshotsUpTo(upTo: number): void {
    while (this.snapshotIndex < this.snapshots.length && this.snapshots[this.snapshotIndex].seq <= upTo) {
      const snapshot = this.snapshots[this.snapshotIndex++];
      if (snapshot.seq !== upTo) continue; // pruned region: checked via the base above
      const problem = compareSnapshot(this.ydoc, snapshot);
      if (problem !== null) this.problems.push({ doc: this.doc, seq: snapshot.seq, problem });
    }
  }
}

function compareSnapshot(replayed: Y.Doc, snapshot: SnapshotRow): string | null {
  const fromSnapshot = new Y.Doc();
  try {
    Y.applyUpdate(fromSnapshot, snapshot.state);
  } catch (error) {
    return `snapshot does not decode: ${reason(error)}`;
  }
  try {
    if (!equalBytes(canonicalState(replayed), canonicalState(fromSnapshot))) {
      return 'snapshot differs from the replayed log';
    }
    let coverage: Coverage;
    try {
      coverage = decodeCoverage(snapshot.coverage);
    } catch (error) {
      return `snapshot coverage does not decode: ${reason(error)}`;
    }
    if (!equalCoverage(coverage, coverageOfDoc(replayed))) return 'snapshot coverage differs from the replayed log';
    return null;
  } finally {
    fromSnapshot.destroy();
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
