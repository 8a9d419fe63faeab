// Typing load against a Hocuspocus-protocol server: many raw WebSocket
// clients, spread over a few documents, each inserting a few characters per
// Yjs update. Measures what a user feels:
//   - ack latency: send of an update → the server's SyncStatus ack for it
//     (acks come back in order per connection, so they match sends FIFO);
//   - delivery latency: send → the same update (same client id and clock)
//     arriving at every other client on the document;
//   - throughput: acked updates per second inside the measurement window.
//
// Clients are raw sockets, not @hocuspocus/provider: each keeps only its own
// edits in a Y.Doc (enough to produce real updates) and reads peers' updates
// only as far as their first struct id, so that one load process can drive a
// server on another core without becoming the bottleneck.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as Y from 'yjs';

const MessageType = { Sync: 0, Auth: 2, SyncReply: 4, SyncStatus: 8 } as const;
const SyncStep = { Step1: 0, Step2: 1, Update: 2 } as const;

export interface TypingLoadOptions {
  url: string;
  clients: number;
  documents: number;
  /** Document names are `<prefix><index>`; use a fresh prefix per run. */
  documentPrefix: string;
  /** 'open': each client sends `updatesPerSecond` on a timer; 'closed': each client sends its next update when the previous one is acked. */
  mode: 'open' | 'closed';
  updatesPerSecond: number;
  warmupMs: number;
  durationMs: number;
  /** Called at each update sent (warm-up included): its document, Yjs client id and first clock, and performance.now(). */
  onSent?: (documentName: string, client: number, clock: number, time: number) => void;
  /** Called as the measurement window opens and as it closes (e.g. to take the server's CPU time). */
  onWindow?: (edge: 'start' | 'end') => void;
}

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export interface TypingLoadResult {
  sent: number;
  ackedInWindow: number;
  ackedPerSecond: number;
  ackMs: Percentiles;
  deliveryMs: Percentiles;
  /** Acks that came back as SyncStatus 0 (refused) and sockets that closed during the run. */
  refused: number;
  closedEarly: number;
  /** CPU of this load process during the window, in % of one core, and its event-loop delay p99. */
  loadCpuPercent: number;
  loadLoopDelayP99Ms: number;
  windowMs: number;
}

interface Outstanding {
  sentAt: number;
  /** False for the sync step 2 a client sends during the handshake (acked too, not measured). */
  measured: boolean;
}

class TypingClient {
  readonly ydoc = new Y.Doc();
  private readonly text = this.ydoc.getText('default');
  private lastUpdate: Uint8Array | null = null;
  readonly outstanding: Outstanding[] = [];
  synced = false;
  closed = false;
  private readonly socket: WebSocket;
  private readonly ready: Promise<void>;

  constructor(url: string, readonly documentName: string, private readonly run: LoadRun) {
    this.ydoc.on('update', (update: Uint8Array) => { this.lastUpdate = update; });
    this.socket = new WebSocket(url, { perMessageDeflate: false });
    this.socket.binaryType = 'nodebuffer';
    let rejectReady: (error: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      rejectReady = reject;
      this.socket.once('error', reject);
      this.socket.on('message', (data: Buffer) => {
        this.onMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        if (this.synced) resolve();
      });
      this.socket.once('open', () => {
        this.send((e) => {
          encoding.writeVarUint(e, MessageType.Auth);
          encoding.writeVarUint(e, 0);
          encoding.writeVarString(e, '');
        });
        this.send((e) => {
          encoding.writeVarUint(e, MessageType.Sync);
          encoding.writeVarUint(e, SyncStep.Step1);
          encoding.writeVarUint8Array(e, Y.encodeStateVector(this.ydoc));
        });
      });
    });
    this.socket.on('close', (code: number) => {
      this.closed = true;
      if (!this.run.stopping) this.run.closedEarly += 1;
      // A server that closes a client before its first sync (stock Hocuspocus under a flood can) fails the run instead of hanging it.
      if (!this.synced) rejectReady(new Error(`${documentName}: closed with ${code} before its first sync`));
    });
  }

  whenSynced(): Promise<void> {
    return this.ready;
  }

  /** Types 1–4 characters at the end of this client's own text. */
  typeSomething(): void {
    if (this.closed) return;
    const length = 1 + Math.floor(Math.random() * 4);
    this.text.insert(this.text.length, 'abcd'.slice(0, length));
    const update = this.lastUpdate;
    if (update === null) throw new Error('Yjs produced no update for an insert');
    this.lastUpdate = null;
    const sentAt = performance.now();
    this.run.noteSent(this.ydoc.clientID, this.text.length - length, sentAt);
    this.run.onSent?.(this.documentName, this.ydoc.clientID, this.text.length - length, sentAt);
    this.outstanding.push({ sentAt, measured: true });
    this.send((e) => {
      encoding.writeVarUint(e, MessageType.Sync);
      encoding.writeVarUint(e, SyncStep.Update);
      encoding.writeVarUint8Array(e, update);
    });
  }

  close(): void {
    this.socket.close();
  }

  private send(write: (encoder: encoding.Encoder) => void): void {
    const encoder = encoding.createEncoder();
    encoding.writeVarString(encoder, this.documentName);
    write(encoder);
    this.socket.send(encoding.toUint8Array(encoder));
  }

  private onMessage(frame: Uint8Array): void {
    const now = performance.now();
    const decoder = decoding.createDecoder(frame);
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === MessageType.SyncStatus) {
      const applied = decoding.readVarUint(decoder) === 1;
      const acked = this.outstanding.shift();
      if (acked === undefined) return;
      if (!applied) this.run.refused += 1;
      else if (acked.measured) this.run.noteAck(this, acked.sentAt, now);
      return;
    }
    if (type !== MessageType.Sync && type !== MessageType.SyncReply) return;
    const step = decoding.readVarUint(decoder);
    if (step === SyncStep.Step1) {
      const stateVector = decoding.readVarUint8Array(decoder);
      this.outstanding.push({ sentAt: now, measured: false });
      this.send((e) => {
        encoding.writeVarUint(e, MessageType.Sync);
        encoding.writeVarUint(e, SyncStep.Step2);
        encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(this.ydoc, stateVector));
      });
    } else if (step === SyncStep.Step2) {
      this.synced = true;
    } else if (step === SyncStep.Update) {
      // Hocuspocus merges the updates of one event-loop turn into one broadcast:
      // every (client, clock) range in it is a delivery.
      const meta = Y.parseUpdateMeta(decoding.readVarUint8Array(decoder));
      for (const [client, from] of meta.from) this.run.noteDelivery(client, from, meta.to.get(client) ?? from, now);
    }
  }
}

/** Shared bookkeeping of one load run. */
class LoadRun {
  stopping = false;
  refused = 0;
  closedEarly = 0;
  sent = 0;
  windowStart = Infinity;
  windowEnd = Infinity;
  readonly ackSamples: number[] = [];
  readonly deliverySamples: number[] = [];
  /** Per sending Yjs client: the first clock of each update sent in the window and its send time, in order. */
  private readonly sends = new Map<number, { clocks: number[]; times: number[] }>();

  constructor(private readonly onAck: (client: TypingClient) => void, readonly onSent?: TypingLoadOptions['onSent']) {}

  inWindow(time: number): boolean {
    return time >= this.windowStart && time < this.windowEnd;
  }

  noteSent(client: number, clock: number, time: number): void {
    this.sent += 1;
    if (!this.inWindow(time)) return;
    let sends = this.sends.get(client);
    if (sends === undefined) this.sends.set(client, sends = { clocks: [], times: [] });
    sends.clocks.push(clock);
    sends.times.push(time);
  }

  noteAck(client: TypingClient, sentAt: number, now: number): void {
    if (this.inWindow(sentAt)) this.ackSamples.push(now - sentAt);
    this.onAck(client);
  }

  /** Structs [from, to) of `client` arrived at a peer. */
  noteDelivery(client: number, from: number, to: number, now: number): void {
    const sends = this.sends.get(client);
    if (sends === undefined) return;
    const { clocks, times } = sends;
    let low = 0;
    let high = clocks.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (clocks[middle] < from) low = middle + 1;
      else high = middle;
    }
    for (let i = low; i < clocks.length && clocks[i] < to; i++) this.deliverySamples.push(now - times[i]);
  }
}

export function percentiles(samples: number[]): Percentiles {
  if (samples.length === 0) return { count: 0, p50: NaN, p90: NaN, p95: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] };
}

/** How long the clients of a run may take to connect and sync before the run fails. */
const SYNC_TIMEOUT_MS = 60_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runTypingLoad(options: TypingLoadOptions): Promise<TypingLoadResult> {
  let sending = false;
  const run = new LoadRun((client) => {
    if (options.mode === 'closed' && sending) client.typeSomething();
  }, options.onSent);
  const clients: TypingClient[] = [];
  for (let i = 0; i < options.clients; i++) {
    clients.push(new TypingClient(options.url, `${options.documentPrefix}${i % options.documents}`, run));
  }
  // A server that cannot answer (stock Hocuspocus still working through a flood it took in at
  // once, say) fails the run after a bound instead of holding the whole bench.
  let syncTimer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(clients.map((c) => c.whenSynced())),
      new Promise<never>((_, reject) => {
        syncTimer = setTimeout(() => reject(new Error(
          `${clients.filter((c) => !c.synced).length} of ${clients.length} clients were not synced ${SYNC_TIMEOUT_MS / 1000} s after connecting`)), SYNC_TIMEOUT_MS);
      }),
    ]);
  } catch (error) {
    run.stopping = true;
    for (const client of clients) client.close();
    throw error;
  } finally {
    clearTimeout(syncTimer);
  }

  sending = true;
  const timers: NodeJS.Timeout[] = [];
  if (options.mode === 'open') {
    const interval = 1000 / options.updatesPerSecond;
    for (const client of clients) {
      // A random phase per client, so sends are spread over the interval as with real typists.
      timers.push(setTimeout(() => {
        client.typeSomething();
        timers.push(setInterval(() => client.typeSomething(), interval));
      }, Math.random() * interval));
    }
  } else {
    for (const client of clients) client.typeSomething();
  }

  await sleep(options.warmupMs);
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const cpuBefore = process.cpuUsage();
  options.onWindow?.('start');
  run.windowStart = performance.now();
  await sleep(options.durationMs);
  run.windowEnd = performance.now();
  options.onWindow?.('end');
  const cpu = process.cpuUsage(cpuBefore);
  loopDelay.disable();
  const ackedInWindow = run.ackSamples.length;

  // Stop sending, then let every outstanding ack and delivery arrive (bounded).
  sending = false;
  for (const timer of timers) clearTimeout(timer);
  const drainDeadline = performance.now() + 15_000;
  while (clients.some((c) => !c.closed && c.outstanding.length > 0) && performance.now() < drainDeadline) await sleep(20);
  await sleep(100);
  run.stopping = true;
  for (const client of clients) client.close();

  const windowMs = run.windowEnd - run.windowStart;
  return {
    sent: run.sent,
    ackedInWindow,
    ackedPerSecond: ackedInWindow / (windowMs / 1000),
    ackMs: percentiles(run.ackSamples),
    deliveryMs: percentiles(run.deliverySamples),
    refused: run.refused,
    closedEarly: run.closedEarly,
    loadCpuPercent: ((cpu.user + cpu.system) / 1000) / windowMs * 100,
    loadLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    windowMs,
  };
}
