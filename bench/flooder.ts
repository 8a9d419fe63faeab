// One connection flooding a document of its own, on a worker thread: the
// updates it makes (a Yjs transaction each) and the acks it reads would
// otherwise run on the event loop of the clients whose delivery latency is
// being measured, and that work would be counted as the server's delay.
// It keeps 2,000 updates unacknowledged for the whole run: it writes more as
// soon as the server takes them, so it floods as fast as the server lets it
// without queueing without bound in a server that has no backpressure of its own.

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import * as decoding from 'lib0/decoding';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { authFrame, MessageType, updateFrame } from './hocuspocus-frames.js';

const UNACKNOWLEDGED = 2000;

export interface Flooder {
  /** Updates the server has acknowledged so far (as last reported by the worker, at most 20 ms old). */
  acked(): number;
  /** Stops flooding and closes the connection; resolves with the final count of acknowledged updates. */
  stop(): Promise<number>;
}

export async function startFlooder(url: string, doc: string): Promise<Flooder> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { url, doc } });
  let acked = 0;
  let stopped: ((count: number) => void) | null = null;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (message: { acked: number; open?: true; stopped?: true; failed?: string }) => {
      acked = message.acked;
      if (message.failed !== undefined) reject(new Error(`the flooding connection failed: ${message.failed}`));
      if (message.open === true) resolve();
      if (message.stopped === true) stopped?.(message.acked);
    });
    worker.on('error', reject);
    void exited.then(() => reject(new Error('the flooder thread exited before its connection opened')));
  });
  try {
    await ready;
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  return {
    acked: () => acked,
    stop: async () => {
      // The last count the worker reported stands if it has ended (or ends) without answering.
      const final = new Promise<number>((resolve) => {
        stopped = resolve;
        void exited.then(() => resolve(acked));
        setTimeout(() => resolve(acked), 5000).unref();
      });
      worker.postMessage('stop');
      const count = await final;
      await worker.terminate();
      return count;
    },
  };
}

function flood(url: string, doc: string): void {
  const port = parentPort!;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let acked = 0;
  let refill: NodeJS.Timeout | null = null;
  const report = setInterval(() => port.postMessage({ acked }), 20);
  ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    decoding.readVarString(decoder);
    if (decoding.readVarUint(decoder) === MessageType.SyncStatus) acked += 1;
  });
  ws.on('error', (error) => {
    // Before it opened: the run cannot go on (after, the close below ends the flood).
    if (refill === null) port.postMessage({ acked, failed: error.message });
  });
  ws.on('close', () => {
    clearInterval(report);
    if (refill !== null) clearInterval(refill);
  });
  const source = new Y.Doc();
  const text = source.getText('t');
  let pending: Uint8Array[] = [];
  source.on('update', (update: Uint8Array) => pending.push(update));
  let sent = 0;
  ws.once('open', () => {
    ws.send(authFrame(doc));
    refill = setInterval(() => {
      if (ws.readyState !== ws.OPEN) return;
      const room = UNACKNOWLEDGED - (sent - acked);
      for (let i = 0; i < room; i++) text.insert(text.length, 'x');
      for (const update of pending) ws.send(updateFrame(doc, update));
      sent += pending.length;
      pending = [];
    }, 2);
    port.postMessage({ acked, open: true });
  });
  port.on('message', () => {
    if (refill !== null) clearInterval(refill);
    clearInterval(report);
    ws.terminate();
    source.destroy();
    port.postMessage({ acked, stopped: true });
  });
}

if (!isMainThread && (workerData as { url?: string } | null)?.url !== undefined) {
  const { url, doc } = workerData as { url: string; doc: string };
  flood(url, doc);
}
