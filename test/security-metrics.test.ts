// /metrics and the refusal counters: loopback means the real client (after
// trusted proxies), and each refusal is counted once.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { TEST_SECRET } from './helpers/tokens.js';

test('/metrics is open to loopback clients but not to remote clients behind a proxy on the same host', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'metrics.db'), '--jwt-secret', TEST_SECRET, '--trusted-proxies', '127.0.0.1']);
  assert.equal((await fetch(`${server.http}/metrics`)).status, 200);
  const proxied = await fetch(`${server.http}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.5' } });
  assert.equal(proxied.status, 401);
});

test('a refused connection is counted once, under its reason', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'origins.db'), '--allowed-origins', 'https://app.example.com']);
  const socket = new WebSocket(server.url, { headers: { origin: 'https://elsewhere.example.com' } });
  socket.on('error', () => undefined);
  const code = await new Promise<number>((resolve) => socket.on('close', (closeCode) => resolve(closeCode)));
  assert.equal(code, 4403);
  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(metrics, /^palimpsest_refusals_total\{[^}]*reason="forbidden"[^}]*\} 1$/m);
});
