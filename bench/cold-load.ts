// Cold load of a document with a long history, against loading one full-state
// blob of the same document.
//
// The history is a real editing trace (traces/ in the repository, one Yjs update per
// trace transaction), appended through the event store exactly as the server
// does: grouped appends, background compaction at the store's default
// thresholds. Then:
//   - replay rate: appends per second while building that log, grouped (many
//     appends per event-loop turn, one transaction each turn) and one at a time
//     (each append awaited: one commit per update);
//   - cold load in process: store.load + snapshot and tail applied to a fresh
//     Y.Doc (what the durable log's onLoadDocument does), on a fresh store;
//   - the same document as one blob: Y.applyUpdate(new Y.Doc, encodeStateAsUpdate);
//   - the full server path: a fresh client's sync completes (socket open →
//     sync step 2 received), Palimpsest on the log vs stock Hocuspocus loading
//     the blob in onLoadDocument.

import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { startBenchServer } from './server-process.js';

export interface Trace {
  name: string;
  txns: Array<{ patches: Array<[number, number, string]> }>;
}

export function readTrace(path: string, limit: number): Trace {
  const parsed = JSON.parse(gunzipSync(readFileSync(path)).toString('utf8')) as Trace;
  return { name: path.replace(/.*\//, '').replace(/\.json\.gz$/, ''), txns: parsed.txns.slice(0, limit) };
}

/** One Yjs update per trace transaction, the text a plain string replay gives, and the final Y.Doc. */
export function traceUpdates(trace: Trace): { updates: Uint8Array[]; text: string; doc: Y.Doc } {
  const doc = new Y.Doc();
  const ytext = doc.getText('default');
  const updates: Uint8Array[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  let text = '';
  for (const txn of trace.txns) {
    doc.transact(() => {
      for (const [pos, deleted, inserted] of txn.patches) {
        if (deleted > 0) ytext.delete(pos, deleted);
        if (inserted.length > 0) ytext.insert(pos, inserted);
        text = text.slice(0, pos) + inserted + text.slice(pos + deleted);
      }
    });
  }
  if (ytext.toString() !== text) throw new Error('the Yjs replay of the trace differs from the plain string replay');
  return { updates, text, doc };
}

export interface ColdLoadOptions {
  tracePath: string;
  transactions: number;
  dir: string;
  repetitions: number;
  /** Appends issued per event-loop turn while building the log. */
  groupSize: number;
  /** Appends measured one at a time (each awaited), per synchronous mode. */
  sequentialSample: number;
  progress: (message: string) => void;
}

export interface ColdLoadResult {
  trace: string;
  transactions: number;
  finalLength: number;
  blobBytes: number;
  log: { entries: number; snapshots: number; lastSnapshotSeq: number; tail: number; fileBytes: number };
  replay: Array<{ mode: string; synchronous: string; appends: number; appendsPerSecond: number }>;
  /** Loads with the longest tail (499 entries after the latest snapshot), and right after a compaction (tail 0). */
  inProcess: {
    loadMs: number; storeReadMs: number; applyMs: number; tail: number; blobMs: number; ratio: number;
    justCompacted: LoadTimes & { ratio: number };
  };
  server: { palimpsestMs: number; hocuspocusBlobMs: number; ratio: number };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

const docName = 'bench-cold-load';
/** The store's and `palimpsest serve`'s default --compact-after-entries. */
const COMPACT_AFTER_ENTRIES = 500;

interface LoadTimes {
  loadMs: number;
  readMs: number;
  applyMs: number;
  tail: number;
}

/** Median times of loading the document as the server does, each time from a freshly opened store. */
async function timeLoads(dbPath: string, repetitions: number, expectedText: string | null): Promise<LoadTimes> {
  const loadTimes: number[] = [];
  const readTimes: number[] = [];
  const applyTimes: number[] = [];
  let tail = 0;
  // Repetition -1 is untimed: it warms the JIT for both sides alike.
  for (let rep = -1; rep < repetitions; rep++) {
    const fresh = openEventStore({ path: dbPath, synchronous: 'full' });
    const t0 = performance.now();
    const loaded = await fresh.load(docName);
    const t1 = performance.now();
    const ydoc = new Y.Doc();
    // As server/durable-log.ts onLoadDocument does.
    Y.transact(ydoc, () => {
      if (loaded.snapshot !== null) Y.applyUpdate(ydoc, loaded.snapshot.state);
      for (const update of loaded.tail) Y.applyUpdate(ydoc, update);
    }, { source: 'local' });
    const t2 = performance.now();
    tail = loaded.tail.length;
    if (rep === -1 && expectedText !== null && ydoc.getText('default').toString() !== expectedText) {
      throw new Error('the document loaded from the log differs from the trace');
    }
    ydoc.destroy();
    await fresh.close();
    if (rep < 0) continue;
    loadTimes.push(t2 - t0);
    readTimes.push(t1 - t0);
    applyTimes.push(t2 - t1);
  }
  return { loadMs: median(loadTimes), readMs: median(readTimes), applyMs: median(applyTimes), tail };
}

export async function runColdLoad(options: ColdLoadOptions): Promise<ColdLoadResult> {
  const { progress } = options;
  progress(`cold load: reading ${options.transactions} transactions of ${options.tracePath}`);
  const trace = readTrace(options.tracePath, options.transactions);
  const { updates, text, doc: sourceDoc } = traceUpdates(trace);
  const blob = Y.encodeStateAsUpdate(sourceDoc);
  const replay: ColdLoadResult['replay'] = [];

  // The log the server would have written: grouped appends, background compaction.
  const dbPath = join(options.dir, 'cold-load.db');
  const store = openEventStore({ path: dbPath, synchronous: 'full', background: true });
  const meta = { instanceId: 'bench', user: null };
  // Two phases, so both ends of the compaction cycle get measured: first all
  // but the last 499 updates, then (after compaction caught up: tail 0) the
  // last 499, which stay below the 500-entry threshold (the longest tail a
  // server ever loads under the default thresholds).
  const tailStart = Math.max(0, updates.length - (COMPACT_AFTER_ENTRIES - 1));
  progress(`cold load: appending ${updates.length} updates, ${options.groupSize} per event-loop turn (synchronous=full)`);
  let started = performance.now();
  let appendMs = 0;
  let justCompacted: LoadTimes | null = null;
  for (const [from, to] of [[0, tailStart], [tailStart, updates.length]]) {
    started = performance.now();
    for (let i = from; i < to; i += options.groupSize) {
      await Promise.all(updates.slice(i, Math.min(to, i + options.groupSize)).map((update) => store.append(docName, update, meta)));
      if (i % 20_000 === 0 && i > 0) progress(`cold load: ${i} appended`);
    }
    appendMs += performance.now() - started;
    progress('cold load: waiting for background compactions');
    await store.compactionsIdle();
    if (to === tailStart) justCompacted = await timeLoads(dbPath, options.repetitions, null);
  }
  replay.push({ mode: `grouped, ${options.groupSize} per turn`, synchronous: 'full', appends: updates.length, appendsPerSecond: updates.length / (appendMs / 1000) });
  const info = await store.info(docName);
  await store.close();
  if (info === null || justCompacted === null) throw new Error('the cold-load document is missing after the replay');
  const lastSnapshotSeq = info.snapshots.at(-1)?.seq ?? 0;

  // One commit per update: the rate of a single writer typing alone.
  for (const synchronous of ['full', 'normal'] as const) {
    const sample = updates.slice(0, options.sequentialSample);
    const sequential = openEventStore({ path: join(options.dir, `sequential-${synchronous}.db`), synchronous, background: true });
    progress(`cold load: appending ${sample.length} updates one at a time (synchronous=${synchronous})`);
    started = performance.now();
    for (const update of sample) await sequential.append(docName, update, meta);
    const seconds = (performance.now() - started) / 1000;
    await sequential.compactionsIdle();
    await sequential.close();
    replay.push({ mode: 'one at a time (awaited)', synchronous, appends: sample.length, appendsPerSecond: sample.length / seconds });
  }

  progress(`cold load: loading in process, ${options.repetitions} repetitions`);
  const beforeCompaction = await timeLoads(dbPath, options.repetitions, text);
  const blobTimes: number[] = [];
  for (let rep = -1; rep < options.repetitions; rep++) {
    const b0 = performance.now();
    const fromBlob = new Y.Doc();
    Y.applyUpdate(fromBlob, blob);
    if (rep >= 0) blobTimes.push(performance.now() - b0);
    if (rep === -1 && fromBlob.getText('default').toString() !== text) throw new Error('the document loaded from the blob differs from the trace');
    fromBlob.destroy();
  }

  progress(`cold load: first sync through the servers, ${options.repetitions} repetitions each`);
  const blobPath = join(options.dir, 'cold-load.state');
  writeFileSync(blobPath, blob);
  const serverDb = join(options.dir, 'cold-load-server.db');
  copyFileSync(dbPath, serverDb);
  const palimpsestTimes = await timeFirstSyncs(['palimpsest', '--data', serverDb, '--synchronous', 'full'], options.repetitions, text.length);
  const hocuspocusTimes = await timeFirstSyncs(['hocuspocus', '--state', blobPath], options.repetitions, text.length);

  const blobMs = median(blobTimes);
  const inProcess = {
    loadMs: beforeCompaction.loadMs, storeReadMs: beforeCompaction.readMs, applyMs: beforeCompaction.applyMs,
    tail: beforeCompaction.tail, blobMs, ratio: beforeCompaction.loadMs / blobMs,
    justCompacted: { ...justCompacted, ratio: justCompacted.loadMs / blobMs },
  };
  const server = { palimpsestMs: median(palimpsestTimes), hocuspocusBlobMs: median(hocuspocusTimes), ratio: 0 };
  server.ratio = server.palimpsestMs / server.hocuspocusBlobMs;
  sourceDoc.destroy();
  return {
    trace: trace.name,
    transactions: trace.txns.length,
    finalLength: text.length,
    blobBytes: blob.length,
    log: { entries: info.seq, snapshots: info.snapshots.length, lastSnapshotSeq, tail: inProcess.tail, fileBytes: statSync(dbPath).size },
    replay,
    inProcess,
    server,
  };
}

/**
 * Starts a server, then `repetitions` times: a fresh client opens a socket and
 * asks for the document; timed until its sync step 2 arrives (and holds the
 * whole text). The document is unloaded between repetitions (the client
 * leaves; both servers unload immediately), so each one is a cold load.
 */
async function timeFirstSyncs(serverArgs: string[], repetitions: number, expectedLength: number): Promise<number[]> {
  const server = await startBenchServer(serverArgs);
  const times: number[] = [];
  try {
    // One untimed round warms the server process (JIT, first statements).
    for (let rep = -1; rep < repetitions; rep++) {
      const { ms, length } = await firstSync(server.url, docName);
      if (length !== expectedLength) throw new Error(`${serverArgs[0]} served ${length} characters, expected ${expectedLength}`);
      if (rep >= 0) times.push(ms);
      // Let the server see the close and unload the document.
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  } finally {
    await server.stop();
  }
  return times;
}

/** One fresh client's sync of `documentName`: socket open until sync step 2 (with the state) arrives; then it closes. */
export function firstSync(url: string, documentName: string): Promise<{ ms: number; length: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const send = (write: (encoder: encoding.Encoder) => void) => {
      const encoder = encoding.createEncoder();
      encoding.writeVarString(encoder, documentName);
      write(encoder);
      socket.send(encoding.toUint8Array(encoder));
    };
    socket.once('error', reject);
    socket.once('open', () => {
      send((e) => { encoding.writeVarUint(e, 2); encoding.writeVarUint(e, 0); encoding.writeVarString(e, ''); });
      send((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc())); });
    });
    socket.on('message', (data: Buffer) => {
      const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      decoding.readVarString(decoder);
      const type = decoding.readVarUint(decoder);
      if (type !== 0 && type !== 4) return;
      if (decoding.readVarUint(decoder) !== 1) return;
      const ms = performance.now() - started;
      const doc = new Y.Doc();
      Y.applyUpdate(doc, decoding.readVarUint8Array(decoder));
      const length = doc.getText('default').length;
      doc.destroy();
      socket.close();
      resolve({ ms, length });
    });
  });
}
