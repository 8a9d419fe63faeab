// Webhook delivery under a typing load: `palimpsest serve` (in a child
// process) with --webhook-url pointing at a receiver in this (the load)
// process that checks every Standard Webhooks signature and answers 204,
// against the same server and load with webhooks off. The load is
// typing-load.ts (open loop); the server's CPU and the events received are
// taken inside its window (after the warm-up, so in a steady state where
// events go out as fast as changes come in), CPU per update acknowledged in
// the window. After the load, the receiver must get every logged change.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startBenchServer, type ServerUsage } from './server-process.js';
import { percentiles, runTypingLoad, type Percentiles } from './typing-load.js';

export interface WebhookBenchOptions {
  dir: string;
  nodeFlags: string[];
  clients: number;
  documents: number;
  /** Updates per second per client. */
  rate: number;
  warmupMs: number;
  durationMs: number;
  rounds: number;
  progress: (message: string) => void;
}

export interface WebhookRow {
  variant: string;
  /** Updates sent in the window (and acknowledged: logged), and events received in it. */
  updates: number;
  events: number;
  eventsPerSecond: number;
  /** Changes per event (the range fromSeq..toSeq). */
  changesPerEvent: number;
  /** The event's last entry committed (`data.at`) → the event received and verified. */
  lagMs: Percentiles;
  badSignatures: number;
  /** Logged changes not delivered when the wait ended (should be 0). */
  undelivered: number;
  serverCpuUsPerUpdate: number;
  serverCpuPercent: number;
}

/** 32 bytes, fixed so that runs compare; only this benchmark's receiver uses it. */
const SECRET = `whsec_${Buffer.from('palimpsest-bench-webhook-secret!').toString('base64')}`;
const KEY = Buffer.from(SECRET.slice('whsec_'.length), 'base64');

/** The receiver: verifies each event's signature, answers 204, and keeps per document the highest seq delivered. */
class Receiver {
  private readonly server: Server;
  readonly delivered = new Map<string, number>();
  readonly lags: number[] = [];
  events = 0;
  changes = 0;
  badSignatures = 0;
  /** Events received inside the window (performance.now() bounds). */
  inWindow = 0;
  windowStart = Infinity;
  windowEnd = Infinity;
  port = 0;

  constructor() {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const id = String(request.headers['webhook-id']);
        const timestamp = String(request.headers['webhook-timestamp']);
        const expected = createHmac('sha256', KEY).update(`${id}.${timestamp}.${body}`).digest();
        const valid = String(request.headers['webhook-signature']).split(' ').some((signature) => {
          const [version, value] = signature.split(',');
          const given = Buffer.from(value ?? '', 'base64');
          return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
        });
        if (!valid) {
          this.badSignatures += 1;
          response.writeHead(401).end();
          return;
        }
        const event = JSON.parse(body) as { data: { doc: string; fromSeq: number; toSeq: number; at: string } };
        const now = Date.now();
        this.events += 1;
        this.changes += event.data.toSeq - event.data.fromSeq + 1;
        const time = performance.now();
        if (time >= this.windowStart && time < this.windowEnd) {
          this.inWindow += 1;
          this.lags.push(now - Date.parse(event.data.at));
        }
        this.delivered.set(event.data.doc, Math.max(this.delivered.get(event.data.doc) ?? 0, event.data.toSeq));
        response.writeHead(204).end();
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}/hook`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The first events go out one coalescing window (1 s) after the load starts,
 * and the first one loads the server's HTTP client (some 100–300 ms of CPU
 * here, once per process): both before the window, which measures the steady state.
 */
const MIN_WARMUP_MS = 2500;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Variant {
  name: string;
  /** Extra serve flags; null: webhooks off. */
  flags: string[] | null;
}

const variants: Variant[] = [
  { name: 'webhooks off', flags: null },
  { name: 'webhooks on (coalesce 1000 ms, the default)', flags: [] },
  { name: 'webhooks on (coalesce 0 ms)', flags: ['--webhook-coalesce-ms', '0'] },
];

async function runOnce(options: WebhookBenchOptions, variant: Variant, round: number): Promise<WebhookRow> {
  const receiver = new Receiver();
  const url = await receiver.listen();
  const webhookFlags = variant.flags === null ? [] : ['--webhook-url', url, '--webhook-secret', SECRET, ...variant.flags];
  const server = await startBenchServer(
    ['palimpsest', '--data', join(options.dir, `webhooks-${variants.indexOf(variant)}-${round}.db`), '--', ...webhookFlags], options.nodeFlags);
  try {
    const prefix = `hooks-${round}-`;
    let start: Promise<ServerUsage> | null = null;
    let end: Promise<ServerUsage> | null = null;
    const load = await runTypingLoad({
      url: server.url, clients: options.clients, documents: options.documents, documentPrefix: prefix, mode: 'open',
      updatesPerSecond: options.rate, warmupMs: Math.max(options.warmupMs, MIN_WARMUP_MS), durationMs: options.durationMs,
      onWindow(edge) {
        if (edge === 'start') {
          start = server.usage();
          receiver.windowStart = performance.now();
        } else {
          end = server.usage();
          receiver.windowEnd = performance.now();
        }
      },
    });
    const before = await start!;
    const after = await end!;
    const logged = new Map<string, number>();
    for (let i = 0; i < options.documents; i++) {
      const doc = `${prefix}${i}`;
      const response = await fetch(`http://127.0.0.1:${server.port}/api/documents/${doc}`);
      logged.set(doc, ((await response.json()) as { seq: number }).seq);
    }
    const undelivered = () => [...logged].reduce((sum, [doc, seq]) => sum + Math.max(0, seq - (receiver.delivered.get(doc) ?? 0)), 0);
    if (variant.flags !== null) {
      const deadline = performance.now() + 20_000;
      while (undelivered() > 0 && performance.now() < deadline) await sleep(20);
    }
    const cpuMs = after.cpuUserMs + after.cpuSystemMs - before.cpuUserMs - before.cpuSystemMs;
    return {
      variant: variant.name,
      updates: load.ackedInWindow,
      events: receiver.inWindow,
      eventsPerSecond: receiver.inWindow / (load.windowMs / 1000),
      changesPerEvent: receiver.events === 0 ? NaN : receiver.changes / receiver.events,
      lagMs: percentiles(receiver.lags),
      badSignatures: receiver.badSignatures,
      undelivered: variant.flags === null ? 0 : undelivered(),
      serverCpuUsPerUpdate: (cpuMs * 1000) / load.ackedInWindow,
      serverCpuPercent: (cpuMs / load.windowMs) * 100,
    };
  } finally {
    await server.stop();
    await receiver.close();
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2;
};

export async function runWebhookBench(options: WebhookBenchOptions): Promise<WebhookRow[]> {
  const perVariant = new Map<string, WebhookRow[]>();
  for (let round = 0; round < options.rounds; round++) {
    for (const variant of variants) {
      options.progress(`webhooks: round ${round + 1}/${options.rounds}, ${variant.name}`);
      const result = await runOnce(options, variant, round);
      perVariant.set(variant.name, [...(perVariant.get(variant.name) ?? []), result]);
    }
  }
  return [...perVariant.values()].map((rows) => ({
    ...rows[0],
    updates: Math.round(median(rows.map((r) => r.updates))),
    events: Math.round(median(rows.map((r) => r.events))),
    eventsPerSecond: median(rows.map((r) => r.eventsPerSecond)),
    changesPerEvent: median(rows.map((r) => r.changesPerEvent)),
    lagMs: { ...rows[0].lagMs, p50: median(rows.map((r) => r.lagMs.p50)), p99: median(rows.map((r) => r.lagMs.p99)) },
    badSignatures: rows.reduce((sum, r) => sum + r.badSignatures, 0),
    undelivered: rows.reduce((sum, r) => sum + r.undelivered, 0),
    serverCpuUsPerUpdate: median(rows.map((r) => r.serverCpuUsPerUpdate)),
    serverCpuPercent: median(rows.map((r) => r.serverCpuPercent)),
  }));
}
