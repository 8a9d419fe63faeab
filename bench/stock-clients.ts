// Load with the stock clients users run, not raw sockets: y-websocket's
// WebsocketProvider (on /yjs/<document>) and @hocuspocus/provider, each with
// its own Y.Doc and awareness. What they do on their own counts here — for
// one, y-websocket sends every awareness change it applies back to the
// server, peers' included — so this is where the y-websocket path is
// compared with the provider path and with the y-websocket reference server.
//   - delivery: an edit → the same edit applied at every other client of the
//     document. The window must cover the awareness renewal y-protocols makes
//     15 to 18 s after a client set its state (clients started together renew
//     together, and each renewal comes back from every peer of a y-websocket
//     client): that is when the y-websocket path used to stall;
//   - idle memory: what the server's RSS and heap grow by per idle connection.

import { HocuspocusProvider } from '@hocuspocus/provider';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import type { BenchServer } from './server-process.js';
import { percentiles, type Percentiles } from './typing-load.js';

export type StockClientKind = 'y-websocket' | 'provider';

export interface DeliveryOptions {
  url: string;
  kind: StockClientKind;
  clients: number;
  documents: number;
  /** Document names are `<prefix><index>`; use a fresh prefix per run. */
  documentPrefix: string;
  /** Edits per second over all clients (each by a random client). */
  updatesPerSecond: number;
  warmupMs: number;
  durationMs: number;
}

export interface DeliveryResult {
  sent: number;
  deliveryMs: Percentiles;
  /** Deliveries the window's edits called for (edits × the other clients of their document). */
  expectedDeliveries: number;
  /** Clients whose connection closed during the run. */
  closedEarly: number;
}

interface StockClient {
  documentName: string;
  doc: Y.Doc;
  text: Y.Text;
  synced: Promise<void>;
  closed: boolean;
  destroy(): void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function openClient(url: string, kind: StockClientKind, documentName: string): StockClient {
  const doc = new Y.Doc();
  if (kind === 'y-websocket') {
    // No BroadcastChannel: clients of one document in this process would otherwise skip the server.
    const provider = new WebsocketProvider(`${url}/yjs`, documentName, doc, { WebSocketPolyfill: WebSocket as never, disableBc: true });
    const client: StockClient = {
      documentName, doc, text: doc.getText('default'), closed: false,
      synced: new Promise((resolve) => provider.once('sync', () => resolve())),
      // The awareness keeps an interval (and this process) alive until it is destroyed too.
      destroy: () => {
        provider.destroy();
        provider.awareness.destroy();
      },
    };
    provider.on('connection-close', () => { client.closed = true; });
    return client;
  }
  const provider = new HocuspocusProvider({ url, name: documentName, document: doc, WebSocketPolyfill: WebSocket as never, quiet: true } as never);
  const client: StockClient = {
    documentName, doc, text: doc.getText('default'), closed: false,
    synced: new Promise((resolve) => provider.on('synced', () => resolve())),
    destroy: () => provider.destroy(),
  };
  provider.on('disconnect', () => { client.closed = true; });
  return client;
}

/** Opens `count` clients spread over `documents` documents, in batches, and waits until all have synced. */
async function openClients(url: string, kind: StockClientKind, count: number, documents: number, prefix: string): Promise<StockClient[]> {
  const clients: StockClient[] = [];
  const deadline = performance.now() + 120_000;
  for (let start = 0; start < count; start += 100) {
    const batch: StockClient[] = [];
    for (let i = start; i < Math.min(count, start + 100); i++) batch.push(openClient(url, kind, `${prefix}${i % documents}`));
    clients.push(...batch);
    const timeout = sleep(Math.max(0, deadline - performance.now())).then(() => 'timeout' as const);
    if (await Promise.race([Promise.all(batch.map((c) => c.synced)), timeout]) === 'timeout') {
      for (const client of clients) client.destroy();
      throw new Error(`${kind} clients did not all sync within 120 s (${clients.length} opened)`);
    }
  }
  return clients;
}

export async function runStockClientDelivery(options: DeliveryOptions): Promise<DeliveryResult> {
  const clients = await openClients(options.url, options.kind, options.clients, options.documents, options.documentPrefix);
  let windowStart = Infinity;
  let windowEnd = Infinity;
  const samples: number[] = [];
  /** Per sending Yjs client: the first clock of each edit sent in the window and its send time, in order. */
  const sends = new Map<number, { clocks: number[]; times: number[] }>();
  for (const client of clients) {
    client.doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === null) return; // this client's own edit
      const now = performance.now();
      const meta = Y.parseUpdateMeta(update);
      for (const [sender, from] of meta.from) {
        const sent = sends.get(sender);
        if (sent === undefined) continue;
        const to = meta.to.get(sender) ?? from;
        let low = 0;
        let high = sent.clocks.length;
        while (low < high) {
          const middle = (low + high) >> 1;
          if (sent.clocks[middle] < from) low = middle + 1;
          else high = middle;
        }
        for (let i = low; i < sent.clocks.length && sent.clocks[i] < to; i++) samples.push(now - sent.times[i]);
      }
    });
  }

  const clientsOf = new Map<string, number>();
  for (const client of clients) clientsOf.set(client.documentName, (clientsOf.get(client.documentName) ?? 0) + 1);
  let sent = 0;
  let expectedDeliveries = 0;
  const edit = () => {
    const client = clients[Math.floor(Math.random() * clients.length)];
    const clock = Y.getState(client.doc.store, client.doc.clientID);
    const now = performance.now();
    if (now >= windowStart && now < windowEnd) {
      let record = sends.get(client.doc.clientID);
      if (record === undefined) sends.set(client.doc.clientID, record = { clocks: [], times: [] });
      record.clocks.push(clock);
      record.times.push(now);
      expectedDeliveries += clientsOf.get(client.documentName)! - 1;
    }
    client.text.insert(client.text.length, 'ab');
    sent += 1;
  };
  // The edits due by now, not one per tick: a timer this process is too busy
  // to run on time would otherwise lower the load the server is offered.
  const started = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - started) * options.updatesPerSecond / 1000);
    while (sent < due) edit();
  }, Math.max(1, Math.min(10, 1000 / options.updatesPerSecond)));
  await sleep(options.warmupMs);
  windowStart = performance.now();
  await sleep(options.durationMs);
  windowEnd = performance.now();
  clearInterval(timer);
  // Let the window's last edits arrive (a delivery slower than this counts as lost, and shows as a short count).
  await sleep(5000);
  const closedEarly = clients.filter((c) => c.closed).length;
  for (const client of clients) client.destroy();
  return { sent, deliveryMs: percentiles(samples), expectedDeliveries, closedEarly };
}

export interface IdleMemoryResult {
  /** Idle connections added per step (and steps taken). */
  connections: number;
  steps: number;
  /** Medians over the steps of (growth over the step) / connections. */
  rssKiBPerConnection: number;
  heapKiBPerConnection: number;
  /** Each step's RSS per connection, to show the spread. */
  rssKiBPerStep: number[];
}

/**
 * What the server's RSS and heap grow by per idle synced connection. One
 * client per document is opened first (so loaded documents are not counted);
 * then `steps` times `connections` more clients, each step measured after a
 * full GC (the server child must run with --expose-gc), and the median of the
 * steps' growth per connection is reported. The server's young generation
 * should be pinned (--min-semi-space-size = --max-semi-space-size): V8 grows
 * it with the allocation rate, up to tens of MiB per process, and when it
 * does so within one step that step's RSS would show it as per-connection memory.
 */
export async function runIdleMemory(
  server: BenchServer, kind: StockClientKind, connections: number, steps: number, documents: number, prefix: string,
): Promise<IdleMemoryResult> {
  const opened = await openClients(server.url, kind, documents, documents, prefix);
  try {
    await sleep(1000);
    let previous = await server.usage(true);
    const rss: number[] = [];
    const heap: number[] = [];
    for (let step = 0; step < steps; step++) {
      opened.push(...await openClients(server.url, kind, connections, documents, prefix));
      await sleep(1000);
      const usage = await server.usage(true);
      rss.push((usage.rssBytes - previous.rssBytes) / connections / 1024);
      heap.push((usage.heapUsedBytes - previous.heapUsedBytes) / connections / 1024);
      previous = usage;
    }
    return { connections, steps, rssKiBPerConnection: median(rss), heapKiBPerConnection: median(heap), rssKiBPerStep: rss };
  } finally {
    for (const client of opened) client.destroy();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
