// Bursts: what one fast connection gets, and what it costs everyone else.
//   - one connection writes N small updates at once (raw frames, as fast as
//     the socket takes them); measured: updates/s until the last one is
//     acknowledged (Hocuspocus framing) or has reached an observer on the
//     same document (y-websocket framing, which has no acks);
//   - other clients' delivery latency (typing load) with and without one
//     connection flooding a document of its own.
// Servers run with their default flags; Palimpsest durable (synchronous=full).

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { startFlooder, type Flooder } from './flooder.js';
import { authFrame, MessageType, step1Frame, updateFrame } from './hocuspocus-frames.js';
import type { BenchServer } from './server-process.js';
import { runTypingLoad, type TypingLoadResult } from './typing-load.js';

const SyncUpdate = 2;

/** N single-character inserts of one Y.Doc, one Yjs update each. */
export function burstUpdates(count: number): Uint8Array[] {
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  const text = doc.getText('t');
  for (let i = 0; i < count; i++) text.insert(text.length, String.fromCharCode(97 + (i % 26)));
  doc.destroy();
  return updates;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * An observer of `doc`: how many characters of the burst it holds. It applies
 * what it is sent, since servers may merge several updates into one
 * broadcast. Hocuspocus framing on the server's root, or y-websocket framing
 * on the document's own path (`/yjs/<doc>`; the reference server reads the
 * whole path as the name, which the burst's writer uses too).
 */
async function observer(url: string, doc: string, framing: 'hocuspocus' | 'y-websocket'): Promise<{ received(): number; close(): void }> {
  const hocuspocus = framing === 'hocuspocus';
  const ws = await open(hocuspocus ? url : `${url}/yjs/${encodeURIComponent(doc)}`);
  const replica = new Y.Doc();
  ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    if (hocuspocus) decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type !== MessageType.Sync && !(hocuspocus && type === MessageType.SyncReply)) return;
    if (decoding.readVarUint(decoder) === 0) return;
    Y.applyUpdate(replica, decoding.readVarUint8Array(decoder));
  });
  const received = () => replica.getText('t').length;
  if (hocuspocus) {
    ws.send(authFrame(doc));
    ws.send(step1Frame(doc));
  } else {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MessageType.Sync);
    encoding.writeVarUint(encoder, 0);
    encoding.writeVarUint8Array(encoder, Y.encodeStateVector(new Y.Doc()));
    ws.send(encoding.toUint8Array(encoder));
  }
  return { received, close: () => ws.terminate() };
}

export interface BurstResult {
  server: string;
  client: 'hocuspocus' | 'y-websocket';
  updates: number;
  /** Until the last update was acknowledged (Hocuspocus framing; null for y-websocket framing, which has no acks). */
  ackedSeconds: number | null;
  /** Until the observer on the same document held every update (null: it never did, within the time-out). */
  deliveredSeconds: number | null;
  /** Updates per second by the later of the two: all acknowledged and all delivered. */
  updatesPerSecond: number;
  /** Connections the burst needed (more than one means it was closed and had to reconnect). */
  closedWith: number | null;
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

/** One connection sends every update at once; resolves when all are acknowledged (Hocuspocus framing) and have reached an observer. */
export async function runBurst(options: {
  server: BenchServer; serverName: string; client: 'hocuspocus' | 'y-websocket'; updates: Uint8Array[]; doc: string; timeoutMs: number;
  /** The observer's framing (default Hocuspocus'; the y-websocket reference server speaks only y-websocket's). */
  observerFraming?: 'hocuspocus' | 'y-websocket';
}): Promise<BurstResult> {
  const { server, updates, doc } = options;
  const watcher = await observer(server.url, doc, options.observerFraming ?? 'hocuspocus');
  let acks = 0;
  let closedWith: number | null = null;
  const started = performance.now();
  let ws: WebSocket;
  if (options.client === 'hocuspocus') {
    ws = await open(server.url);
    ws.on('message', (data: Buffer) => {
      const decoder = decoding.createDecoder(new Uint8Array(data));
      decoding.readVarString(decoder);
      if (decoding.readVarUint(decoder) === MessageType.SyncStatus) acks += 1;
    });
    ws.on('close', (code) => { closedWith = code; });
    ws.send(authFrame(doc));
    for (const update of updates) ws.send(updateFrame(doc, update));
  } else {
    ws = await open(`${server.url}/yjs/${encodeURIComponent(doc)}`);
    ws.on('close', (code) => { closedWith = code; });
    for (const update of updates) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MessageType.Sync);
      encoding.writeVarUint(encoder, SyncUpdate);
      encoding.writeVarUint8Array(encoder, update);
      ws.send(encoding.toUint8Array(encoder));
    }
  }
  // Acknowledged and delivered are timed apart: a server may acknowledge
  // updates long before it has passed them on (stock Hocuspocus acks each
  // update as it applies it, and merges what it broadcasts afterwards).
  let ackedSeconds: number | null = null;
  let deliveredSeconds: number | null = null;
  const acked = () => options.client !== 'hocuspocus' || acks >= updates.length;
  const delivered = () => watcher.received() >= updates.length;
  const elapsed = () => (performance.now() - started) / 1000;
  await until(() => {
    if (ackedSeconds === null && options.client === 'hocuspocus' && acked()) ackedSeconds = elapsed();
    if (deliveredSeconds === null && delivered()) deliveredSeconds = elapsed();
    return (acked() && delivered()) || closedWith !== null;
  }, options.timeoutMs);
  const seconds = elapsed();
  ws.terminate();
  watcher.close();
  const finished = acked() && delivered();
  return {
    server: options.serverName, client: options.client, updates: updates.length,
    ackedSeconds, deliveredSeconds,
    updatesPerSecond: finished ? updates.length / seconds : Number.NaN, closedWith,
  };
}

export interface FloodImpact {
  server: string;
  quiet: TypingLoadResult;
  /** From the flood's start: its burst allowance is taken at full speed, then its rate applies. */
  floodStart: TypingLoadResult;
  /** Once the burst allowance is spent: the flood at its sustained rate. */
  sustained: TypingLoadResult;
  /** Updates the flooder got acknowledged per second in the sustained window. */
  flooderAckedPerSecond: number;
}

/**
 * Delivery latency of a typing load on its own, then with one connection
 * flooding a document of its own: from the flood's start (which includes the
 * server's burst allowance for it, `burstAllowance` messages taken at full
 * speed), and once the flooder has been acknowledged that many (its rate applies).
 */
export async function runFloodImpact(options: {
  server: BenchServer; serverName: string; clients: number; documents: number; updatesPerSecond: number;
  warmupMs: number; durationMs: number; prefix: string; burstAllowance: number;
}): Promise<FloodImpact> {
  const load = (suffix: string, warmupMs: number, onWindow?: (edge: 'start' | 'end') => void) => runTypingLoad({
    url: options.server.url, clients: options.clients, documents: options.documents, documentPrefix: `${options.prefix}${suffix}-`,
    mode: 'open', updatesPerSecond: options.updatesPerSecond, warmupMs, durationMs: options.durationMs, onWindow,
  });
  const quiet = await load('quiet', options.warmupMs);
  // The flood starts with the window (the load's clients have connected and synced by then).
  let flooding: Promise<Flooder> | null = null;
  try {
    const floodStart = await load('start', 0, (edge) => {
      if (edge !== 'start') return;
      flooding = startFlooder(options.server.url, `${options.prefix}flood`);
      flooding.catch(() => undefined); // awaited below; a failure to start fails the row there
    });
    if (flooding === null) throw new Error('the flood-start window never began');
    const flooder: Flooder = await flooding;
    const deadline = performance.now() + 60_000;
    while (flooder.acked() < options.burstAllowance) {
      if (performance.now() > deadline) throw new Error(`the flooder was acknowledged ${flooder.acked()} of its ${options.burstAllowance}-message burst allowance in 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let ackedAtStart = 0;
    let ackedAtEnd = 0;
    const sustained = await load('sustained', options.warmupMs, (edge) => {
      if (edge === 'start') ackedAtStart = flooder.acked();
      else ackedAtEnd = flooder.acked();
    });
    return {
      server: options.serverName, quiet, floodStart, sustained,
      flooderAckedPerSecond: (ackedAtEnd - ackedAtStart) / (sustained.windowMs / 1000),
    };
  } finally {
    if (flooding !== null) await (flooding as Promise<Flooder>).then((flooder) => flooder.stop(), () => undefined);
  }
}
