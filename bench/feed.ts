// The change feed under load: many Server-Sent Events subscribers on one busy
// document that WebSocket clients edit at a steady rate (the typing load of
// typing-load.ts, open loop), and a few subscribers of the all-documents feed.
// Subscribers are real HTTP connections in this (the load) process, each
// parsing its event stream; the server is `palimpsest serve` in a child
// process (server-process.ts).
//
// Measured per run, inside the typing load's window (after its warm-up):
// delivery latency (an update sent over WebSocket → its event parsed at each
// subscriber), events delivered per second, and server CPU per delivered
// event: in all, and over what the same edits cost with no subscriber (a run
// of the writers alone, per update, times the updates of this run). After the
// window every subscriber must get every entry (checked, in seq order).

import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import * as Y from 'yjs';
import { startBenchServer, type BenchServer, type ServerUsage } from './server-process.js';
import { percentiles, runTypingLoad, type Percentiles, type TypingLoadResult } from './typing-load.js';

export interface FeedBenchOptions {
  dir: string;
  nodeFlags: string[];
  /** Subscribers of the one busy document's event stream. */
  subscribers: number;
  /** Subscribers of the all-documents feed (0: that run is skipped). */
  allSubscribers: number;
  /** WebSocket clients editing, and their updates per second in all. */
  writers: number;
  updatesPerSecond: number;
  /** Documents the writers spread over in the all-documents run. */
  allDocuments: number;
  warmupMs: number;
  durationMs: number;
  progress: (message: string) => void;
}

export interface FeedRow {
  feed: 'document' | 'all documents' | 'none (writers only)';
  subscribers: number;
  updatesSent: number;
  eventsDelivered: number;
  /** Events that arrived out of seq order or with one missing before them (should be 0). */
  outOfOrder: number;
  /** Events not at every subscriber when the drain ended (should be 0). */
  missing: number;
  eventsPerSecond: number;
  deliveryMs: Percentiles;
  serverCpuMs: number;
  serverCpuUsPerEvent: number;
  /** Server CPU over the writers-only run, scaled to the updates sent, per delivered event. */
  feedCpuUsPerEvent: number;
  loadCpuPercent: number;
  /** The writers' own figures in the same run: send → ack (committed), and send → arrival at the other writers over WebSocket. */
  ackMs: Percentiles;
  peerDeliveryMs: Percentiles;
  /** Event-loop delay p99 of the server and of this process during the run. */
  serverLoopDelayP99Ms: number;
  loadLoopDelayP99Ms: number;
}

/** One event stream, parsed as an EventSource would: `id:` and `data:` lines, events ended by a blank line. */
class FeedSubscriber {
  private readonly req: ClientRequest;
  private buffer = '';
  private id = '';
  private data = '';
  closed = false;
  /** An `error` event the server ended the stream with. */
  error: string | null = null;
  readonly opened: Promise<void>;

  constructor(port: number, path: string, private readonly onEvent: (id: string, data: string, now: number) => void) {
    this.req = request({ host: '127.0.0.1', port, path, agent: false, headers: { accept: 'text/event-stream' } });
    this.opened = new Promise((resolve, reject) => {
      this.req.once('error', reject);
      this.req.once('response', (response: IncomingMessage) => {
        if (response.statusCode !== 200) {
          reject(new Error(`GET ${path} answered ${response.statusCode}`));
          response.resume();
          return;
        }
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => this.onChunk(chunk));
        response.once('close', () => { this.closed = true; });
        resolve();
      });
    });
    this.req.end();
  }

  private onChunk(chunk: string): void {
    const now = performance.now();
    this.buffer += chunk;
    let start = 0;
    for (let end = this.buffer.indexOf('\n', start); end !== -1; end = this.buffer.indexOf('\n', start)) {
      const line = this.buffer.slice(start, end);
      start = end + 1;
      if (line === '') {
        if (this.data !== '') this.onEvent(this.id, this.data, now);
        this.data = '';
      } else if (line.startsWith('id: ')) {
        this.id = line.slice(4);
      } else if (line.startsWith('data: ')) {
        this.data = this.data === '' ? line.slice(6) : `${this.data}\n${line.slice(6)}`;
      } else if (line.startsWith('event: ') && line !== 'event: message') {
        this.error ??= `${line} ${this.buffer.slice(start, start + 300)}`;
      }
      // Comment lines (": keep-alive") carry nothing.
    }
    this.buffer = this.buffer.slice(start);
  }

  close(): void {
    this.req.destroy();
  }
}

/** What the writers sent, so that an event can be traced back to its send time. */
class SendLog {
  private readonly sends = new Map<string, number>();
  /** Send time by `<doc>:<seq>`: found once (from the update in the event), then shared by every subscriber. */
  private readonly bySeq = new Map<string, number>();
  samples: number[] = [];
  /** Events received inside the window, in all. */
  delivered = 0;
  windowStart = Infinity;
  windowEnd = Infinity;

  noteSent = (doc: string, client: number, clock: number, time: number): void => {
    this.sends.set(`${doc}:${client}:${clock}`, time);
  };

  noteEvent(doc: string, seq: number, entry: { update: string }, now: number): void {
    const key = `${doc}:${seq}`;
    let sentAt = this.bySeq.get(key);
    if (sentAt === undefined) {
      const meta = Y.parseUpdateMeta(Buffer.from(entry.update, 'base64'));
      sentAt = NaN;
      for (const [client, clock] of meta.from) sentAt = this.sends.get(`${doc}:${client}:${clock}`) ?? sentAt;
      this.bySeq.set(key, sentAt);
    }
    if (now < this.windowStart || now >= this.windowEnd) return;
    this.delivered += 1;
    if (!Number.isNaN(sentAt)) this.samples.push(now - sentAt);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function documentSeq(port: number, doc: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/api/documents/${encodeURIComponent(doc)}`);
  return ((await response.json()) as { seq: number }).seq;
}

/** Opens `count` subscribers, a few dozen at a time (the server's listen backlog is finite). */
async function openSubscribers(count: number, open: () => FeedSubscriber): Promise<FeedSubscriber[]> {
  const subscribers: FeedSubscriber[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, open);
    subscribers.push(...batch);
    await Promise.all(batch.map((s) => s.opened));
  }
  return subscribers;
}

interface RunResult {
  load: TypingLoadResult;
  /** Server CPU inside the window. */
  cpuMs: number;
  loopDelayP99Ms: number;
}

async function writers(server: BenchServer, options: FeedBenchOptions, prefix: string, documents: number, log: SendLog | null): Promise<RunResult> {
  let start: Promise<ServerUsage> | null = null;
  let end: Promise<ServerUsage> | null = null;
  const load = await runTypingLoad({
    url: server.url, clients: options.writers, documents, documentPrefix: prefix, mode: 'open',
    updatesPerSecond: options.updatesPerSecond / options.writers, warmupMs: options.warmupMs, durationMs: options.durationMs,
    onSent: log?.noteSent,
    onWindow(edge) {
      if (edge === 'start') {
        start = server.usage();
        if (log !== null) log.windowStart = performance.now();
      } else {
        end = server.usage();
        if (log !== null) log.windowEnd = performance.now();
      }
    },
  });
  const before = await start!;
  const after = await end!;
  return { load, cpuMs: after.cpuUserMs + after.cpuSystemMs - before.cpuUserMs - before.cpuSystemMs, loopDelayP99Ms: after.loopDelayP99Ms };
}

/** Waits (bounded) until every subscriber has every entry the documents hold; returns how many it lacks then. */
async function drain(port: number, docs: string[], reached: () => Map<string, number[]>, subscriberCount: number): Promise<number> {
  const want = new Map<string, number>();
  for (const doc of docs) want.set(doc, await documentSeq(port, doc));
  const lacking = () => {
    let sum = 0;
    const seen = reached();
    for (const [doc, seq] of want) {
      const positions = seen.get(doc) ?? [];
      for (let i = 0; i < subscriberCount; i++) sum += Math.max(0, seq - (positions[i] ?? 0));
    }
    return sum;
  };
  const deadline = performance.now() + 15_000;
  while (lacking() > 0 && performance.now() < deadline) await sleep(20);
  return lacking();
}

function row(feed: FeedRow['feed'], subscribers: number, run: RunResult, log: SendLog, baseline: RunResult,
  outOfOrder: number, missing: number): FeedRow {
  const cpuMs = run.cpuMs;
  // What the edits of this window cost without subscribers: the writers-alone run's CPU per update in its window.
  const baselineCpuMs = baseline.cpuMs * (run.load.ackedInWindow / baseline.load.ackedInWindow);
  return {
    feed, subscribers, updatesSent: run.load.ackedInWindow, eventsDelivered: log.delivered, outOfOrder, missing,
    eventsPerSecond: log.delivered / (run.load.windowMs / 1000),
    deliveryMs: percentiles(log.samples),
    serverCpuMs: cpuMs,
    serverCpuUsPerEvent: (cpuMs * 1000) / log.delivered,
    feedCpuUsPerEvent: ((cpuMs - baselineCpuMs) * 1000) / log.delivered,
    loadCpuPercent: run.load.loadCpuPercent,
    ackMs: run.load.ackMs,
    peerDeliveryMs: run.load.deliveryMs,
    serverLoopDelayP99Ms: run.loopDelayP99Ms,
    loadLoopDelayP99Ms: run.load.loadLoopDelayP99Ms,
  };
}

function checkStreams(subscribers: FeedSubscriber[]): void {
  const failed = subscribers.filter((s) => s.error !== null);
  if (failed.length > 0) throw new Error(`${failed.length} event streams ended with an error event, e.g. ${failed[0].error}`);
}

export async function runFeedBench(options: FeedBenchOptions): Promise<FeedRow[]> {
  const server = await startBenchServer(['palimpsest', '--data', join(options.dir, 'feed.db')], options.nodeFlags);
  const rows: FeedRow[] = [];
  try {
    // The writers alone first: what the edits cost the server without any subscriber.
    options.progress(`feed: ${options.writers} writers on one document, ${options.updatesPerSecond} updates/s, no subscriber`);
    const baseline = await writers(server, options, 'feed-alone-', 1, null);
    rows.push({
      feed: 'none (writers only)', subscribers: 0, updatesSent: baseline.load.ackedInWindow, eventsDelivered: 0, outOfOrder: 0, missing: 0,
      eventsPerSecond: 0, deliveryMs: percentiles([]), serverCpuMs: baseline.cpuMs, serverCpuUsPerEvent: NaN, feedCpuUsPerEvent: NaN,
      loadCpuPercent: baseline.load.loadCpuPercent, ackMs: baseline.load.ackMs, peerDeliveryMs: baseline.load.deliveryMs,
      serverLoopDelayP99Ms: baseline.loopDelayP99Ms, loadLoopDelayP99Ms: baseline.load.loadLoopDelayP99Ms,
    });

    if (options.allSubscribers > 0) {
      options.progress(`feed: ${options.allSubscribers} subscribers of the all-documents feed, writers on ${options.allDocuments} documents`);
      const prefix = 'feed-all-';
      const docs = Array.from({ length: options.allDocuments }, (_, i) => `${prefix}${i}`);
      // Read from where the feed is now: the documents written so far are not part of this run.
      const now = await fetch(`http://127.0.0.1:${server.port}/api/changes?limit=10000`, { headers: { accept: 'application/json' } });
      await now.arrayBuffer();
      const cursor = now.headers.get('x-palimpsest-cursor') ?? '';
      const log = new SendLog();
      const positions = new Map<string, number[]>();
      let outOfOrder = 0;
      for (const doc of docs) positions.set(doc, []);
      let opened = 0;
      const subscribers = await openSubscribers(options.allSubscribers, () => {
        const index = opened++;
        for (const doc of docs) positions.get(doc)!.push(0);
        return new FeedSubscriber(server.port, `/api/changes?after=${encodeURIComponent(cursor)}`, (_id, data, now) => {
          const entry = JSON.parse(data) as { doc: string; seq: number; update: string };
          const seen = positions.get(entry.doc);
          if (seen === undefined) return; // another run's document
          if (entry.seq !== seen[index] + 1) outOfOrder += 1;
          seen[index] = entry.seq;
          log.noteEvent(entry.doc, entry.seq, entry, now);
        });
      });
      const run = await writers(server, options, prefix, options.allDocuments, log);
      const missing = await drain(server.port, docs, () => positions, subscribers.length);
      for (const subscriber of subscribers) subscriber.close();
      checkStreams(subscribers);
      rows.push(row('all documents', subscribers.length, run, log, baseline, outOfOrder, missing));
    }

    options.progress(`feed: ${options.subscribers} subscribers of one document's event stream, ${options.writers} writers`);
    const doc = 'feed-busy-0';
    const log = new SendLog();
    const seen: number[] = [];
    let outOfOrder = 0;
    const subscribers = await openSubscribers(options.subscribers, () => {
      const index = seen.push(0) - 1;
      return new FeedSubscriber(server.port, `/api/documents/${doc}/changes?after=0`, (id, data, now) => {
        const entry = JSON.parse(data) as { seq: number; update: string };
        if (entry.seq !== Number(id) || entry.seq !== seen[index] + 1) outOfOrder += 1;
        seen[index] = entry.seq;
        log.noteEvent(doc, entry.seq, entry, now);
      });
    });
    const run = await writers(server, options, 'feed-busy-', 1, log);
    const missing = await drain(server.port, [doc], () => new Map([[doc, seen]]), subscribers.length);
    const closedEarly = subscribers.filter((s) => s.closed).length;
    for (const subscriber of subscribers) subscriber.close();
    if (closedEarly > 0) throw new Error(`${closedEarly} event streams closed during the run`);
    checkStreams(subscribers);
    rows.push(row('document', subscribers.length, run, log, baseline, outOfOrder, missing));
  } finally {
    await server.stop();
  }
  return rows;
}
