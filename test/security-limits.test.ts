// Resource limits, each against a real `palimpsest serve` with the limit set
// low: frame size (1009, refused from the header alone), the authentication
// deadline (4508), connections per client address and documents per
// connection (1013), browser origins (4403) and document size (4413). Other
// clients must not notice. Messages per second slow a connection down instead
// of closing it: backpressure.test.ts.

import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as Y from 'yjs';
import { hocuspocusClient } from './helpers/clients.js';
import { frames, rawSocket } from './helpers/raw-socket.js';
import { startServerProcess, type ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

async function refusalCount(server: ServerProcess, reason: string): Promise<number> {
  const text = await (await fetch(`${server.http}/metrics`)).text();
  const match = new RegExp(`palimpsest_refusals_total\\{reason="${reason}"[^}]*\\} (\\d+)`).exec(text);
  return match === null ? 0 : Number(match[1]);
}

async function startLimited(t: TestContext, flags: string[]): Promise<ServerProcess> {
  return startServerProcess(t, ['--data', join(tempDir(t), 'limits.db'), ...flags]);
}

test('an oversize frame is refused with 1009 from its header alone, before its payload arrives, and counted', async (t) => {
  const server = await startLimited(t, ['--max-message-bytes', '65536']);
  // A hand-made upgrade, then a frame header announcing 1 GiB and no payload at all.
  const socket = tcpConnect(server.port, '127.0.0.1');
  t.after(() => socket.destroy());
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]); });
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  await waitFor(() => received.includes('\r\n\r\n'), { message: 'upgrade answered' });
  assert.match(received.toString('latin1'), /^HTTP\/1\.1 101/);
  const headerEnd = received.indexOf('\r\n\r\n') + 4;
  const header = Buffer.alloc(14);
  header[0] = 0x82; // FIN, binary
  header[1] = 0x80 | 127; // masked, 64-bit length follows
  header.writeBigUInt64BE(2n ** 30n, 2);
  header.writeUInt32BE(0x01020304, 10); // mask key
  socket.write(header);
  await ended;
  const closeFrame = received.subarray(headerEnd);
  assert.equal(closeFrame[0], 0x88, 'a close frame');
  assert.equal(closeFrame.readUInt16BE(2), 1009);
  await waitFor(async () => (await refusalCount(server, 'message-too-big')) >= 1, { message: 'refusal counted' });

  // The same through an ordinary client that sends the whole frame.
  const client = rawSocket(t, server.url);
  await client.opened;
  client.ws.send(new Uint8Array(70_000));
  assert.equal((await client.closed).code, 1009);
});

test('a connection that never authenticates is closed with 4508 at the deadline; an authenticated one stays', async (t) => {
  const server = await startLimited(t, ['--auth-timeout-ms', '700']);
  const started = performance.now();
  const silent = rawSocket(t, server.url);
  const chatty = rawSocket(t, server.url);
  const honest = hocuspocusClient(t, server.url, 'limits/timeout');
  await chatty.opened;
  // Frames before an Auth message are queued by Hocuspocus and must not postpone the deadline.
  const keepAlive = setInterval(() => chatty.ws.send(frames.queryAwareness('limits/timeout')), 100);
  t.after(() => clearInterval(keepAlive));
  const [silentClose, chattyClose] = await Promise.all([silent.closed, chatty.closed]);
  clearInterval(keepAlive);
  const elapsed = performance.now() - started;
  assert.equal(silentClose.code, 4508);
  assert.equal(chattyClose.code, 4508);
  assert.ok(elapsed >= 650 && elapsed < 3000, `closed after ${elapsed.toFixed(0)} ms`);
  assert.ok(honest.provider.isSynced);
  assert.equal(honest.provider.configuration.websocketProvider.status, 'connected');
  assert.ok(await refusalCount(server, 'connection-timeout') >= 2);
});

test('connections beyond the per-address limit get 1013 (try again later); X-Forwarded-For counts only from a trusted proxy', async (t) => {
  const server = await startLimited(t, ['--max-connections-per-address', '2', '--trusted-proxies', '127.0.0.1']);
  const first = rawSocket(t, server.url);
  const second = rawSocket(t, server.url);
  await Promise.all([first.opened, second.opened]);
  const third = rawSocket(t, server.url);
  assert.equal((await third.closed).code, 1013);

  // Through the trusted proxy (loopback here) the forwarded address is the one counted.
  const forwarded = rawSocket(t, server.url, { 'x-forwarded-for': '203.0.113.7' });
  await forwarded.opened;
  const spoofChain = rawSocket(t, server.url, { 'x-forwarded-for': '203.0.113.7, 198.51.100.9' });
  await spoofChain.opened; // counted as 198.51.100.9, the hop the trusted proxy saw

  first.ws.close();
  await first.closed;
  const again = rawSocket(t, server.url);
  await waitFor(() => again.ws.readyState === again.ws.OPEN, { message: 'a freed slot is usable again' });
  assert.ok(await refusalCount(server, 'too-many-connections-per-address') >= 1);
  assert.ok(server.logs.some((line) => line.reason === 'too-many-connections-per-address' && line.address === '127.0.0.1'),
    'the refusal is logged with the address');
});

test('X-Forwarded-For from an untrusted peer is ignored', async (t) => {
  const server = await startLimited(t, ['--max-connections-per-address', '1']);
  const first = rawSocket(t, server.url, { 'x-forwarded-for': '203.0.113.1' });
  await first.opened;
  const second = rawSocket(t, server.url, { 'x-forwarded-for': '203.0.113.2' });
  assert.equal((await second.closed).code, 1013);
});

test('more documents on one connection than allowed closes it with 1013', async (t) => {
  const server = await startLimited(t, ['--max-documents-per-connection', '2']);
  const socket = rawSocket(t, server.url);
  await socket.opened;
  for (const doc of ['many/1', 'many/2', 'many/3']) socket.ws.send(frames.auth(doc, ''));
  assert.equal((await socket.closed).code, 1013);
});

test('a browser origin outside --allowed-origins is refused with 4403; listed and non-browser clients connect', async (t) => {
  const server = await startLimited(t, ['--allowed-origins', 'https://editor.example']);
  const evil = rawSocket(t, server.url, { origin: 'https://evil.example' });
  assert.equal((await evil.closed).code, 4403);
  const good = rawSocket(t, server.url, { origin: 'https://editor.example' });
  await good.opened;
  const script = rawSocket(t, server.url);
  await script.opened;
  const yws = rawSocket(t, `${server.url}/yjs/origin-doc`, { origin: 'https://evil.example' });
  assert.equal((await yws.closed).code, 4403);
});

test('an update that would grow a document past --max-document-bytes is refused with 4413 and not logged', async (t) => {
  const server = await startLimited(t, ['--max-document-bytes', '20000']);
  const doc = 'limits/size';
  const watcher = hocuspocusClient(t, server.url, doc);
  const writer = rawSocket(t, server.url);
  await writer.opened;
  writer.ws.send(frames.auth(doc, ''));
  const small = new Y.Doc();
  small.getText('t').insert(0, 'small and fine');
  writer.ws.send(frames.update(doc, Y.encodeStateAsUpdate(small)));
  await waitFor(() => watcher.doc.getText('t').toString() === 'small and fine', { message: 'small update delivered' });
  const big = new Y.Doc();
  big.getText('t').insert(0, 'x'.repeat(30_000));
  writer.ws.send(frames.update(doc, Y.encodeStateAsUpdate(big)));
  assert.equal((await writer.closed).code, 4413);

  const history = (await (await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/history`)).json()) as Array<{ size: number }>;
  assert.equal(history.length, 1);
  assert.ok(history[0].size < 1000);
  assert.equal(watcher.doc.getText('t').toString(), 'small and fine');
  assert.ok(await refusalCount(server, 'document-too-large') >= 1);
});
