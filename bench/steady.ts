// Steady load over many documents, and the same shape offered past what the
// server can take:
//   - steady: open-loop typing load (bench/typing-load.ts), delivery p50/p99;
//   - overload: every client's updates are generated before the run (real
//     Yjs updates of its own Y.Doc, never applied by the sender at run time),
//     then offered on a timer at a rate no server on this machine keeps up
//     with. A sender writes to its socket only while the socket's send buffer
//     is small (as a browser's provider is slowed by a server that reads
//     slowly), the rest waits in the sender. Measured: updates written, update
//     deliveries per second at the other clients, delivery latency (write →
//     arrival), and deliveries that never arrived: still missing once none
//     has arrived for 30 s after sending stopped.

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { percentiles, type Percentiles } from './typing-load.js';

const MessageType = { Sync: 0, Auth: 2, SyncReply: 4 } as const;
const SyncStep = { Step1: 0, Step2: 1, Update: 2 } as const;
/** A sender writes more only while its socket holds less than this unsent. */
const SEND_BUFFER_LIMIT = 64 * 1024;
/** After sending stops: deliveries still missing once none has arrived for this long count as lost. */
const DRAIN_IDLE_MS = 30_000;

export interface OverloadResult {
  offeredPerSecond: number;
  /** Updates written to the sockets per second in the window (below offered: senders were slowed). */
  sentPerSecond: number;
  /** Update deliveries to other clients per second in the window. */
  deliveredPerSecond: number;
  deliveryMs: Percentiles;
  /** Deliveries expected for everything written (each update to each other client of its document). */
  expected: number;
  /** Of those, how many never arrived within the drain. */
  lost: number;
  /** Updates still waiting in the senders when sending stopped. */
  unsent: number;
  closedEarly: number;
  windowMs: number;
}

interface Sender {
  clientId: number;
  doc: string;
  updates: Uint8Array[];
  /** First clock of each update (strictly increasing), and the clock after the last one. */
  clocks: number[];
  end: number;
  /** Write time of each update written so far. */
  times: number[];
  socket: WebSocket;
  /** Per other client id: the clock up to which its updates have arrived here. */
  received: Map<number, number>;
  closed: boolean;
}

function frame(doc: string, write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, doc);
  write(encoder);
  return encoding.toUint8Array(encoder);
}

/** `count` inserts of 1–4 characters by one new Y.Doc, as updates, with the first clock of each. */
function generate(count: number): { clientId: number; updates: Uint8Array[]; clocks: number[]; end: number } {
  const doc = new Y.Doc();
  const text = doc.getText('default');
  const updates: Uint8Array[] = [];
  const clocks: number[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  for (let i = 0; i < count; i++) {
    clocks.push(text.length);
    const length = 1 + (i % 4);
    text.insert(text.length, 'abcd'.slice(0, length));
  }
  const result = { clientId: doc.clientID, updates, clocks, end: text.length };
  doc.destroy();
  return result;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runOverload(options: {
  url: string; clients: number; documents: number; updatesPerSecond: number; warmupMs: number; durationMs: number; documentPrefix: string;
}): Promise<OverloadResult> {
  const perClient = options.updatesPerSecond / options.clients;
  const count = Math.ceil(perClient * (options.warmupMs + options.durationMs) / 1000) + 1;
  const senders: Sender[] = [];
  const byClient = new Map<number, Sender>();
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let deliveredInWindow = 0;
  const samples: number[] = [];
  let stopping = false;
  let closedEarly = 0;
  const emptyUpdate = Y.encodeStateAsUpdate(new Y.Doc());

  for (let i = 0; i < options.clients; i++) {
    const generated = generate(count);
    const sender: Sender = {
      ...generated, doc: `${options.documentPrefix}${i % options.documents}`, times: [],
      socket: new WebSocket(options.url, { perMessageDeflate: false }), received: new Map(), closed: false,
    };
    sender.socket.binaryType = 'nodebuffer';
    senders.push(sender);
    byClient.set(sender.clientId, sender);
  }

  const onMessage = (sender: Sender, data: Buffer, synced: () => void) => {
    const now = performance.now();
    const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type !== MessageType.Sync && type !== MessageType.SyncReply) return;
    const step = decoding.readVarUint(decoder);
    if (step === SyncStep.Step1) {
      // The sender starts empty: its updates go out one by one, never in the handshake.
      sender.socket.send(frame(sender.doc, (e) => {
        encoding.writeVarUint(e, MessageType.Sync);
        encoding.writeVarUint(e, SyncStep.Step2);
        encoding.writeVarUint8Array(e, emptyUpdate);
      }));
      return;
    }
    const meta = Y.parseUpdateMeta(decoding.readVarUint8Array(decoder));
    if (step === SyncStep.Step2) synced();
    for (const [client, from] of meta.from) {
      const origin = byClient.get(client);
      if (origin === undefined || origin === sender) continue;
      const to = meta.to.get(client) ?? from;
      const seen = sender.received.get(client) ?? 0;
      if (to <= seen) continue;
      sender.received.set(client, to);
      // Every update of `origin` whose first clock lies in [max(from, seen), to) arrived now.
      const start = Math.max(from, seen);
      let low = 0;
      let high = origin.clocks.length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (origin.clocks[middle] < start) low = middle + 1;
        else high = middle;
      }
      for (let i = low; i < origin.clocks.length && origin.clocks[i] < to; i++) {
        const sentAt = origin.times[i];
        if (now >= windowStart && now < windowEnd) deliveredInWindow += 1;
        if (sentAt !== undefined && sentAt >= windowStart && sentAt < windowEnd) samples.push(now - sentAt);
      }
    }
  };

  await Promise.all(senders.map((sender) => new Promise<void>((resolve, reject) => {
    sender.socket.once('error', reject);
    sender.socket.on('message', (data: Buffer) => onMessage(sender, data, resolve));
    sender.socket.on('close', () => {
      sender.closed = true;
      if (!stopping) closedEarly += 1;
    });
    sender.socket.once('open', () => {
      sender.socket.send(frame(sender.doc, (e) => {
        encoding.writeVarUint(e, MessageType.Auth);
        encoding.writeVarUint(e, 0);
        encoding.writeVarString(e, '');
      }));
      sender.socket.send(frame(sender.doc, (e) => {
        encoding.writeVarUint(e, MessageType.Sync);
        encoding.writeVarUint(e, SyncStep.Step1);
        encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc()));
      }));
    });
  })));

  // One timer for all senders: each writes what its schedule says is due, while its socket takes it.
  const started = performance.now();
  let sending = true;
  let sentInWindow = 0;
  const tick = () => {
    if (!sending) return;
    const now = performance.now();
    const due = Math.min(count, Math.floor((now - started) / 1000 * perClient) + 1);
    for (const sender of senders) {
      if (sender.closed) continue;
      while (sender.times.length < due && sender.socket.bufferedAmount < SEND_BUFFER_LIMIT) {
        const update = sender.updates[sender.times.length];
        sender.times.push(performance.now());
        if (now >= windowStart && now < windowEnd) sentInWindow += 1;
        sender.socket.send(frame(sender.doc, (e) => {
          encoding.writeVarUint(e, MessageType.Sync);
          encoding.writeVarUint(e, SyncStep.Update);
          encoding.writeVarUint8Array(e, update);
        }));
      }
    }
    setTimeout(tick, 2);
  };
  tick();
  await sleep(options.warmupMs);
  windowStart = performance.now();
  await sleep(options.durationMs);
  windowEnd = performance.now();
  sending = false;
  const offered = Math.min(count, Math.floor((windowEnd - started) / 1000 * perClient) + 1);
  let unsent = 0;
  for (const sender of senders) unsent += offered - sender.times.length;

  // Expected deliveries: everything written, to every other client of its document.
  const peers = (sender: Sender) => senders.filter((other) => other !== sender && other.doc === sender.doc);
  const missing = () => {
    let lost = 0;
    for (const receiver of senders) {
      for (const origin of peers(receiver)) {
        const written = origin.times.length;
        const reached = receiver.received.get(origin.clientId) ?? 0;
        let arrived = 0;
        while (arrived < written && origin.clocks[arrived] < reached) arrived += 1;
        lost += written - arrived;
      }
    }
    return lost;
  };
  let expected = 0;
  for (const sender of senders) expected += sender.times.length * peers(sender).length;
  // Drained: everything arrived, or nothing more arrived for DRAIN_IDLE_MS (then what is missing is lost).
  let lost = missing();
  let progressAt = performance.now();
  while (lost > 0 && performance.now() - progressAt < DRAIN_IDLE_MS && senders.some((s) => !s.closed)) {
    await sleep(250);
    const now = missing();
    if (now < lost) progressAt = performance.now();
    lost = now;
  }
  stopping = true;
  for (const sender of senders) sender.socket.terminate();

  const windowMs = windowEnd - windowStart;
  return {
    offeredPerSecond: options.updatesPerSecond,
    sentPerSecond: sentInWindow / (windowMs / 1000),
    deliveredPerSecond: deliveredInWindow / (windowMs / 1000),
    deliveryMs: percentiles(samples),
    expected, lost, unsent, closedEarly, windowMs,
  };
}
