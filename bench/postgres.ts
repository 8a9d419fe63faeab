// The `postgres` bench section: Palimpsest on a PostgreSQL it starts itself
// (initdb in a temporary folder, fsync on, loopback TCP; the test helper's
// way), next to SQLite and Hocuspocus without persistence, in one run:
//   - typing load and saturation (bench/typing-load.ts, as the ack section);
//   - cross-instance delivery: two instances on that PostgreSQL and one Redis,
//     5,000 connections, 100 updates/s (bench/redis-latency.ts);
//   - the notify path: two instances on PostgreSQL without Redis; time from
//     the writer's ack (the entry is committed) on one instance to the update
//     reaching a client of the other, which learns of it by LISTEN/NOTIFY.
// Skipped, with the reason, when initdb/pg_ctl/postgres are not installed.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as decoding from 'lib0/decoding';
import type WebSocket from 'ws';
import * as Y from 'yjs';
import { startPostgres, type PostgresProcess } from '../test/helpers/postgres-process.js';
import { openSynced, percentile, runRedisLatency, syncFrame, type RedisLatencyRow } from './redis-latency.js';
import { startBenchServer, type BenchServer } from './server-process.js';
import { runTypingLoad } from './typing-load.js';

export interface PostgresBenchOptions {
  quick: boolean;
  /** Where the SQLite files go. */
  dir: string;
  progress: (line: string) => void;
  nodeFlags: string[];
  clients: number;
  documents: number;
  rate: number;
  warmupMs: number;
  durationMs: number;
}

export interface PostgresAckRow {
  server: string;
  load: 'typing' | 'saturation';
  ackedPerSecond: number;
  ackP50Ms: number;
  ackP99Ms: number;
  deliveryP50Ms: number;
  deliveryP99Ms: number;
  serverCpuPercent: number;
  loopDelayMaxMs: number;
}

export interface NotifyResult {
  updates: number;
  /** Writer's ack → the update at a client of the other instance. */
  ackToOtherMs: { p50: number; p99: number; max: number };
  /** Writer's send → the same. */
  sendToOtherMs: { p50: number; p99: number; max: number };
  missing: number;
}

export interface PostgresGoal {
  goal: string;
  met: boolean;
  detail: string;
}

export type PostgresBenchResult =
  | { skipped: string }
  | { ack: PostgresAckRow[]; crossInstance: RedisLatencyRow[] | { skipped: string }; notify: NotifyResult; goals: PostgresGoal[] };

const MessageType = { Sync: 0, SyncStatus: 8 } as const;

/** Why PostgreSQL cannot run here, or null when it can. */
function missingPostgres(): string | null {
  for (const program of ['initdb', 'pg_ctl', 'postgres']) {
    try {
      execFileSync(program, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${program} not found on the PATH (install PostgreSQL 15 or later to run this section)`;
    }
  }
  return null;
}

function hasRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function runPostgresBench(options: PostgresBenchOptions): Promise<PostgresBenchResult> {
  const missing = missingPostgres();
  if (missing !== null) return { skipped: missing };
  const teardowns: Array<() => Promise<void>> = [];
  let postgres: PostgresProcess;
  try {
    options.progress('postgres: initdb and start (fsync on)');
    postgres = await startPostgres({ after: (fn) => teardowns.push(fn) }, { fsync: true });
  } catch (error) {
    for (const teardown of teardowns.reverse()) await teardown();
    return { skipped: `could not start PostgreSQL: ${(error as Error).message.split('\n')[0]}` };
  }
  try {
    const ack = await runAck(options, postgres);
    let crossInstance: RedisLatencyRow[] | { skipped: string };
    if (hasRedisServer()) {
      crossInstance = await runRedisLatency({
        quick: options.quick, dir: options.dir, progress: (line) => options.progress(line.replace(/^redis:/, 'postgres: cross-instance')),
        data: await postgres.createDatabase(`bench_cross_${Date.now()}`), scenario: 'postgres + redis, 2 instances', onlyRedisOn: true,
      });
    } else {
      crossInstance = { skipped: 'redis-server not found on the PATH' };
    }
    const notify = await runNotify(options, await postgres.createDatabase(`bench_notify_${Date.now()}`));
    return { ack, crossInstance, notify, goals: goals(ack, crossInstance, notify) };
  } finally {
    for (const teardown of teardowns.reverse()) await teardown();
  }
}

async function runAck(options: PostgresBenchOptions, postgres: PostgresProcess): Promise<PostgresAckRow[]> {
  const variants = [
    { name: 'hocuspocus (no persistence)', args: async () => ['hocuspocus'] },
    { name: 'palimpsest on SQLite (synchronous=full)', args: async () => ['palimpsest', '--data', join(options.dir, `pg-section-${Date.now()}.db`), '--synchronous', 'full'] },
    { name: 'palimpsest on PostgreSQL (fsync on)', args: async () => ['palimpsest', '--data', await postgres.createDatabase(`bench_ack_${Date.now()}`)] },
  ];
  const rows: PostgresAckRow[] = [];
  for (const variant of variants) {
    const server = await startBenchServer(await variant.args(), options.nodeFlags);
    try {
      for (const load of ['typing', 'saturation'] as const) {
        options.progress(`postgres: ${variant.name}, ${load} load`);
        const before = await server.usage();
        const result = await runTypingLoad({
          url: server.url, clients: options.clients, documents: options.documents, documentPrefix: `pg-${load}-`,
          mode: load === 'typing' ? 'open' : 'closed', updatesPerSecond: options.rate, warmupMs: options.warmupMs, durationMs: options.durationMs,
        });
        const after = await server.usage();
        const cpuMs = after.cpuUserMs + after.cpuSystemMs - before.cpuUserMs - before.cpuSystemMs;
        rows.push({
          server: variant.name, load, ackedPerSecond: result.ackedPerSecond, ackP50Ms: result.ackMs.p50, ackP99Ms: result.ackMs.p99,
          deliveryP50Ms: result.deliveryMs.p50, deliveryP99Ms: result.deliveryMs.p99,
          serverCpuPercent: (cpuMs / (options.warmupMs + result.windowMs)) * 100, loopDelayMaxMs: after.loopDelayMaxMs,
        });
      }
    } finally {
      await server.stop();
    }
  }
  return rows;
}

/**
 * One writer per document on the first instance, one reader per document on
 * the second; no Redis, so the reader's instance hears of each entry only
 * through NOTIFY and reads it from the log. Each update sets a unique token.
 */
export async function runNotify(options: PostgresBenchOptions, data: string): Promise<NotifyResult> {
  const documents = 10;
  const updatesPerSecond = 20;
  const durationMs = options.quick ? 3000 : 10_000;
  options.progress(`postgres: notify path, two instances without Redis, ${updatesPerSecond} updates/s for ${durationMs / 1000} s`);
  const flags = ['--', '--max-connections-per-address', '0'];
  const instances: BenchServer[] = [];
  const sockets: WebSocket[] = [];
  try {
    instances.push(await startBenchServer(['palimpsest', '--data', data, ...flags, '--instance-id', 'bench-writer'], options.nodeFlags));
    instances.push(await startBenchServer(['palimpsest', '--data', data, ...flags, '--instance-id', 'bench-reader'], options.nodeFlags));
    const sentAt = new Map<string, number>();
    const ackedAt = new Map<string, number>();
    const arrivedAt = new Map<string, number>();
    const writers: Array<{ socket: WebSocket; doc: Y.Doc; name: string; outstanding: string[] }> = [];
    for (let d = 0; d < documents; d++) {
      const name = `notify-${d}`;
      const reader = await openSynced(instances[1].url, name);
      sockets.push(reader);
      reader.on('message', (frame: Buffer) => {
        const now = performance.now();
        const decoder = decoding.createDecoder(frame);
        decoding.readVarString(decoder);
        if (decoding.readVarUint(decoder) !== MessageType.Sync) return;
        const step = decoding.readVarUint(decoder);
        if (step !== 1 && step !== 2) return;
        for (const struct of Y.decodeUpdate(decoding.readVarUint8Array(decoder)).structs) {
          if (!(struct instanceof Y.Item) || !(struct.content instanceof Y.ContentAny)) continue;
          for (const token of struct.content.arr) if (typeof token === 'string' && !arrivedAt.has(token)) arrivedAt.set(token, now);
        }
      });
      const socket = await openSynced(instances[0].url, name);
      sockets.push(socket);
      const writer = { socket, doc: new Y.Doc(), name, outstanding: [] as string[] };
      // Acks come back in order per connection; a rejected one (0) would leave its token without an ack time.
      socket.on('message', (frame: Buffer) => {
        const decoder = decoding.createDecoder(frame);
        decoding.readVarString(decoder);
        if (decoding.readVarUint(decoder) !== MessageType.SyncStatus) return;
        const token = writer.outstanding.shift();
        if (token !== undefined && decoding.readVarUint(decoder) === 1) ackedAt.set(token, performance.now());
      });
      writers.push(writer);
    }
    let sent = 0;
    const started = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const due = Math.floor((performance.now() - started) * updatesPerSecond / 1000);
        while (sent < due) {
          const writer = writers[sent % writers.length];
          const token = `n${sent}`;
          let update: Uint8Array | null = null;
          writer.doc.once('update', (u: Uint8Array) => { update = u; });
          writer.doc.getMap('bench').set('token', token);
          sentAt.set(token, performance.now());
          writer.outstanding.push(token);
          writer.socket.send(syncFrame(writer.name, 2, update!));
          sent++;
        }
        if (performance.now() - started >= durationMs) {
          clearInterval(timer);
          resolve();
        }
      }, 5);
    });
    // The backstop poll runs every 10 s: wait no longer than that, or it would be measured instead of NOTIFY.
    const drainUntil = performance.now() + 5000;
    while ((arrivedAt.size < sent || ackedAt.size < sent) && performance.now() < drainUntil) await new Promise((resolve) => setTimeout(resolve, 20));
    const ackTo: number[] = [];
    const sendTo: number[] = [];
    for (const [token, arrived] of arrivedAt) {
      sendTo.push(arrived - sentAt.get(token)!);
      const acked = ackedAt.get(token);
      // The other instance can forward an entry before the writer's socket has read its ack: that counts as no wait.
      if (acked !== undefined) ackTo.push(Math.max(0, arrived - acked));
    }
    const summary = (samples: number[]) => ({ p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), max: percentile(samples, 1) });
    return { updates: sent, ackToOtherMs: summary(ackTo), sendToOtherMs: summary(sendTo), missing: sent - arrivedAt.size };
  } finally {
    for (const socket of sockets) socket.terminate();
    await Promise.all(instances.map((instance) => instance.stop()));
  }
}

function goals(ack: PostgresAckRow[], cross: RedisLatencyRow[] | { skipped: string }, notify: NotifyResult): PostgresGoal[] {
  const find = (prefix: string, load: string) => ack.find((r) => r.server.startsWith(prefix) && r.load === load);
  const list: PostgresGoal[] = [];
  const sqliteTyping = find('palimpsest on SQLite', 'typing');
  const pgTyping = find('palimpsest on PostgreSQL', 'typing');
  if (sqliteTyping && pgTyping) {
    const ratio = pgTyping.ackP99Ms / sqliteTyping.ackP99Ms;
    list.push({
      goal: 'PostgreSQL: ack p99 at typing load within 2x of SQLite (synchronous=full)',
      met: ratio <= 2,
      detail: `${format(pgTyping.ackP99Ms)} vs ${format(sqliteTyping.ackP99Ms)} ms (${ratio.toFixed(2)}x)`,
    });
  }
  const sqliteSat = find('palimpsest on SQLite', 'saturation');
  const pgSat = find('palimpsest on PostgreSQL', 'saturation');
  if (sqliteSat && pgSat) {
    const ratio = pgSat.ackedPerSecond / sqliteSat.ackedPerSecond;
    list.push({
      goal: 'PostgreSQL: throughput at saturation at least 70% of SQLite (synchronous=full)',
      met: ratio >= 0.7,
      detail: `${format(pgSat.ackedPerSecond)} vs ${format(sqliteSat.ackedPerSecond)} acked updates/s (${(ratio * 100).toFixed(0)}%)`,
    });
  }
  if (Array.isArray(cross)) {
    const p99 = cross.find((r) => r.metric === 'cross instance delivery p99');
    const p50 = cross.find((r) => r.metric === 'cross instance delivery p50');
    if (p99 !== undefined) {
      list.push({
        goal: 'PostgreSQL + Redis: cross-instance delivery p99 under 10 ms (5,000 connections, 100 updates/s)',
        met: p99.value < 10,
        detail: `p50 ${format(p50?.value ?? NaN)} ms, p99 ${format(p99.value)} ms`,
      });
    }
  }
  list.push({
    goal: 'PostgreSQL without Redis: an entry logged on one instance reaches the other (NOTIFY) with p99 under 50 ms',
    met: notify.missing === 0 && notify.ackToOtherMs.p99 < 50,
    detail: `ack → other instance p50 ${format(notify.ackToOtherMs.p50)} ms, p99 ${format(notify.ackToOtherMs.p99)} ms` +
      (notify.missing > 0 ? `; ${notify.missing} of ${notify.updates} never arrived` : ''),
  });
  return list;
}

export function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
