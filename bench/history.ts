// History reads over a long log, as the History panel makes them.
//
// The log is a real editing trace (traces/, one Yjs update per transaction)
// appended through the event store as the server does (grouped appends,
// background compaction at the default thresholds, given time to keep up as
// it has when people type), three authors taking turns in runs. The last 499
// updates come after the latest snapshot: the longest tail the default
// thresholds allow. Then, each repetition on a freshly started
// `palimpsest serve`, timed twice: as the process' very first requests, and on
// a second fresh server after an editor opened the document over WebSocket
// and closed it again (what happens before anyone opens the History panel:
// the editor it sits in loads the document; the reads themselves start from
// the store as before):
//   - the first page of versions (GET /versions, the panel's first request);
//   - authorship of the latest state (GET /authorship);
//   - previews: the state at a random seq (GET /state?at=<seq>), and at the
//     seq farthest from any snapshot at or before it (the most to replay).

import { join } from 'node:path';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { firstSync, readTrace, traceUpdates } from './cold-load.js';
import { startBenchServer } from './server-process.js';

export interface HistoryBenchOptions {
  tracePath: string;
  transactions: number;
  dir: string;
  repetitions: number;
  progress: (message: string) => void;
}

export interface HistoryBenchResult {
  trace: string;
  entries: number;
  snapshots: number[];
  versions: number;
  finalLength: number;
  /** Median ms of each read, each repetition on a freshly started server. */
  versionsFirstPageMs: number;
  authorshipMs: number;
  /** The same two as the very first request of a server process (cold code). */
  coldProcessVersionsMs: number;
  coldProcessAuthorshipMs: number;
  previewRandomMs: number;
  previewWorstMs: number;
  /** The seq of the worst preview and the entries replayed for it. */
  worstSeq: number;
  worstReplay: number;
}

const docName = 'bench-history';
const COMPACT_AFTER_ENTRIES = 500;
const AUTHORS = ['Ada', 'Bob', 'Cy'];
/** Entries each author writes before the next one takes over. */
const AUTHOR_RUN = 700;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

export async function runHistoryBench(options: HistoryBenchOptions): Promise<HistoryBenchResult> {
  const { progress } = options;
  progress(`history: reading ${options.transactions} transactions of ${options.tracePath}`);
  const trace = readTrace(options.tracePath, options.transactions);
  const { updates, text, doc: sourceDoc } = traceUpdates(trace);
  sourceDoc.destroy();

  const dbPath = join(options.dir, 'history.db');
  const store = openEventStore({ path: dbPath, synchronous: 'normal', background: true });
  const tailStart = Math.max(0, updates.length - (COMPACT_AFTER_ENTRIES - 1));
  progress(`history: appending ${updates.length} updates through the event store`);
  for (const [from, to] of [[0, tailStart], [tailStart, updates.length]]) {
    for (let i = from; i < to; i += 100) {
      // Compaction keeps up with typing people; here it is given the time to.
      if (i % COMPACT_AFTER_ENTRIES === 0) await store.compactionsIdle();
      await Promise.all(updates.slice(i, Math.min(to, i + 100)).map((update, k) => {
        const author = AUTHORS[Math.floor((i + k) / AUTHOR_RUN) % AUTHORS.length];
        return store.append(docName, update, { instanceId: 'bench', user: author.toLowerCase(), displayName: author });
      }));
    }
    await store.compactionsIdle();
    // The snapshot the threshold would have written right here, so that the
    // 499 entries after it are the longest tail the default thresholds leave.
    if (to === tailStart) await store.compact(docName);
  }
  const info = await store.info(docName);
  await store.close();
  if (info === null) throw new Error('the history document is missing after the replay');
  const snapshots = info.snapshots.map((s) => s.seq);
  // The seq with the most entries after the snapshot a read of it starts from.
  let worstSeq = info.seq;
  let worstReplay = 0;
  for (let seq = 1; seq <= info.seq; seq++) {
    const base = snapshots.filter((s) => s <= seq).at(-1) ?? 0;
    if (seq - base > worstReplay) {
      worstReplay = seq - base;
      worstSeq = seq;
    }
  }

  const rng = prng.create(0x4157);
  const versionTimes: number[] = [];
  const authorshipTimes: number[] = [];
  const coldVersionTimes: number[] = [];
  const coldAuthorshipTimes: number[] = [];
  const randomTimes: number[] = [];
  const worstTimes: number[] = [];
  let versionCount = 0;
  progress(`history: ${options.repetitions} repetitions, each on a freshly started server`);
  const timer = (port: number) => async (path: string, doc = docName): Promise<{ ms: number; body: Uint8Array }> => {
    const started = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}/api/documents/${doc}${path}`);
    const body = new Uint8Array(await response.arrayBuffer());
    const ms = performance.now() - started;
    if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${new TextDecoder().decode(body)}`);
    return { ms, body };
  };
  for (let rep = -1; rep < options.repetitions; rep++) {
    const cold = await startBenchServer(['palimpsest', '--data', dbPath]);
    try {
      const timed = timer(cold.port);
      const versions = await timed('/versions');
      const authorship = await timed('/authorship');
      if (rep >= 0) {
        coldVersionTimes.push(versions.ms);
        coldAuthorshipTimes.push(authorship.ms);
      }
    } finally {
      await cold.stop();
    }
    const server = await startBenchServer(['palimpsest', '--data', dbPath]);
    try {
      const timed = timer(server.port);
      const { length } = await firstSync(server.url, docName);
      if (length !== text.length) throw new Error(`the editor's sync gave ${length} characters, the trace ends with ${text.length}`);
      const versions = await timed('/versions');
      const page = JSON.parse(new TextDecoder().decode(versions.body)) as { versions: unknown[] };
      versionCount = page.versions.length;
      const authorship = await timed('/authorship');
      const parsed = JSON.parse(new TextDecoder().decode(authorship.body)) as { blocks: Array<{ runs: Array<{ text: string }> }> };
      const shown = parsed.blocks.flatMap((b) => b.runs.map((r) => r.text)).join('');
      if (shown !== text) throw new Error(`authorship shows ${shown.length} characters, the trace ends with ${text.length}`);
      const random = await timed(`/state?at=${prng.int32(rng, 1, info.seq)}`);
      const worst = await timed(`/state?at=${worstSeq}`);
      const check = new Y.Doc();
      Y.applyUpdate(check, worst.body);
      if (check.getText('default').length === 0 && worstSeq > 10) throw new Error(`the state at ${worstSeq} is empty`);
      check.destroy();
      if (rep < 0) continue;
      versionTimes.push(versions.ms);
      authorshipTimes.push(authorship.ms);
      randomTimes.push(random.ms);
      worstTimes.push(worst.ms);
    } finally {
      await server.stop();
    }
  }
  return {
    trace: trace.name, entries: info.seq, snapshots, versions: versionCount, finalLength: text.length,
    versionsFirstPageMs: median(versionTimes), authorshipMs: median(authorshipTimes),
    coldProcessVersionsMs: median(coldVersionTimes), coldProcessAuthorshipMs: median(coldAuthorshipTimes),
    previewRandomMs: median(randomTimes), previewWorstMs: median(worstTimes), worstSeq, worstReplay,
  };
}
