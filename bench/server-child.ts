// One server under test, in its own process, so that the load generator does
// not share its event loop. Started by the benchmark runner:
//
//   node dist/bench/server-child.js hocuspocus [--state <file>]
//   node dist/bench/server-child.js palimpsest --data <file> [--synchronous full|normal] [-- <serve flags>]
//   node dist/bench/server-child.js y-websocket
//
// `hocuspocus` is stock @hocuspocus/server 4.7 (its own `Server`) with no
// persistence at all, or, with --state, one that loads a document from one
// full-state blob (what a key-value persistence does). `palimpsest` is
// `palimpsest serve` itself (server/serve.ts) on a real SQLite file.
// `y-websocket` is the y-websocket reference server (@y/websocket-server, a
// dev dependency, without persistence): what stock y-websocket clients get
// from the server they were written for.
//
// Protocol with the parent: one JSON line {"benchChild":"listening","port":N}
// on stdout; then each line "usage" on stdin is answered with one JSON line
// {"benchChild":"usage", cpuUserMs, cpuSystemMs, rssBytes, heapUsedBytes, loopDelayP99Ms,
// loopDelayMaxMs} (the event-loop delays since the previous report); "usage gc"
// first collects garbage (when node runs with --expose-gc). "heapsnapshot <file>"
// writes a heap snapshot (v8.writeHeapSnapshot) and answers
// {"benchChild":"heapsnapshot","file":…} once it is complete. stdin closing or
// SIGTERM stops the server and exits.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import { Server } from '@hocuspocus/server';
import { WebSocketServer, type WebSocket } from 'ws';
import * as Y from 'yjs';
import { serve } from '../server/serve.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  strict: true,
  options: {
    data: { type: 'string' },
    synchronous: { type: 'string', default: 'full' },
    state: { type: 'string' },
  },
});
const kind = positionals[0];

function report(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ benchChild: message.event, ...message })}\n`);
}

async function startHocuspocus(): Promise<{ port: number; stop(): Promise<void> }> {
  const state = values.state === undefined ? null : new Uint8Array(readFileSync(values.state));
  const server = new Server({
    port: 0,
    address: '127.0.0.1',
    quiet: true,
    stopOnSignals: false,
    unloadImmediately: true,
    async onLoadDocument({ document }) {
      if (state !== null) Y.applyUpdate(document, state);
    },
  });
  await server.listen();
  const port = (server.httpServer.address() as AddressInfo).port;
  return { port, stop: () => server.destroy() };
}

async function startPalimpsest(): Promise<{ port: number; stop(): Promise<void> }> {
  if (values.data === undefined) throw new Error('palimpsest needs --data <file>');
  const running = await serve(
    ['--host', '127.0.0.1', '--port', '0', '--data', values.data, '--synchronous', values.synchronous ?? 'full',
      '--log-level', 'warn', ...positionals.slice(1)],
    {},
  );
  return { port: running.port, stop: () => running.stop() };
}

/** The reference server's own entry point (its bin) does the same: one ws server, setupWSConnection per socket. */
async function startYWebsocketReference(): Promise<{ port: number; stop(): Promise<void> }> {
  // A specifier in a variable: the package is an optional dev dependency, and the build must not need it.
  const specifier = '@y/websocket-server/utils';
  const { setupWSConnection } = await import(specifier) as {
    setupWSConnection(ws: WebSocket, request: unknown, options?: { gc?: boolean }): void;
  };
  const httpServer = createServer((_request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws, request) => setupWSConnection(ws, request));
  httpServer.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request)));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    port: (httpServer.address() as AddressInfo).port,
    stop: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}

const started = kind === 'hocuspocus' ? await startHocuspocus()
  : kind === 'palimpsest' ? await startPalimpsest()
    : kind === 'y-websocket' ? await startYWebsocketReference()
      : (() => { throw new Error(`unknown server kind "${kind}" (hocuspocus | palimpsest | y-websocket)`); })();

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await started.stop();
  process.exit(0);
}

// How long the server's event loop was kept from running: every socket on it waits that long.
const loopDelay = monitorEventLoopDelay({ resolution: 1 });
loopDelay.enable();
report({ event: 'listening', port: started.port });
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const words = line.trim().split(' ');
  if (words[0] === 'heapsnapshot' && words.length === 2) {
    report({ event: 'heapsnapshot', file: writeHeapSnapshot(words[1]) });
    return;
  }
  if (words[0] !== 'usage') return;
  if (words[1] === 'gc' && typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
  const usage = process.cpuUsage();
  const memory = process.memoryUsage();
  report({
    event: 'usage', cpuUserMs: usage.user / 1000, cpuSystemMs: usage.system / 1000, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal, externalBytes: memory.external,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6,
  });
  loopDelay.reset();
});
lines.on('close', () => void stop());
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
