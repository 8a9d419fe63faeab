// `npm run bench`: the benchmark command. Prints one table per section on
// stdout (or one JSON document with --json), progress on stderr, stops by
// itself. Sections:
//   ack    - typing load and saturation: stock Hocuspocus with no persistence
//            vs Palimpsest appending to SQLite (synchronous=full and normal);
//   cold   - cold load of a 100,000-update history vs one full-state blob,
//            and the rate of the trace replay into the store;
//   burst  - bench/burst.ts: one connection writing 20,000 updates at once
//            (updates/s until the last is acknowledged), and other clients'
//            delivery latency while one connection floods;
//   steady - bench/steady.ts: 50 documents x 4 clients at 1,000 and 2,000
//            updates/s in all, and the same shape offered 16,000 updates/s;
//   yws    - stock clients: delivery latency of y-websocket clients vs
//            @hocuspocus/provider clients (Palimpsest, stock Hocuspocus, the
//            y-websocket reference server), and server memory per idle connection;
//   feed   - bench/feed.ts: 1,000 event-stream subscribers of one busy
//            document (delivery latency, events/s, server CPU per event),
//            and a few subscribers of the all-documents feed;
//   webhooks - bench/webhooks.ts: delivery to a local receiver, and the
//            server CPU per logged update with webhooks on vs off;
//   history - bench/history.ts: version list, preview and authorship reads
//            over a 100,000-entry log, each on a freshly started server;
//   redis  - bench/redis-latency.js, when that module is built and
//            redis-server is on the PATH (or --redis is given);
//   postgres - bench/postgres.ts: the same loads on a PostgreSQL the bench
//            starts itself, cross-instance delivery and the NOTIFY path
//            (skipped, with the reason, without initdb/pg_ctl/postgres).
// Every server runs in its own child process (bench/server-child.ts), on
// loopback only. See bench/README.md.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { serveFlags } from '../server/config.js';
import { burstUpdates, runBurst, runFloodImpact, type BurstResult, type FloodImpact } from './burst.js';
import { runColdLoad, type ColdLoadResult } from './cold-load.js';
import { runFeedBench, type FeedRow } from './feed.js';
import { runHistoryBench, type HistoryBenchResult } from './history.js';
import { runPostgresBench, type PostgresBenchResult } from './postgres.js';
import { startBenchServer, type BenchServer } from './server-process.js';
import { runIdleMemory, runStockClientDelivery, type StockClientKind } from './stock-clients.js';
import { runOverload, type OverloadResult } from './steady.js';
import { runTypingLoad, type TypingLoadResult } from './typing-load.js';
import { runWebhookBench, type WebhookRow } from './webhooks.js';

const help = `Usage: npm run bench -- [options]

Benchmarks Palimpsest against stock Hocuspocus 4.7 on this machine (loopback only).

Sections (default: all that can run):
  ack     typing load and saturation: acked updates/s, ack and delivery latency,
          Hocuspocus without persistence vs Palimpsest (synchronous=full, normal)
  cold    cold load of a long history vs one full-state blob; trace replay rate
  burst   one connection writing 20,000 updates at once (both client framings; until all
          acknowledged and delivered), Palimpsest vs stock Hocuspocus vs the y-websocket
          reference server, and other clients' delivery latency while one connection floods
  steady  50 documents x 4 clients: delivery latency at 1,000 and 2,000 updates/s in all,
          and the same shape offered 16,000 updates/s (throughput, latency, losses)
  yws     stock clients (y-websocket, @hocuspocus/provider): delivery latency
          over a window that covers their awareness renewal (20 s), and server
          memory per idle connection; Palimpsest vs stock Hocuspocus vs the y-websocket reference
          server (@y/websocket-server, when installed)
  feed    change feed: event-stream subscribers of one document edited over WebSocket
          (delivery latency, events/s, server CPU per event); all-documents feed
  webhooks  webhook delivery to a local receiver that checks signatures; server CPU
          per logged update with webhooks on vs off (same load as ack's typing load)
  history version list (first page), preview of a version (state at a seq)
          and authorship over the trace as a 100,000-entry log, on fresh servers
  redis   bench/redis-latency (runs by default when redis-server is on the PATH)
  postgres  Palimpsest on a PostgreSQL started in a temporary folder vs SQLite vs
          Hocuspocus (typing load, saturation), cross-instance delivery on
          PostgreSQL + Redis, and the NOTIFY path between two instances
          (skipped with the reason when initdb/pg_ctl/postgres are missing)

Options:
  --only <list>         comma-separated sections, e.g. --only ack,cold
  --quick               shorter windows, one round, fewer repetitions (about 2 minutes,
                        plus under 2 for the postgres section)
  --json                print one JSON document on stdout instead of tables
  --clients <n>         WebSocket clients (default 100)
  --docs <n>            documents the clients are spread over (default 10)
  --rate <n>            updates per second per client in the typing load (default 5)
  --duration <s>        measurement window per run (default 8; quick 3)
  --warmup <s>          load before each window (default 2; quick 1)
  --rounds <n>          rounds over all servers, medians reported (default 2; quick 1)
  --yws-clients <n>     stock clients in the yws delivery runs (default 2000; quick 200)
  --yws-docs <n>        documents they are spread over (default 200; quick 20)
  --yws-rate <n>        edits per second over all of them (default 100; quick 20)
  --idle-connections <n>  idle connections per memory run, added in 4 steps
                        (default 2000; quick 500 in 2 steps)
  --feed-subscribers <n>  event-stream subscribers of the busy document (default 1000)
  --feed-writers <n>    WebSocket clients editing it (default 10)
  --feed-rate <n>       their updates per second in all (default 20)
  --trace <file>        editing trace for the cold load and history (default automerge-paper)
  --transactions <n>    trace transactions replayed (default 100000)
  --dir <path>          where the SQLite files go (default: a new folder in ${tmpdir()})
  --redis / --no-redis  force / skip the redis section
  --cpu-prof <dir>      run the servers under node --cpu-prof, profiles written to <dir>
  -h, --help            this text
`;

const { values } = parseArgs({
  strict: true,
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    clients: { type: 'string' },
    docs: { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    'yws-clients': { type: 'string' },
    'yws-docs': { type: 'string' },
    'yws-rate': { type: 'string' },
    'idle-connections': { type: 'string' },
    'feed-subscribers': { type: 'string' },
    'feed-writers': { type: 'string' },
    'feed-rate': { type: 'string' },
    trace: { type: 'string', default: fileURLToPath(new URL('../../traces/automerge-paper.json.gz', import.meta.url)) },
    transactions: { type: 'string' },
    dir: { type: 'string' },
    redis: { type: 'boolean' },
    'no-redis': { type: 'boolean' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(help);
  process.exit(0);
}

function positive(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!(number > 0) || !Number.isFinite(number)) {
    process.stderr.write(`--${flag}: expected a positive number, got "${value}"\n`);
    process.exit(2);
  }
  return number;
}

const quick = values.quick;
const settings = {
  clients: Math.round(positive('clients', values.clients, 100)),
  documents: Math.round(positive('docs', values.docs, 10)),
  rate: positive('rate', values.rate, 5),
  durationMs: positive('duration', values.duration, quick ? 3 : 8) * 1000,
  warmupMs: positive('warmup', values.warmup, quick ? 1 : 2) * 1000,
  rounds: Math.round(positive('rounds', values.rounds, quick ? 1 : 2)),
  transactions: Math.round(positive('transactions', values.transactions, 100_000)),
  ywsClients: Math.round(positive('yws-clients', values['yws-clients'], quick ? 200 : 2000)),
  ywsDocuments: Math.round(positive('yws-docs', values['yws-docs'], quick ? 20 : 200)),
  ywsRate: positive('yws-rate', values['yws-rate'], quick ? 20 : 100),
  idleConnections: Math.round(positive('idle-connections', values['idle-connections'], quick ? 500 : 2000)),
  idleSteps: quick ? 2 : 4,
  feedSubscribers: Math.round(positive('feed-subscribers', values['feed-subscribers'], 1000)),
  feedWriters: Math.round(positive('feed-writers', values['feed-writers'], 10)),
  feedRate: positive('feed-rate', values['feed-rate'], 20),
  coldRepetitions: quick ? 3 : 7,
  sequentialSample: quick ? 1000 : 3000,
};

const redisModule = fileURLToPath(new URL('./redis-latency.js', import.meta.url));
const hasRedisServer = (() => {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const allSections = ['ack', 'cold', 'burst', 'steady', 'yws', 'feed', 'webhooks', 'history', 'redis', 'postgres'];
const sections = new Set(values.only === undefined ? allSections : values.only.split(',').map((s) => s.trim()));
for (const section of sections) {
  if (!allSections.includes(section)) {
    process.stderr.write(`--only: unknown section "${section}" (${allSections.join(', ')})\n`);
    process.exit(2);
  }
}
if (values['no-redis'] === true) sections.delete('redis');
else if (values.redis === true) sections.add('redis');
else if (values.only === undefined && !(hasRedisServer && existsSync(redisModule))) sections.delete('redis');

const startedAt = performance.now();
function progress(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - startedAt) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
}

// ---------------------------------------------------------------- machine

function machineInfo() {
  const memory = new Database(':memory:');
  const sqlite = (memory.prepare('select sqlite_version() as v').get() as { v: string }).v;
  memory.close();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${process.platform} ${release()}`,
    sqlite,
    loadAverageAtStart: loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

// ---------------------------------------------------------------- tables

function table(title: string, headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? format(cell) : cell)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i].length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ')} |`;
  return [
    `${title}\n`,
    line(headers),
    `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...cells.map(line),
    '',
  ].join('\n');
}

function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2;
};

// ---------------------------------------------------------------- ack section

interface ServerVariant {
  name: string;
  args: (dir: string, round: number) => string[];
}

const serverVariants: ServerVariant[] = [
  { name: 'hocuspocus (no persistence)', args: () => ['hocuspocus'] },
  { name: 'palimpsest synchronous=full', args: (dir, round) => ['palimpsest', '--data', join(dir, `ack-full-${round}.db`), '--synchronous', 'full'] },
  { name: 'palimpsest synchronous=normal', args: (dir, round) => ['palimpsest', '--data', join(dir, `ack-normal-${round}.db`), '--synchronous', 'normal'] },
];

interface AckRow {
  server: string;
  load: 'typing' | 'saturation';
  ackedPerSecond: number;
  ackP50Ms: number;
  ackP99Ms: number;
  deliveryP50Ms: number;
  deliveryP99Ms: number;
  serverCpuUsPerUpdate: number;
  serverCpuPercent: number;
  loadCpuPercent: number;
  /** The server's event-loop delay during the run: p99 and max, ms. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  refused: number;
  closedEarly: number;
}

async function runAckSection(dir: string, nodeFlags: string[]): Promise<AckRow[]> {
  const perRound = new Map<string, AckRow[]>();
  for (let round = 0; round < settings.rounds; round++) {
    for (const variant of serverVariants) {
      const server = await startBenchServer(variant.args(dir, round), nodeFlags);
      try {
        for (const load of ['typing', 'saturation'] as const) {
          progress(`ack: round ${round + 1}/${settings.rounds}, ${variant.name}, ${load} load`);
          const before = await server.usage();
          const result: TypingLoadResult = await runTypingLoad({
            url: server.url,
            clients: settings.clients,
            documents: settings.documents,
            documentPrefix: `bench-${load}-${round}-`,
            mode: load === 'typing' ? 'open' : 'closed',
            updatesPerSecond: settings.rate,
            warmupMs: settings.warmupMs,
            durationMs: settings.durationMs,
          });
          const after = await server.usage();
          // Server CPU over the whole run (warm-up and drain included), per update sent.
          const serverCpuMs = after.cpuUserMs + after.cpuSystemMs - before.cpuUserMs - before.cpuSystemMs;
          const runMs = settings.warmupMs + result.windowMs;
          const key = `${variant.name}|${load}`;
          const rows = perRound.get(key) ?? [];
          rows.push({
            server: variant.name,
            load,
            ackedPerSecond: result.ackedPerSecond,
            ackP50Ms: result.ackMs.p50,
            ackP99Ms: result.ackMs.p99,
            deliveryP50Ms: result.deliveryMs.p50,
            deliveryP99Ms: result.deliveryMs.p99,
            serverCpuUsPerUpdate: (serverCpuMs * 1000) / result.sent,
            serverCpuPercent: (serverCpuMs / runMs) * 100,
            loadCpuPercent: result.loadCpuPercent,
            loopDelayP99Ms: after.loopDelayP99Ms,
            loopDelayMaxMs: after.loopDelayMaxMs,
            refused: result.refused,
            closedEarly: result.closedEarly,
          });
          perRound.set(key, rows);
        }
      } finally {
        await server.stop();
      }
    }
  }
  return [...perRound.values()].map((rows) => ({
    ...rows[0],
    ackedPerSecond: median(rows.map((r) => r.ackedPerSecond)),
    ackP50Ms: median(rows.map((r) => r.ackP50Ms)),
    ackP99Ms: median(rows.map((r) => r.ackP99Ms)),
    deliveryP50Ms: median(rows.map((r) => r.deliveryP50Ms)),
    deliveryP99Ms: median(rows.map((r) => r.deliveryP99Ms)),
    serverCpuUsPerUpdate: median(rows.map((r) => r.serverCpuUsPerUpdate)),
    serverCpuPercent: median(rows.map((r) => r.serverCpuPercent)),
    loadCpuPercent: median(rows.map((r) => r.loadCpuPercent)),
    loopDelayP99Ms: median(rows.map((r) => r.loopDelayP99Ms)),
    loopDelayMaxMs: median(rows.map((r) => r.loopDelayMaxMs)),
    refused: rows.reduce((sum, r) => sum + r.refused, 0),
    closedEarly: rows.reduce((sum, r) => sum + r.closedEarly, 0),
  }));
}

interface GoalLine {
  goal: string;
  met: boolean;
  detail: string;
}

function ackGoals(rows: AckRow[]): GoalLine[] {
  const find = (server: string, load: string) => rows.find((r) => r.server.startsWith(server) && r.load === load);
  const goals: GoalLine[] = [];
  const baseSat = find('hocuspocus', 'saturation');
  const baseTyping = find('hocuspocus', 'typing');
  for (const mode of ['full', 'normal']) {
    const sat = find(`palimpsest synchronous=${mode}`, 'saturation');
    const typing = find(`palimpsest synchronous=${mode}`, 'typing');
    if (baseSat && sat) {
      const ratio = sat.ackedPerSecond / baseSat.ackedPerSecond;
      goals.push({
        goal: `throughput at saturation, synchronous=${mode}: not below 90% of Hocuspocus without persistence`,
        met: ratio >= 0.9,
        detail: `${format(sat.ackedPerSecond)} vs ${format(baseSat.ackedPerSecond)} acked updates/s (${(ratio * 100).toFixed(0)}%)`,
      });
    }
    if (baseTyping && typing) {
      const p50 = typing.ackP50Ms / baseTyping.ackP50Ms;
      const p99 = typing.ackP99Ms / baseTyping.ackP99Ms;
      goals.push({
        goal: `ack latency at typing load, synchronous=${mode}: p50 and p99 within 1.1x of Hocuspocus without persistence`,
        met: p50 <= 1.1 && p99 <= 1.1,
        detail: `p50 ${format(typing.ackP50Ms)} vs ${format(baseTyping.ackP50Ms)} ms (${p50.toFixed(2)}x), ` +
          `p99 ${format(typing.ackP99Ms)} vs ${format(baseTyping.ackP99Ms)} ms (${p99.toFixed(2)}x)`,
      });
    }
  }
  return goals;
}

function ackTable(rows: AckRow[]): string {
  const headers = ['server', 'load', 'acked/s', 'ack p50 ms', 'ack p99 ms', 'delivery p50 ms', 'delivery p99 ms',
    'server CPU µs/update', 'server CPU %', 'load gen CPU %', 'server loop delay p99 / max ms'];
  return table(
    `Durable appending vs no persistence: ${settings.clients} clients on ${settings.documents} documents, ` +
    `1-4 characters per update; typing = ${settings.rate} updates/s per client (open loop, ` +
    `${format(settings.clients * settings.rate)} offered/s), saturation = next update on ack (closed loop); ` +
    `${settings.durationMs / 1000} s windows, median of ${settings.rounds} round(s)`,
    headers,
    rows.map((r) => [r.server, r.load, r.ackedPerSecond, r.ackP50Ms, r.ackP99Ms, r.deliveryP50Ms, r.deliveryP99Ms,
      r.serverCpuUsPerUpdate, r.serverCpuPercent, r.loadCpuPercent, `${format(r.loopDelayP99Ms)} / ${format(r.loopDelayMaxMs)}`]),
  );
}

// ---------------------------------------------------------------- cold section

function coldGoals(result: ColdLoadResult): GoalLine[] {
  return [
    {
      goal: 'cold load in process (store.load + apply) within 2x of applying one full-state blob',
      met: result.inProcess.ratio <= 2,
      detail: `${format(result.inProcess.loadMs)} vs ${format(result.inProcess.blobMs)} ms (${result.inProcess.ratio.toFixed(2)}x)`,
    },
    {
      goal: 'cold load through the server (first sync) within 2x of Hocuspocus loading the blob',
      met: result.server.ratio <= 2,
      detail: `${format(result.server.palimpsestMs)} vs ${format(result.server.hocuspocusBlobMs)} ms (${result.server.ratio.toFixed(2)}x)`,
    },
  ];
}

function coldTables(result: ColdLoadResult): string {
  const log = result.log;
  return [
    table(
      `Cold load: ${result.trace}, first ${format(result.transactions)} transactions as ${format(log.entries)} log entries ` +
      `(${log.snapshots} snapshots, latest at seq ${format(log.lastSnapshotSeq)}, tail ${log.tail} entries, ` +
      `file ${format(log.fileBytes / 2 ** 20)} MiB); final text ${format(result.finalLength)} characters, ` +
      `full-state blob ${format(result.blobBytes / 1024)} KiB; median of ${settings.coldRepetitions}`,
      ['what', 'ms'],
      [
        [`Palimpsest load: store.load + apply snapshot and tail (${result.inProcess.tail} entries)`, result.inProcess.loadMs],
        ['  of which store.load (SQLite read)', result.inProcess.storeReadMs],
        ['  of which Y.applyUpdate of snapshot + tail', result.inProcess.applyMs],
        ['one blob: Y.applyUpdate(new Y.Doc, encodeStateAsUpdate)', result.inProcess.blobMs],
        [`ratio (goal <= 2)`, result.inProcess.ratio],
        [`Palimpsest load right after a compaction (tail ${result.inProcess.justCompacted.tail}, ${format(result.transactions - result.inProcess.tail)} updates)`,
          result.inProcess.justCompacted.loadMs],
        ['ratio to the blob of the full document', result.inProcess.justCompacted.ratio],
        ['server path: first client sync, Palimpsest (log)', result.server.palimpsestMs],
        ['server path: first client sync, Hocuspocus (blob in onLoadDocument)', result.server.hocuspocusBlobMs],
        ['ratio (goal <= 2)', result.server.ratio],
      ],
    ),
    table('Trace replay into the event store (background compaction at default thresholds: 500 entries or 1 MiB)',
      ['mode', 'synchronous', 'appends', 'appends/s'],
      result.replay.map((r) => [r.mode, r.synchronous, r.appends, r.appendsPerSecond])),
  ].join('\n');
}

// ---------------------------------------------------------------- history section

function historyGoals(result: HistoryBenchResult): GoalLine[] {
  return [
    { goal: 'versions, first page on a fresh server (after an editor opened the document): under 50 ms', met: result.versionsFirstPageMs < 50, detail: `${format(result.versionsFirstPageMs)} ms` },
    {
      goal: 'preview of a version at the worst point of the compaction cycle: under 100 ms', met: result.previewWorstMs < 100,
      detail: `${format(result.previewWorstMs)} ms (seq ${format(result.worstSeq)}, ${result.worstReplay} entries after its snapshot)`,
    },
    { goal: 'authorship of the latest state on a fresh server (after an editor opened the document): under 200 ms', met: result.authorshipMs < 200, detail: `${format(result.authorshipMs)} ms` },
  ];
}

function historyTable(result: HistoryBenchResult): string {
  return table(
    `History reads: ${result.trace}, ${format(result.entries)} log entries by 3 authors (snapshots at ${result.snapshots.map(format).join(', ')}), ` +
    `final text ${format(result.finalLength)} characters; each repetition on freshly started servers, median of ${settings.coldRepetitions}`,
    ['what', 'ms'],
    [
      [`GET /versions (first page: ${result.versions} versions), new server, after an editor opened the document`, result.versionsFirstPageMs],
      ['GET /authorship of the latest state, then', result.authorshipMs],
      ['GET /versions as the very first request of a server process', result.coldProcessVersionsMs],
      ['GET /authorship as the second request of a server process', result.coldProcessAuthorshipMs],
      ['GET /state?at=<random seq> (preview)', result.previewRandomMs],
      [`GET /state?at=${result.worstSeq} (preview, ${result.worstReplay} entries after its snapshot)`, result.previewWorstMs],
    ],
  );
}

// ---------------------------------------------------------------- yws section

interface YwsVariant {
  name: string;
  args: (dir: string) => string[];
  kinds: StockClientKind[];
}

/** Palimpsest takes more than the default 256 connections from one address (all of them come from loopback here). */
const ywsVariants: YwsVariant[] = [
  { name: 'y-websocket reference server', args: () => ['y-websocket'], kinds: ['y-websocket'] },
  { name: 'hocuspocus (no persistence)', args: () => ['hocuspocus'], kinds: ['provider'] },
  {
    name: 'palimpsest synchronous=full',
    args: (dir) => ['palimpsest', '--data', join(dir, `yws-${Date.now()}.db`), '--', '--max-connections-per-address', '0'],
    kinds: ['provider', 'y-websocket'],
  },
];

/** Long enough to hold the awareness renewal clients make 15-18 s after they connect (see stock-clients.ts). */
const YWS_WINDOW_MS = 20_000;

/**
 * The memory runs pin each server's young generation (V8's semi-spaces) at
 * this size, its default starting size here: V8 grows it with the
 * allocation rate (to 64 MiB semi-spaces on this machine), a cost of the
 * process and not of each connection, and a step in which it grew would
 * otherwise count it per connection (see runIdleMemory).
 */
const IDLE_SEMI_SPACE_MIB = 16;

interface YwsRow {
  server: string;
  clients: StockClientKind;
  deliveryP50Ms: number;
  deliveryP95Ms: number;
  deliveryP99Ms: number;
  deliveries: number;
  expectedDeliveries: number;
  loopDelayMaxMs: number;
  idleRssKiB: number;
  idleHeapKiB: number;
  /** RSS per connection of each step of the memory run. */
  idleRssKiBSteps: number[];
  closedEarly: number;
}

async function startOrSkip(variant: YwsVariant, dir: string, flags: string[]): Promise<BenchServer | null> {
  try {
    return await startBenchServer(variant.args(dir), flags);
  } catch (error) {
    if (variant.args(dir)[0] !== 'y-websocket') throw error;
    progress(`yws: ${variant.name} skipped (${(error as Error).message.split('\n')[0]}); npm install gives it (@y/websocket-server is a dev dependency)`);
    return null;
  }
}

async function runYwsSection(dir: string, nodeFlags: string[]): Promise<YwsRow[]> {
  const rows: YwsRow[] = [];
  for (const variant of ywsVariants) {
    for (const kind of variant.kinds) {
      const server = await startOrSkip(variant, dir, nodeFlags);
      if (server === null) break;
      try {
        progress(`yws: ${variant.name}, ${kind} clients, delivery (${settings.ywsClients} clients, ${settings.ywsRate} edits/s)`);
        await server.usage();
        const delivery = await runStockClientDelivery({
          url: server.url, kind, clients: settings.ywsClients, documents: settings.ywsDocuments,
          documentPrefix: `yws-${kind}-`, updatesPerSecond: settings.ywsRate,
          warmupMs: settings.warmupMs, durationMs: YWS_WINDOW_MS,
        });
        const usage = await server.usage();
        rows.push({
          server: variant.name, clients: kind,
          deliveryP50Ms: delivery.deliveryMs.p50, deliveryP95Ms: delivery.deliveryMs.p95, deliveryP99Ms: delivery.deliveryMs.p99,
          deliveries: delivery.deliveryMs.count, expectedDeliveries: delivery.expectedDeliveries, loopDelayMaxMs: usage.loopDelayMaxMs,
          idleRssKiB: NaN, idleHeapKiB: NaN, idleRssKiBSteps: [], closedEarly: delivery.closedEarly,
        });
      } finally {
        await server.stop();
      }
      // A fresh server for the memory run, so that what the delivery run left behind does not count.
      const idleServer = await startOrSkip(variant, dir, [...nodeFlags, '--expose-gc',
        `--min-semi-space-size=${IDLE_SEMI_SPACE_MIB}`, `--max-semi-space-size=${IDLE_SEMI_SPACE_MIB}`]);
      if (idleServer === null) break;
      try {
        const perStep = Math.max(1, Math.round(settings.idleConnections / settings.idleSteps));
        progress(`yws: ${variant.name}, ${kind} clients, memory of ${settings.idleSteps} x ${perStep} idle connections`);
        const idle = await runIdleMemory(idleServer, kind, perStep, settings.idleSteps, settings.ywsDocuments, `idle-${kind}-`);
        rows[rows.length - 1].idleRssKiB = idle.rssKiBPerConnection;
        rows[rows.length - 1].idleHeapKiB = idle.heapKiBPerConnection;
        rows[rows.length - 1].idleRssKiBSteps = idle.rssKiBPerStep;
      } finally {
        await idleServer.stop();
      }
    }
  }
  return rows;
}

function ywsGoals(rows: YwsRow[]): GoalLine[] {
  const palimpsest = (kind: StockClientKind) => rows.find((r) => r.server.startsWith('palimpsest') && r.clients === kind);
  const yws = palimpsest('y-websocket');
  const provider = palimpsest('provider');
  const goals: GoalLine[] = [];
  // With the share delivered: a delivery later than the run's grace period is missing, not counted as slow.
  const latencies = (row: YwsRow) => `${format(row.deliveryP50Ms)} / ${format(row.deliveryP95Ms)} / ${format(row.deliveryP99Ms)} ms ` +
    `(${format(100 * row.deliveries / row.expectedDeliveries)} % delivered)`;
  const references: Array<[YwsRow | undefined, YwsRow | undefined, string]> = [
    [yws, rows.find((r) => r.server.startsWith('y-websocket')), 'on the y-websocket reference server'],
    [provider, rows.find((r) => r.server.startsWith('hocuspocus')), 'on stock Hocuspocus without persistence'],
  ];
  for (const [ours, reference, where] of references) {
    if (ours === undefined || reference === undefined) continue;
    goals.push({
      goal: `delivery to ${ours.clients} clients (${settings.ywsClients} on ${settings.ywsDocuments} documents, ` +
        `${format(settings.ywsRate)} edits/s): p99 no worse than ${where}`,
      met: ours.deliveryP99Ms <= reference.deliveryP99Ms,
      detail: `p50/p95/p99 ${latencies(ours)} vs ${latencies(reference)}`,
    });
  }
  if (yws && provider) {
    const ratio = yws.deliveryP99Ms / provider.deliveryP99Ms;
    goals.push({
      goal: 'delivery to y-websocket clients as fast as to provider clients: p99 within 1.5x',
      met: ratio <= 1.5,
      detail: `p50/p95/p99 ${format(yws.deliveryP50Ms)} / ${format(yws.deliveryP95Ms)} / ${format(yws.deliveryP99Ms)} ms vs ` +
        `${format(provider.deliveryP50Ms)} / ${format(provider.deliveryP95Ms)} / ${format(provider.deliveryP99Ms)} ms (p99 ${ratio.toFixed(2)}x)`,
    });
  }
  for (const row of [yws, provider]) {
    if (row === undefined) continue;
    goals.push({
      goal: `server memory per idle ${row.clients} connection (RSS): at most 25 KiB`,
      met: row.idleRssKiB <= 25,
      detail: `${format(row.idleRssKiB)} KiB RSS (steps: ${row.idleRssKiBSteps.map(format).join(', ')}), ${format(row.idleHeapKiB)} KiB heap`,
    });
  }
  return goals;
}

function ywsTable(rows: YwsRow[]): string {
  return table(
    `Stock clients: ${settings.ywsClients} y-websocket or @hocuspocus/provider clients on ${settings.ywsDocuments} documents, ` +
    `${format(settings.ywsRate)} edits/s over all of them, ${YWS_WINDOW_MS / 1000} s window (it holds the clients' ` +
    `awareness renewal); idle memory: ${settings.idleConnections} idle connections in ${settings.idleSteps} steps after one ` +
    `client per document, server RSS and heap after a full GC, growth per connection (median of the steps; young ` +
    `generation pinned at ${IDLE_SEMI_SPACE_MIB} MiB semi-spaces)`,
    ['server', 'clients', 'delivery p50 ms', 'p95 ms', 'p99 ms', 'deliveries (of expected)', 'server loop delay max ms',
      'idle RSS KiB/conn', 'idle heap KiB/conn'],
    rows.map((r) => [r.server, r.clients, r.deliveryP50Ms, r.deliveryP95Ms, r.deliveryP99Ms,
      `${format(r.deliveries)} (${format(r.expectedDeliveries)})`, r.loopDelayMaxMs, r.idleRssKiB, r.idleHeapKiB]),
  );
}

// ---------------------------------------------------------------- redis section

interface RedisRow {
  scenario: string;
  metric: string;
  value: number;
  unit: string;
}

async function runRedisSection(dir: string): Promise<RedisRow[]> {
  if (!existsSync(redisModule)) throw new Error('bench/redis-latency.ts is not built (dist/bench/redis-latency.js missing)');
  const module = (await import(redisModule)) as Record<string, unknown>;
  const candidates = ['runRedisLatency', 'redisLatency', 'default', ...Object.keys(module)];
  const name = candidates.find((key) => typeof module[key] === 'function');
  if (name === undefined) throw new Error('bench/redis-latency.js exports no function');
  const run = module[name] as (options: Record<string, unknown>) => Promise<RedisRow[]> | RedisRow[];
  progress(`redis: running ${name}() from bench/redis-latency`);
  return await run({ quick, dir, progress, json: values.json });
}

// ---------------------------------------------------------------- burst

/** Flood rows that could not be measured (a server that closed the typing clients), said under the table. */
const floodFailures: string[] = [];
/** The server's --message-burst default: a flooder's first messages, taken at full speed. */
const DEFAULT_MESSAGE_BURST = Number(serveFlags['message-burst'].default);

const burstUnlimited: ServerVariant = {
  name: 'palimpsest synchronous=full, --max-messages-per-second 0',
  args: (dir, round) => [...serverVariants[1].args(dir, round).map((a) => a.replace('ack-full-', 'burst-unlimited-')), '--', '--max-messages-per-second', '0'],
};

const burstReference: ServerVariant = { name: 'y-websocket reference server', args: () => ['y-websocket'] };

async function runBurstSection(dir: string, nodeFlags: string[]): Promise<{ bursts: BurstResult[]; floods: FloodImpact[] }> {
  const count = quick ? 5000 : 20_000;
  const updates = burstUpdates(count);
  const bursts: BurstResult[] = [];
  const floods: FloodImpact[] = [];
  // The rate-limit-off row shows what the durable path itself takes from one connection.
  const variants = [serverVariants[0], burstReference, serverVariants[1], burstUnlimited];
  for (const variant of variants) {
    const kind = variant.args(dir, 0)[0];
    let server: BenchServer;
    try {
      server = await startBenchServer(variant.args(dir, 99), nodeFlags);
    } catch (error) {
      if (kind !== 'y-websocket') throw error;
      progress(`burst: ${variant.name} skipped (${(error as Error).message.split('\n')[0]}); npm install gives it (@y/websocket-server is a dev dependency)`);
      continue;
    }
    try {
      const clients = kind === 'palimpsest' ? (['hocuspocus', 'y-websocket'] as const)
        : kind === 'y-websocket' ? (['y-websocket'] as const) : (['hocuspocus'] as const);
      for (const client of clients) {
        progress(`burst: ${variant.name}, ${count} updates at once from one ${client} connection`);
        bursts.push(await runBurst({
          server, serverName: variant.name, client, updates, doc: `burst-${client}`, timeoutMs: 120_000,
          observerFraming: kind === 'y-websocket' ? 'y-websocket' : 'hocuspocus',
        }));
      }
      if (variant === burstUnlimited || variant === burstReference) continue;
      progress(`burst: ${variant.name}, typing load with and without a flooding connection`);
      try {
        floods.push(await runFloodImpact({
          server, serverName: variant.name, clients: 40, documents: 20, updatesPerSecond: 5,
          warmupMs: settings.warmupMs, durationMs: settings.durationMs, prefix: 'flood-', burstAllowance: DEFAULT_MESSAGE_BURST,
        }));
      } catch (error) {
        floodFailures.push(`${variant.name}: the flood row failed (${(error as Error).message})`);
        progress(`burst: ${floodFailures[floodFailures.length - 1]}`);
      }
    } finally {
      await server.stop();
    }
  }
  return { bursts, floods };
}

function burstTables(bursts: BurstResult[], floods: FloodImpact[]): string {
  return [
    table(`One connection writing ${format(bursts[0]?.updates ?? 0)} updates at once (default flags unless named)`,
      ['server', 'client framing', 'all acked, s', 'all delivered, s', 'updates/s (both done)', 'closed with'],
      bursts.map((b) => [b.server, b.client, b.ackedSeconds ?? '-', b.deliveredSeconds ?? 'never', b.updatesPerSecond,
        b.closedWith === null ? 'never' : String(b.closedWith)])),
    table('Delivery to other clients (40 clients, 20 documents, 5 updates/s each) without and with one flooding connection: ' +
      `from the flood's start (its burst allowance, ${format(DEFAULT_MESSAGE_BURST)} messages, taken at full speed) and once that is spent`,
      ['server', 'quiet p50 ms', 'quiet p99 ms', 'flood start p50 ms', 'flood start p99 ms', 'sustained p50 ms', 'sustained p99 ms', 'flooder acked/s'],
      floods.map((f) => [f.server, f.quiet.deliveryMs.p50, f.quiet.deliveryMs.p99, f.floodStart.deliveryMs.p50, f.floodStart.deliveryMs.p99,
        f.sustained.deliveryMs.p50, f.sustained.deliveryMs.p99, f.flooderAckedPerSecond])),
    ...floodFailures.map((line) => `${line}\n`),
  ].join('\n');
}

function burstGoals(bursts: BurstResult[], floods: FloodImpact[]): GoalLine[] {
  const goals: GoalLine[] = [];
  const hocuspocus = bursts.find((b) => b.server === serverVariants[0].name);
  const durable = bursts.find((b) => b.server === burstUnlimited.name && b.client === 'hocuspocus');
  if (hocuspocus !== undefined && durable !== undefined) {
    goals.push({
      goal: 'one connection, durable, rate limit off: at least the updates/s of Hocuspocus without persistence (all acknowledged and delivered)',
      met: durable.updatesPerSecond >= hocuspocus.updatesPerSecond,
      detail: `${format(durable.updatesPerSecond)} vs ${format(hocuspocus.updatesPerSecond)} updates/s`,
    });
  }
  const reference = bursts.find((b) => b.server === burstReference.name);
  const durableYws = bursts.find((b) => b.server === burstUnlimited.name && b.client === 'y-websocket');
  if (reference !== undefined && durableYws !== undefined) {
    goals.push({
      goal: 'stretch: one y-websocket connection, durable, rate limit off: half the updates/s of the y-websocket reference server or more',
      met: durableYws.updatesPerSecond >= reference.updatesPerSecond / 2,
      detail: `${format(durableYws.updatesPerSecond)} vs ${format(reference.updatesPerSecond)} updates/s`,
    });
  }
  for (const flood of floods.filter((f) => f.server === serverVariants[1].name)) {
    for (const [phase, result] of [['from its start (burst allowance at full speed)', flood.floodStart], ['at its sustained rate', flood.sustained]] as const) {
      const ratio = result.deliveryMs.p99 / flood.quiet.deliveryMs.p99;
      goals.push({ goal: `other clients' delivery p99 while one connection floods, ${phase}: under 2x`, met: ratio < 2,
        detail: `${format(result.deliveryMs.p99)} vs ${format(flood.quiet.deliveryMs.p99)} ms (${format(ratio)}x)` });
    }
  }
  return goals;
}

// ---------------------------------------------------------------- feed and webhooks sections

function feedTable(rows: FeedRow[]): string {
  return table(`Change feed: ${settings.feedWriters} WebSocket clients typing ${format(settings.feedRate)} updates/s in all ` +
    '(one document, or spread over 10 for the all-documents feed); event-stream subscribers in this process; ' +
    `${format(settings.durationMs / 1000)} s window after ${format(settings.warmupMs / 1000)} s warm-up`,
  ['feed', 'subscribers', 'updates', 'events', 'events/s', 'delivery p50 ms', 'delivery p99 ms', 'writers\' ack p50 ms',
    'server CPU µs/event', 'over writers alone µs/event', 'server loop delay p99 ms', 'out of order / missing'],
  rows.map((r) => [r.feed, String(r.subscribers), String(r.updatesSent), String(r.eventsDelivered), r.eventsPerSecond, r.deliveryMs.p50,
    r.deliveryMs.p99, r.ackMs.p50, r.serverCpuUsPerEvent, r.feedCpuUsPerEvent, r.serverLoopDelayP99Ms, `${r.outOfOrder} / ${r.missing}`]));
}

function webhookTable(rows: WebhookRow[]): string {
  return table(`Webhooks: ${settings.clients} clients on ${settings.documents} documents typing ${format(settings.rate)} updates/s each ` +
    `(open loop); receiver in this process; median of ${settings.rounds} round(s)`,
  ['server', 'updates', 'events', 'events/s', 'changes/event', 'commit → received p50 ms', 'p99 ms',
    'server CPU µs/update', 'server CPU %', 'bad signatures / undelivered'],
  rows.map((r) => [r.variant, String(r.updates), String(r.events), r.eventsPerSecond, r.changesPerEvent, r.lagMs.p50, r.lagMs.p99,
    r.serverCpuUsPerUpdate, r.serverCpuPercent, `${r.badSignatures} / ${r.undelivered}`]));
}

function webhookGoals(rows: WebhookRow[]): GoalLine[] {
  const off = rows.find((r) => r.variant === 'webhooks off');
  const on = rows.find((r) => r.variant.includes('the default'));
  if (off === undefined || on === undefined) return [];
  const extra = on.serverCpuUsPerUpdate / off.serverCpuUsPerUpdate - 1;
  return [{
    goal: 'webhooks on (default settings): under 10% more server CPU per logged update than off, every change delivered',
    met: extra < 0.1 && on.undelivered === 0 && on.badSignatures === 0,
    detail: `${format(on.serverCpuUsPerUpdate)} vs ${format(off.serverCpuUsPerUpdate)} µs/update (${(extra * 100).toFixed(1)}%), ` +
      `${on.undelivered} undelivered`,
  }];
}

// ---------------------------------------------------------------- steady

const STEADY_CLIENTS = 200;
const STEADY_DOCUMENTS = 50;
const STEADY_RATES = [1000, 2000];
const OVERLOAD_RATE = 16_000;

interface SteadyRow { server: string; offered: number; result: TypingLoadResult }
interface OverloadRow { server: string; result: OverloadResult }

async function runSteadySection(dir: string, nodeFlags: string[]): Promise<{ steady: SteadyRow[]; overload: OverloadRow[] }> {
  const steady: SteadyRow[] = [];
  const overload: OverloadRow[] = [];
  for (const variant of [serverVariants[0], serverVariants[1]]) {
    const server = await startBenchServer(variant.args(dir, 98), nodeFlags);
    try {
      for (const rate of STEADY_RATES) {
        progress(`steady: ${variant.name}, ${STEADY_DOCUMENTS} documents x ${STEADY_CLIENTS / STEADY_DOCUMENTS} clients, ${rate} updates/s`);
        steady.push({ server: variant.name, offered: rate, result: await runTypingLoad({
          url: server.url, clients: STEADY_CLIENTS, documents: STEADY_DOCUMENTS, documentPrefix: `steady-${rate}-`, mode: 'open',
          updatesPerSecond: rate / STEADY_CLIENTS, warmupMs: settings.warmupMs, durationMs: settings.durationMs,
        }) });
      }
      progress(`steady: ${variant.name}, the same shape offered ${OVERLOAD_RATE} updates/s`);
      overload.push({ server: variant.name, result: await runOverload({
        url: server.url, clients: STEADY_CLIENTS, documents: STEADY_DOCUMENTS, updatesPerSecond: OVERLOAD_RATE,
        warmupMs: settings.warmupMs, durationMs: settings.durationMs, documentPrefix: 'overload-',
      }) });
    } finally {
      await server.stop();
    }
  }
  return { steady, overload };
}

function steadyTables(steady: SteadyRow[], overload: OverloadRow[]): string {
  return [
    table(`Steady load: ${STEADY_DOCUMENTS} documents x ${STEADY_CLIENTS / STEADY_DOCUMENTS} clients, open loop (default flags)`,
      ['server', 'offered/s', 'acked/s', 'ack p99 ms', 'delivery p50 ms', 'delivery p99 ms', 'refused', 'closed'],
      steady.map(({ server, offered, result: r }) => [server, offered, r.ackedPerSecond, r.ackMs.p99, r.deliveryMs.p50, r.deliveryMs.p99,
        r.refused, r.closedEarly])),
    table(`Past the ceiling: the same shape offered ${format(OVERLOAD_RATE)} updates/s (pre-generated updates; senders write while their socket takes it)`,
      ['server', 'written/s', 'deliveries/s', 'delivery p50 ms', 'delivery p99 ms', 'deliveries expected', 'lost', 'left unsent', 'closed'],
      overload.map(({ server, result: r }) => [server, r.sentPerSecond, r.deliveredPerSecond, r.deliveryMs.p50, r.deliveryMs.p99,
        r.expected, r.lost, r.unsent, r.closedEarly])),
  ].join('\n');
}

function steadyGoals(steady: SteadyRow[], overload: OverloadRow[]): GoalLine[] {
  const goals: GoalLine[] = [];
  for (const rate of STEADY_RATES) {
    const base = steady.find((r) => r.server === serverVariants[0].name && r.offered === rate);
    const durable = steady.find((r) => r.server === serverVariants[1].name && r.offered === rate);
    if (base === undefined || durable === undefined) continue;
    const ratio = durable.result.deliveryMs.p99 / base.result.deliveryMs.p99;
    goals.push({ goal: `steady ${format(rate)} updates/s, durable: delivery p99 within 1.5x of Hocuspocus without persistence`, met: ratio <= 1.5,
      detail: `${format(durable.result.deliveryMs.p99)} vs ${format(base.result.deliveryMs.p99)} ms (${format(ratio)}x)` });
  }
  const base = overload.find((r) => r.server === serverVariants[0].name);
  const durable = overload.find((r) => r.server === serverVariants[1].name);
  if (base !== undefined && durable !== undefined) {
    goals.push({ goal: `offered ${format(OVERLOAD_RATE)} updates/s, durable: nothing lost`, met: durable.result.lost === 0 && durable.result.closedEarly === 0,
      detail: `${durable.result.lost} of ${format(durable.result.expected)} deliveries lost, ${durable.result.closedEarly} sockets closed` });
    const ratio = durable.result.deliveryMs.p99 / base.result.deliveryMs.p99;
    goals.push({ goal: `offered ${format(OVERLOAD_RATE)} updates/s, durable: delivery p99 no worse than Hocuspocus without persistence`,
      met: ratio <= 1, detail: `${format(durable.result.deliveryMs.p99)} vs ${format(base.result.deliveryMs.p99)} ms (${format(ratio)}x)` });
  }
  return goals;
}

// ---------------------------------------------------------------- postgres section

function postgresTables(result: Exclude<PostgresBenchResult, { skipped: string }>): string {
  const tables = [
    table(`Durable appending on PostgreSQL vs SQLite vs no persistence: ${settings.clients} clients on ${settings.documents} documents; ` +
      `typing = ${settings.rate} updates/s per client, saturation = next update on ack; ${settings.durationMs / 1000} s windows, one round`,
    ['server', 'load', 'acked/s', 'ack p50 ms', 'ack p99 ms', 'delivery p50 ms', 'delivery p99 ms', 'server CPU %', 'server loop delay max ms'],
    result.ack.map((r) => [r.server, r.load, r.ackedPerSecond, r.ackP50Ms, r.ackP99Ms, r.deliveryP50Ms, r.deliveryP99Ms, r.serverCpuPercent, r.loopDelayMaxMs])),
  ];
  if (Array.isArray(result.crossInstance)) {
    tables.push(table('Cross-instance delivery on PostgreSQL + Redis (bench/redis-latency)', ['scenario', 'metric', 'value', 'unit'],
      result.crossInstance.map((r) => [r.scenario, r.metric, r.value, r.unit])));
  } else {
    tables.push(`Cross-instance delivery on PostgreSQL + Redis skipped: ${result.crossInstance.skipped}\n`);
  }
  const n = result.notify;
  tables.push(table(`NOTIFY path: two instances on PostgreSQL without Redis, ${format(n.updates)} updates over 10 documents`,
    ['from', 'to', 'p50 ms', 'p99 ms', 'max ms'],
    [['writer\'s ack (entry committed)', 'client of the other instance', n.ackToOtherMs.p50, n.ackToOtherMs.p99, n.ackToOtherMs.max],
      ['writer\'s send', 'client of the other instance', n.sendToOtherMs.p50, n.sendToOtherMs.p99, n.sendToOtherMs.max]]));
  return tables.join('\n');
}

// ---------------------------------------------------------------- main

const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'palimpsest-bench-'));
const nodeFlags = values['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']];
const machine = machineInfo();
const report: Record<string, unknown> = { machine, settings, sqliteDir: dir };
const goals: GoalLine[] = [];
const out: string[] = [];
out.push(table('Machine', ['', ''], [
  ['CPU', machine.cpu], ['cores', String(machine.cores)], ['memory', `${machine.memoryGiB} GiB`],
  ['node', machine.node], ['OS', machine.os], ['SQLite', machine.sqlite], ['SQLite files in', dir],
  ['load average at start', machine.loadAverageAtStart],
]));

let failed = false;
try {
  if (sections.has('ack')) {
    const rows = await runAckSection(dir, nodeFlags);
    report.ack = rows;
    goals.push(...ackGoals(rows));
    out.push(ackTable(rows));
    if (rows.some((r) => r.refused > 0 || r.closedEarly > 0)) {
      out.push(`warning: refused acks or sockets closed during the runs: ${rows.map((r) => `${r.server}/${r.load}: ${r.refused} refused, ${r.closedEarly} closed`).join('; ')}\n`);
    }
  }
  if (sections.has('cold') && !existsSync(values.trace)) {
    // An optional input: the other sections still run, and the report says why this one did not.
    report.cold = { skipped: `no trace at ${values.trace}` };
    out.push(`Cold-load section skipped: no trace at ${values.trace} (pass --trace <file>; the repository carries traces/*.json.gz)\n`);
    progress(`cold: skipped, no trace at ${values.trace}`);
  } else if (sections.has('cold')) {
    const result = await runColdLoad({
      tracePath: values.trace, transactions: settings.transactions, dir, repetitions: settings.coldRepetitions,
      groupSize: 100, sequentialSample: settings.sequentialSample, progress,
    });
    report.cold = result;
    goals.push(...coldGoals(result));
    out.push(coldTables(result));
  }
  if (sections.has('history') && !existsSync(values.trace)) {
    report.history = { skipped: `no trace at ${values.trace}` };
    out.push(`History section skipped: no trace at ${values.trace} (pass --trace <file>)\n`);
  } else if (sections.has('history')) {
    const result = await runHistoryBench({
      tracePath: values.trace, transactions: settings.transactions, dir, repetitions: settings.coldRepetitions, progress,
    });
    report.history = result;
    goals.push(...historyGoals(result));
    out.push(historyTable(result));
  }
  if (sections.has('burst')) {
    const { bursts, floods } = await runBurstSection(dir, nodeFlags);
    report.burst = { bursts, floods };
    goals.push(...burstGoals(bursts, floods));
    out.push(burstTables(bursts, floods));
  }
  if (sections.has('steady')) {
    const { steady, overload } = await runSteadySection(dir, nodeFlags);
    report.steady = { steady, overload };
    goals.push(...steadyGoals(steady, overload));
    out.push(steadyTables(steady, overload));
  }
  if (sections.has('yws')) {
    const rows = await runYwsSection(dir, nodeFlags);
    report.yws = rows;
    goals.push(...ywsGoals(rows));
    out.push(ywsTable(rows));
    if (rows.some((r) => r.closedEarly > 0)) {
      out.push(`warning: connections closed during the yws runs: ${rows.map((r) => `${r.server}/${r.clients}: ${r.closedEarly}`).join('; ')}\n`);
    }
  }
  if (sections.has('feed')) {
    const rows = await runFeedBench({
      dir, nodeFlags, subscribers: settings.feedSubscribers, allSubscribers: 5, writers: settings.feedWriters,
      updatesPerSecond: settings.feedRate, allDocuments: 10, warmupMs: settings.warmupMs, durationMs: settings.durationMs, progress,
    });
    report.feed = rows;
    out.push(feedTable(rows));
  }
  if (sections.has('webhooks')) {
    const rows = await runWebhookBench({
      dir, nodeFlags, clients: settings.clients, documents: settings.documents, rate: settings.rate,
      warmupMs: settings.warmupMs, durationMs: settings.durationMs, rounds: settings.rounds, progress,
    });
    report.webhooks = rows;
    goals.push(...webhookGoals(rows));
    out.push(webhookTable(rows));
  }
  if (sections.has('redis')) {
    try {
      const rows = await runRedisSection(dir);
      report.redis = rows;
      out.push(table('Redis fan-out (bench/redis-latency)', ['scenario', 'metric', 'value', 'unit'],
        rows.map((r) => [r.scenario, r.metric, r.value, r.unit])));
    } catch (error) {
      report.redis = { error: (error as Error).message };
      out.push(`Redis section skipped: ${(error as Error).message}\n`);
      progress(`redis: ${(error as Error).message}`);
    }
  }
  if (sections.has('postgres')) {
    const result = await runPostgresBench({
      quick, dir, progress, nodeFlags, clients: settings.clients, documents: settings.documents, rate: settings.rate,
      warmupMs: settings.warmupMs, durationMs: settings.durationMs,
    });
    report.postgres = result;
    if ('skipped' in result) {
      out.push(`PostgreSQL section skipped: ${result.skipped}\n`);
      progress(`postgres: skipped, ${result.skipped}`);
    } else {
      goals.push(...result.goals);
      out.push(postgresTables(result));
    }
  }
} catch (error) {
  failed = true;
  out.push(`FAILED: ${(error as Error).message} (the figures above are incomplete; the stack is on stderr)\n`);
  progress(`failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
}

report.goals = goals;
report.totalSeconds = (performance.now() - startedAt) / 1000;
if (values.json) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  out.push('Goals\n');
  for (const goal of goals) out.push(`${goal.met ? 'MET    ' : 'NOT MET'}  ${goal.goal}: ${goal.detail}`);
  out.push(`\n${failed ? 'Stopped after a failure' : 'Total'} ${format(report.totalSeconds as number)} s.\n`);
  process.stdout.write(`${out.join('\n')}\n`);
}
// The run ends here once stdout has taken everything, whatever timers the stock
// clients of the yws section (y-websocket and Hocuspocus providers) left behind.
process.stdout.write('', () => process.exit(failed ? 1 : 0));
