// The HTTP side of one port: health and readiness, Prometheus metrics, the
// document REST API (history, state at a seq, restore, compact) and the demo
// editor.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import * as Y from 'yjs';
import { hocuspocusClient, waitSettled, yWebsocketClient } from './helpers/clients.js';
import { connectRaw } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

test('healthz, readyz, metrics, openapi and the demo editor are served on the WebSocket port', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'http.db')]);
  assert.deepEqual(await json(await fetch(`${server.http}/healthz`)), { status: 'ok', instanceId: (await json<{ instanceId: string }>(await fetch(`${server.http}/healthz`))).instanceId });
  const ready = await fetch(`${server.http}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal((await json<{ status: string }>(ready)).status, 'ready');
  const client = hocuspocusClient(t, server.url, 'metered');
  client.doc.getText('text').insert(0, 'count me');
  await waitSettled([client]);
  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(metrics, /palimpsest_appends_logged_total\{[^}]*\} 1\b/);
  assert.match(metrics, /palimpsest_connections\{[^}]*protocol="hocuspocus"[^}]*\} 1\b/);
  const openapi = await json<{ openapi: string; paths: Record<string, unknown> }>(await fetch(`${server.http}/api/openapi.json`));
  assert.equal(openapi.openapi, '3.1.0');
  assert.ok('/api/documents/{doc}/restore' in openapi.paths);
  const page = await fetch(`${server.http}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /<div|<palimpsest|<script/);
  const library = await fetch(`${server.http}/lib/palimpsest-editor.js`, { method: 'HEAD' });
  assert.equal(library.status, 200);
  assert.equal(library.headers.get('access-control-allow-origin'), '*');
  assert.equal((await fetch(`${server.http}/../../etc/passwd`)).status, 404);
  assert.equal((await fetch(`${server.http}/lib/..%2f..%2fpackage.json`)).status, 404);
});

test('the REST API reads history and state at any seq, and restores an old version as a new update', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'api.db')]);
  const writer = hocuspocusClient(t, server.url, 'team/plan');
  const watcher = yWebsocketClient(t, server.url, 'team/plan');
  const text = writer.doc.getText('text');
  for (const word of ['first', ' second', ' third']) {
    text.insert(text.length, word);
    await waitSettled([writer]);
  }
  const path = `${server.http}/api/documents/${encodeURIComponent('team/plan')}`;
  assert.deepEqual(await json(await fetch(`${server.http}/api/documents`)), { documents: ['team/plan'] });
  const info = await json<{ doc: string; seq: number; snapshots: unknown[] }>(await fetch(path));
  assert.deepEqual([info.doc, info.seq, info.snapshots], ['team/plan', 3, []]);
  const history = await json<Array<{ seq: number; update: string }>>(await fetch(`${path}/history?after=1&limit=1`));
  assert.deepEqual(history.map((e) => e.seq), [2]);

  const stateAt = async (seq: number) => {
    const response = await fetch(`${path}/state?at=${seq}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-palimpsest-seq'), String(seq));
    const doc = new Y.Doc();
    Y.applyUpdate(doc, new Uint8Array(await response.arrayBuffer()));
    return doc.getText('text').toString();
  };
  assert.equal(await stateAt(1), 'first');
  assert.equal(await stateAt(2), 'first second');
  const asJson = await json<{ seq: number; update: string }>(await fetch(`${path}/state`, { headers: { accept: 'application/json' } }));
  assert.equal(asJson.seq, 3);

  const restored = await fetch(`${path}/restore`, { method: 'POST', body: JSON.stringify({ seq: 1 }), headers: { 'content-type': 'application/json' } });
  assert.equal(restored.status, 200);
  assert.deepEqual(await json(restored), { doc: 'team/plan', restoredTo: 1, seq: 4 });
  // Connected clients of both kinds see the restored version; the log keeps every step.
  await waitFor(() => text.toString() === 'first' && watcher.doc.getText('text').toString() === 'first', { message: 'clients show the restored text' });
  assert.equal(await stateAt(3), 'first second third');
  assert.equal(await stateAt(4), 'first');
  // Editing goes on from the restored version.
  text.insert(text.length, ' again');
  await waitSettled([writer]);
  assert.equal(await stateAt(5), 'first again');

  const compact = await json<{ seq: number }>(await fetch(`${path}/compact`, { method: 'POST' }));
  assert.equal(compact.seq, 5);
});

test('the REST API answers bad requests with a status and an error code', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'errors.db')]);
  const raw = await connectRaw(server.url, 'known');
  const doc = new Y.Doc();
  doc.on('update', (u: Uint8Array) => void raw.sendUpdate(u));
  doc.getText('text').insert(0, 'x');
  await waitFor(() => raw.acks.length === 1);
  const cases: Array<[string, RequestInit | undefined, number, string]> = [
    ['/api/documents/unknown', undefined, 404, 'UNKNOWN_DOCUMENT'],
    ['/api/documents/bad%20name', undefined, 400, 'INVALID_DOCUMENT_NAME'],
    ['/api/documents/%2Fslash', undefined, 400, 'INVALID_DOCUMENT_NAME'],
    ['/api/documents/known/state?at=9', undefined, 404, 'UNKNOWN_SEQ'],
    ['/api/documents/known/state?at=one', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/restore', { method: 'POST', body: '{"seq":"x"}' }, 400, 'BAD_REQUEST'],
    ['/api/documents/known/restore', { method: 'POST', body: 'not json' }, 400, 'BAD_REQUEST'],
    ['/api/documents/known/history', { method: 'DELETE' }, 405, 'METHOD_NOT_ALLOWED'],
    ['/api/elsewhere', undefined, 404, 'NOT_FOUND'],
  ];
  for (const [url, init, status, code] of cases) {
    const response = await fetch(`${server.http}${url}`, init);
    assert.equal(response.status, status, url);
    assert.equal((await json<{ error: { code: string; message: string } }>(response)).error.code, code, url);
  }
});

test('a failed append is not acknowledged, closes the connection with 4503 and turns /readyz red until the database takes writes again', async (t) => {
  const data = join(tempDir(t), 'blocked.db');
  const server = await startServerProcess(t, ['--data', data]);
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => updates.push(u));
  doc.getText('text').insert(0, 'before ');
  doc.getText('text').insert(7, 'during');
  const client = await connectRaw(server.url, 'blocked');
  assert.equal(await client.sendUpdate(updates[0]), true);

  // Another process holds the database's write lock longer than the server waits for it.
  const blocker = new Database(data);
  t.after(() => blocker.close());
  blocker.exec('BEGIN IMMEDIATE');
  assert.equal(await client.sendUpdate(updates[1]), false, 'no ack for an update that was not written');
  assert.equal((await client.closed).code, 4503);
  const red = await fetch(`${server.http}/readyz`);
  assert.equal(red.status, 503);
  assert.equal((await json<{ problems: Array<{ check: string }> }>(red)).problems[0].check, 'database');
  blocker.exec('ROLLBACK');
  // Ready again once the database takes writes, without waiting for a client to write.
  await waitFor(async () => (await fetch(`${server.http}/readyz`)).status === 200, { message: 'readyz green again' });

  // The client resends after reconnecting; this time it is written.
  const again = await connectRaw(server.url, 'blocked');
  assert.equal(await again.sendUpdate(updates[1]), true);
  assert.equal((await fetch(`${server.http}/readyz`)).status, 200);
  const state = new Y.Doc();
  const response = await fetch(`${server.http}/api/documents/blocked/state`);
  Y.applyUpdate(state, new Uint8Array(await response.arrayBuffer()));
  assert.equal(state.getText('text').toString(), 'before during');
});

test('a document with no clients left is unloaded and its connections are released', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'unload.db')]);
  const loaded = async () => {
    const metrics = await (await fetch(`${server.http}/metrics`)).text();
    return Number(/^palimpsest_documents_loaded\{[^}]*\} (\d+)/m.exec(metrics)?.[1]);
  };
  assert.equal(await loaded(), 0);
  const clients = Array.from({ length: 30 }, (_, i) => hocuspocusClient(t, server.url, `room-${i % 10}`));
  for (const client of clients) client.doc.getText('text').insert(0, 'x'.repeat(2000));
  await waitSettled(clients);
  assert.equal(await loaded(), 10);
  for (const client of clients) client.destroy();
  await waitFor(async () => (await loaded()) === 0, { message: 'every document unloaded' });
  const connections = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(connections, /palimpsest_connections\{[^}]*protocol="hocuspocus"[^}]*\} 0\b/);
});
