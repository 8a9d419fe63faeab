// Delivery latency between instances through Redis, and what Redis costs in
// server CPU. Load (defaults): 5,000 WebSocket connections over 500 documents,
// 10 per document, 100 updates/s in all, for 30 s (--quick: 10 s).
//   - redis on: two `palimpsest serve` processes sharing one SQLite file and
//     one redis-server; per document 5 connections on each, one of those on
//     the first instance writes. Latency is measured from the send to the
//     arrival on the other 4 connections of the same instance and on the 5
//     of the other one.
//   - redis off: one instance carries all 10 connections of every document.
// Connections are raw `ws` sockets speaking the Hocuspocus protocol (5,000
// provider objects would measure the load generator). Each update sets a
// unique token in a Y.Map; receivers decode the update and look it up.
// CPU per delivered update = server CPU time (user + system, all instances)
// during the window / updates delivered to receivers.
//
// `node dist/bench/redis-latency.js [--quick]` prints a table; bench/run.ts
// imports runRedisLatency(). Loopback only; stops by itself.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { startBenchServer, type BenchServer } from './server-process.js';

export interface RedisLatencyRow {
  scenario: string;
  metric: string;
  value: number;
  unit: string;
}

export interface RedisLatencyOptions {
  quick?: boolean;
  dir?: string;
  progress?: (line: string) => void;
  connections?: number;
  documents?: number;
  updatesPerSecond?: number;
  durationMs?: number;
  /**
   * The store both instances of the redis-on scenario use (a SQLite path or a
   * postgres:// URL); default a new SQLite file in `dir`.
   */
  data?: string;
  /** Label of the redis-on scenario (default "redis on, 2 instances"). */
  scenario?: string;
  /** Skip the one-instance scenario without Redis. */
  onlyRedisOn?: boolean;
}

const MessageType = { Sync: 0, Auth: 2 } as const;
// Every bench connection comes from 127.0.0.1: lift the per-address cap.
const loadFlags = ['--max-connections-per-address', '0'];

export async function runRedisLatency(options: RedisLatencyOptions = {}): Promise<RedisLatencyRow[]> {
  const progress = options.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const documents = options.documents ?? 500;
  const connections = options.connections ?? 5_000;
  const perDocument = Math.max(2, Math.round(connections / documents));
  const updatesPerSecond = options.updatesPerSecond ?? 100;
  const durationMs = options.durationMs ?? (options.quick === true ? 10_000 : 30_000);
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'palimpsest-redis-bench-'));
  const rows: RedisLatencyRow[] = [];
  try {
    const redis = await startRedisServer();
    try {
      progress(`redis: two instances, ${documents * perDocument} connections, ${updatesPerSecond} updates/s for ${durationMs / 1000} s`);
      const data = options.data ?? join(dir, `redis-on-${Date.now()}.db`);
      const instances = [
        await startBenchServer(['palimpsest', '--data', data, '--', '--redis', redis.url, '--instance-id', 'bench-a', ...loadFlags]),
        await startBenchServer(['palimpsest', '--data', data, '--', '--redis', redis.url, '--instance-id', 'bench-b', ...loadFlags]),
      ];
      try {
        const result = await runLoad({ instances, documents, perDocument, updatesPerSecond, durationMs, progress, redisPid: redis.pid });
        rows.push(...resultRows(options.scenario ?? 'redis on, 2 instances', result));
      } finally {
        await Promise.all(instances.map((instance) => instance.stop()));
      }
    } finally {
      redis.stop();
    }
    if (options.onlyRedisOn === true) return rows;
    progress('redis: one instance, no redis');
    const single = await startBenchServer(['palimpsest', '--data', join(dir, `redis-off-${Date.now()}.db`), '--', ...loadFlags]);
    try {
      const result = await runLoad({ instances: [single], documents, perDocument, updatesPerSecond, durationMs, progress, redisPid: null });
      rows.push(...resultRows('redis off, 1 instance', result));
    } finally {
      await single.stop();
    }
  } finally {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

interface LoadResult {
  sameInstance: number[];
  crossInstance: number[];
  sent: number;
  delivered: number;
  expectedDeliveries: number;
  serverCpuMs: number;
  redisCpuMs: number | null;
  connections: number;
}

function resultRows(scenario: string, result: LoadResult): RedisLatencyRow[] {
  const rows: RedisLatencyRow[] = [
    { scenario, metric: 'connections', value: result.connections, unit: 'sockets' },
    { scenario, metric: 'updates sent', value: result.sent, unit: 'updates' },
    { scenario, metric: 'deliveries', value: result.delivered, unit: `of ${result.expectedDeliveries}` },
  ];
  for (const [label, samples] of [['same instance', result.sameInstance], ['cross instance', result.crossInstance]] as const) {
    if (samples.length === 0) continue;
    rows.push({ scenario, metric: `${label} delivery p50`, value: round(percentile(samples, 0.5)), unit: 'ms' });
    rows.push({ scenario, metric: `${label} delivery p99`, value: round(percentile(samples, 0.99)), unit: 'ms' });
    rows.push({ scenario, metric: `${label} delivery max`, value: round(percentile(samples, 1)), unit: 'ms' });
  }
  rows.push({ scenario, metric: 'server CPU per delivered update', value: round(result.serverCpuMs * 1000 / Math.max(1, result.delivered)), unit: 'µs' });
  rows.push({ scenario, metric: 'server CPU per sent update', value: round(result.serverCpuMs * 1000 / Math.max(1, result.sent)), unit: 'µs' });
  if (result.redisCpuMs !== null) {
    rows.push({ scenario, metric: 'redis-server CPU per sent update', value: round(result.redisCpuMs * 1000 / Math.max(1, result.sent)), unit: 'µs' });
  }
  return rows;
}

interface Receiver {
  instance: number;
}

async function runLoad(options: {
  instances: BenchServer[]; documents: number; perDocument: number; updatesPerSecond: number; durationMs: number;
  progress: (line: string) => void; redisPid: number | null;
}): Promise<LoadResult> {
  const { instances, documents, updatesPerSecond, durationMs } = options;
  const sentAt = new Map<string, number>();
  const sameInstance: number[] = [];
  const crossInstance: number[] = [];
  let delivered = 0;
  let measuring = false;
  const sockets: WebSocket[] = [];
  const writers: Array<{ socket: WebSocket; doc: Y.Doc; name: string }> = [];

  const onFrame = (receiver: Receiver, writerInstance: number, data: Buffer) => {
    const decoder = decoding.createDecoder(data);
    decoding.readVarString(decoder);
    if (decoding.readVarUint(decoder) !== MessageType.Sync) return;
    const syncType = decoding.readVarUint(decoder);
    if (syncType !== 1 && syncType !== 2) return;
    const update = decoding.readVarUint8Array(decoder);
    const now = performance.now();
    for (const struct of Y.decodeUpdate(update).structs) {
      if (!(struct instanceof Y.Item) || !(struct.content instanceof Y.ContentAny)) continue;
      for (const token of struct.content.arr) {
        const sent = typeof token === 'string' ? sentAt.get(token) : undefined;
        if (sent === undefined || !measuring) continue;
        delivered++;
        (receiver.instance === writerInstance ? sameInstance : crossInstance).push(now - sent);
      }
    }
  };

  // Connect in batches so the servers' accept queues are not the bottleneck.
  const plan: Array<{ name: string; instance: number; writer: boolean }> = [];
  for (let d = 0; d < documents; d++) {
    for (let c = 0; c < options.perDocument; c++) {
      plan.push({ name: `bench-${d}`, instance: instances.length === 1 ? 0 : c % instances.length, writer: c === 0 });
    }
  }
  for (let start = 0; start < plan.length; start += 250) {
    await Promise.all(plan.slice(start, start + 250).map(async (entry) => {
      const socket = await openSynced(instances[entry.instance].url, entry.name);
      sockets.push(socket);
      if (entry.writer) writers.push({ socket, doc: new Y.Doc(), name: entry.name });
      else socket.on('message', (data: Buffer) => onFrame({ instance: entry.instance }, 0, data));
    }));
  }
  options.progress(`redis:   ${sockets.length} connections synced`);

  const cpuBefore = await Promise.all(instances.map((instance) => instance.usage()));
  const redisBefore = options.redisPid === null ? null : processCpuMs(options.redisPid);
  measuring = true;
  let sent = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.floor((performance.now() - started) * updatesPerSecond / 1000);
      while (sent < due) {
        const writer = writers[Math.floor(Math.random() * writers.length)];
        const token = `t${sent}`;
        let update: Uint8Array | null = null;
        const capture = (u: Uint8Array) => { update = u; };
        writer.doc.once('update', capture);
        writer.doc.getMap('bench').set('token', token);
        sentAt.set(token, performance.now());
        writer.socket.send(syncFrame(writer.name, 2, update!));
        sent++;
      }
      if (performance.now() - started >= durationMs) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
  // Let the last updates arrive before the CPU window closes.
  const expectedDeliveries = sent * (options.perDocument - 1);
  const drainUntil = performance.now() + 2_000;
  while (delivered < expectedDeliveries && performance.now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 20));
  measuring = false;
  const cpuAfter = await Promise.all(instances.map((instance) => instance.usage()));
  const redisAfter = options.redisPid === null ? null : processCpuMs(options.redisPid);
  const serverCpuMs = cpuAfter.reduce((sum, after, i) =>
    sum + after.cpuUserMs + after.cpuSystemMs - cpuBefore[i].cpuUserMs - cpuBefore[i].cpuSystemMs, 0);

  await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    socket.once('close', () => resolve());
    socket.terminate();
  })));
  return {
    sameInstance, crossInstance, sent, delivered, expectedDeliveries, serverCpuMs,
    redisCpuMs: redisBefore === null || redisAfter === null ? null : redisAfter - redisBefore,
    connections: sockets.length,
  };
}

/** Opens a socket on `documentName`, authenticates and waits for the server's sync step 2. */
export function openSynced(url: string, documentName: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    socket.binaryType = 'nodebuffer';
    const onMessage = (data: Buffer) => {
      const decoder = decoding.createDecoder(data);
      decoding.readVarString(decoder);
      if (decoding.readVarUint(decoder) !== MessageType.Sync) return;
      if (decoding.readVarUint(decoder) !== 1) return;
      socket.off('message', onMessage);
      resolve(socket);
    };
    socket.on('message', onMessage);
    socket.once('error', reject);
    socket.once('close', (code: number, reason: Buffer) => reject(new Error(`${documentName}: closed with ${code} ${reason.toString()} before syncing`)));
    socket.once('open', () => {
      socket.send(authFrame(documentName));
      socket.send(syncFrame(documentName, 0, Y.encodeStateVector(new Y.Doc())));
    });
  });
}

function authFrame(documentName: string): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, documentName);
  encoding.writeVarUint(encoder, MessageType.Auth);
  encoding.writeVarUint(encoder, 0);
  encoding.writeVarString(encoder, '');
  return encoding.toUint8Array(encoder);
}

export function syncFrame(documentName: string, step: 0 | 1 | 2, body: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, documentName);
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, step);
  encoding.writeVarUint8Array(encoder, body);
  return encoding.toUint8Array(encoder);
}

async function startRedisServer(): Promise<{ url: string; pid: number; stop(): void }> {
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as { port: number };
      probe.close(() => resolve(free));
    });
  });
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill('SIGKILL') };
}

/** CPU time (user + system) of a process, from /proc (Linux). */
function processCpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const ticksPerSecond = 100;
    return (Number(fields[11]) + Number(fields[12])) * 1000 / ticksPerSecond;
  } catch {
    return null;
  }
}

export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function printTable(rows: RedisLatencyRow[]): string {
  const header = ['scenario', 'metric', 'value', 'unit'];
  const cells = rows.map((row) => [row.scenario, row.metric, String(row.value), row.unit]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (cols: string[]) => cols.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const documents = process.env.BENCH_DOCUMENTS === undefined ? undefined : Number(process.env.BENCH_DOCUMENTS);
  const connections = process.env.BENCH_CONNECTIONS === undefined ? undefined : Number(process.env.BENCH_CONNECTIONS);
  const rows = await runRedisLatency({ quick, documents, connections });
  process.stdout.write(`${printTable(rows)}\n`);
}
