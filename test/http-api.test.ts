// The HTTP side of one port: health and readiness, Prometheus metrics, the
// document REST API (history, state at a seq, restore, compact) and the demo
// editor.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import * as Y from 'yjs';
import { hocuspocusClient, waitSettled, yWebsocketClient } from './helpers/clients.js';
import { openEventStore } from '../persistence/index.js';
import { connectRaw } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

/** JSON bodies are sent as JSON: the API refuses any other type (415). */
const JSON_BODY = { 'content-type': 'application/json' };

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
  assert.deepEqual(await json(restored), { doc: 'team/plan', restoredTo: 1, seq: 4, changed: true });
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
    ['/api/documents/unknown/state?at=1', undefined, 404, 'UNKNOWN_SEQ'],
    ['/api/documents/bad%20name', undefined, 400, 'INVALID_DOCUMENT_NAME'],
    ['/api/documents/%2Fslash', undefined, 400, 'INVALID_DOCUMENT_NAME'],
    ['/api/documents/known/state?at=9', undefined, 404, 'UNKNOWN_SEQ'],
    ['/api/documents/known/state?at=one', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/restore', { method: 'POST', headers: JSON_BODY, body: '{"seq":"x"}' }, 400, 'BAD_REQUEST'],
    ['/api/documents/known/restore', { method: 'POST', headers: JSON_BODY, body: 'not json' }, 400, 'BAD_REQUEST'],
    // A JSON body must say so: a browser sends other types across origins without asking (CORS preflight) first.
    ['/api/documents/known/restore', { method: 'POST', body: '{"seq":0}' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['/api/documents/known/restore', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"seq":0}' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['/api/documents/known/versions', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"seq":1,"name":"x"}' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['/api/documents/known/history', { method: 'DELETE' }, 405, 'METHOD_NOT_ALLOWED'],
    ['/api/elsewhere', undefined, 404, 'NOT_FOUND'],
    // Limits are what the README and the OpenAPI document say (versions 1-500, history and the feeds 1-10000), not clamped.
    ['/api/documents/known/versions?limit=100000', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/versions?limit=501', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/versions?limit=0', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/history?limit=0', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/history?limit=10001', undefined, 400, 'BAD_REQUEST'],
    ['/api/documents/known/changes?limit=0', { headers: { accept: 'application/json' } }, 400, 'BAD_REQUEST'],
    ['/api/changes?limit=10001', { headers: { accept: 'application/json' } }, 400, 'BAD_REQUEST'],
  ];
  for (const [url, init, status, code] of cases) {
    const response = await fetch(`${server.http}${url}`, init);
    assert.equal(response.status, status, url);
    const { error } = await json<{ error: { code: string; message: string } }>(response);
    assert.equal(error.code, code, url);
    if (url.includes('limit=')) assert.match(error.message, url.includes('versions') ? /limit must be a whole number from 1 to 500/ : /limit must be a whole number from 1 to 10000/, url);
  }
  for (const url of ['/api/documents/known/versions?limit=500', '/api/documents/known/versions?limit=1', '/api/documents/known/history?limit=10000']) {
    assert.equal((await fetch(`${server.http}${url}`)).status, 200, url);
  }
  assert.deepEqual((await json<{ versions: unknown[] }>(await fetch(`${server.http}/api/documents/known/versions?limit=1`))).versions.length, 1);
  // 405 says which methods the path does answer (RFC 9110 §15.5.6); HEAD goes wherever GET does.
  const allowed: Array<[string, string, string]> = [
    ['/api/documents/known/history', 'DELETE', 'GET, HEAD'],
    ['/api/documents/known', 'POST', 'GET, HEAD'],
    ['/api/documents', 'PUT', 'GET, HEAD'],
    ['/api/openapi.json', 'POST', 'GET, HEAD'],
    ['/api/documents/known/compact', 'GET', 'POST'],
    ['/api/documents/known/restore', 'PATCH', 'POST'],
  ];
  for (const [url, method, allow] of allowed) {
    const response = await fetch(`${server.http}${url}`, { method });
    assert.equal(response.status, 405, `${method} ${url}`);
    assert.equal(response.headers.get('allow'), allow, `${method} ${url}`);
    assert.equal((await json<{ error: { code: string } }>(response)).error.code, 'METHOD_NOT_ALLOWED');
  }
  const head = await fetch(`${server.http}/api/documents/known/history`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('a document never written reads as the empty document at seq 0 on every route, and every answer says so', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'unknown.db')]);
  const raw = await connectRaw(server.url, 'known');
  const doc = new Y.Doc();
  doc.on('update', (u: Uint8Array) => void raw.sendUpdate(u));
  doc.getText('text').insert(0, 'x');
  await waitFor(() => raw.acks.length === 1);
  const path = `${server.http}/api/documents/never-written`;
  const empty = Buffer.from(Y.encodeStateAsUpdate(new Y.Doc()));

  const info = await fetch(path);
  assert.equal(info.status, 200);
  assert.deepEqual(await json(info), { doc: 'never-written', exists: false, seq: 0, updatedAt: null, firstRetainedSeq: null, snapshots: [] });
  const knownInfo = await json<{ exists: boolean; seq: number }>(await fetch(`${server.http}/api/documents/known`));
  assert.deepEqual([knownInfo.exists, knownInfo.seq], [true, 1]);

  const history = await fetch(`${path}/history`);
  assert.equal(history.status, 200);
  assert.equal(history.headers.get('x-palimpsest-exists'), 'false');
  assert.deepEqual(await json(history), []);
  assert.equal((await fetch(`${server.http}/api/documents/known/history`)).headers.get('x-palimpsest-exists'), 'true');

  const state = await fetch(`${path}/state`);
  assert.equal(state.status, 200);
  assert.equal(state.headers.get('x-palimpsest-exists'), 'false');
  assert.equal(state.headers.get('x-palimpsest-seq'), '0');
  assert.deepEqual(Buffer.from(await state.arrayBuffer()), empty);
  const stateJson = await fetch(`${path}/state`, { headers: { accept: 'application/json' } });
  assert.deepEqual(await json(stateJson), { doc: 'never-written', seq: 0, update: empty.toString('base64'), exists: false });
  const beyond = await fetch(`${path}/state?at=1`);
  assert.equal(beyond.status, 404);
  assert.match((await json<{ error: { message: string } }>(beyond)).error.message, /never-written \(never written\), so no seq 1/);

  const compact = await fetch(`${path}/compact`, { method: 'POST' });
  assert.equal(compact.status, 200);
  assert.deepEqual(await json(compact), { doc: 'never-written', seq: 0, compacted: false, exists: false });
  const restore = await fetch(`${path}/restore`, { method: 'POST', headers: JSON_BODY, body: '{"seq":0}' });
  assert.deepEqual([restore.status, await json(restore)], [200, { doc: 'never-written', restoredTo: 0, seq: 0, changed: false, exists: false }]);
  assert.equal((await fetch(`${path}/restore`, { method: 'POST', headers: JSON_BODY, body: '{"seq":2}' })).status, 404);

  // None of that created the document.
  assert.deepEqual(await json(await fetch(`${server.http}/api/documents`)), { documents: ['known'] });
});

interface OpenApi {
  paths: Record<string, Record<string, { responses: Record<string, { $ref?: string; headers?: Record<string, unknown> }> }>>;
  components: {
    responses: Record<string, { description: string; headers?: Record<string, unknown>; content?: Record<string, { schema: { $ref?: string } }> }>;
    schemas: { Error: { properties: { error: { properties: { code: { description: string } } } } } };
  };
}

test('the OpenAPI document declares every status each route answers, with the shared error schema, the code of each error and the Allow header on 405', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'openapi.db');
  // Seed the file directly: with authentication on, this test talks only HTTP.
  const store = openEventStore({ path: data, compactAfterEntries: 0 });
  const source = new Y.Doc();
  source.on('update', (u: Uint8Array) => void store.append('known', u, { instanceId: 'seed', user: null }));
  for (const word of ['one', ' two', ' three']) source.getText('text').insert(source.getText('text').length, word);
  await store.close();
  const server = await startServerProcess(t, ['--data', data, '--jwt-secret', TEST_SECRET, '--retention', 'snapshot', '--compact-after-entries', '0',
    '--max-message-bytes', '65536', '--max-document-bytes', '20000']);
  const writer = { authorization: `Bearer ${await hs256Token({ sub: 'w', docs: { '*': 'write' } })}` };
  const reader = { authorization: `Bearer ${await hs256Token({ sub: 'r', docs: { known: 'read' } })}` };
  // Tokens that authenticate no one, one per 401 code.
  const garbled = { authorization: 'Bearer not-a-jwt' };
  const expired = { authorization: `Bearer ${await hs256Token({ sub: 'w', docs: { '*': 'write' }, expiresIn: -3600 })}` };
  const badClaims = { authorization: `Bearer ${await hs256Token({ sub: 'w', docs: { known: 'admin' } })}` };
  const openapi = await json<OpenApi>(await fetch(`${server.http}/api/openapi.json`));
  const errorCodes = openapi.components.schemas.Error.properties.error.properties.code.description;
  const seen401 = new Set<string>();
  const as = (headers: Record<string, string>, type: string) => ({ ...headers, 'content-type': type });
  const yjsUpdate = (text: string) => {
    const doc = new Y.Doc();
    doc.getText('posted').insert(0, text);
    return Y.encodeStateAsUpdate(doc);
  };
  const binary = 'application/octet-stream';
  const jsonBody = 'application/json';
  // A page on a site not in --cors-origins (none are listed here): every POST refuses it, token or not.
  const elsewhere = (headers: Record<string, string>) => ({ ...headers, origin: 'https://elsewhere.example' });

  // [method, url, headers, body, the path template it belongs to, expected status]
  const cases: Array<[string, string, Record<string, string>, string | Uint8Array | undefined, string, number]> = [
    ['GET', '/api/openapi.json', {}, undefined, '/api/openapi.json', 200],
    ['DELETE', '/api/openapi.json', {}, undefined, '/api/openapi.json', 405],
    ['GET', '/api/documents', writer, undefined, '/api/documents', 200],
    ['GET', '/api/documents', {}, undefined, '/api/documents', 401],
    ['GET', '/api/documents', garbled, undefined, '/api/documents', 401],
    ['GET', '/api/documents/known', expired, undefined, '/api/documents/{doc}', 401],
    ['POST', '/api/documents/known/compact', badClaims, undefined, '/api/documents/{doc}/compact', 401],
    ['GET', '/api/changes', { ...writer, accept: jsonBody }, undefined, '/api/changes', 200],
    ['GET', '/api/changes?after=bogus', { ...writer, accept: jsonBody }, undefined, '/api/changes', 400],
    ['GET', '/api/changes', { accept: jsonBody }, undefined, '/api/changes', 401],
    ['GET', '/api/changes', { ...reader, accept: jsonBody }, undefined, '/api/changes', 403],
    ['POST', '/api/changes', writer, undefined, '/api/changes', 405],
    ['GET', '/api/documents', reader, undefined, '/api/documents', 403],
    ['POST', '/api/documents', writer, undefined, '/api/documents', 405],
    ['GET', '/api/documents/known', reader, undefined, '/api/documents/{doc}', 200],
    ['GET', '/api/documents/bad%20name', reader, undefined, '/api/documents/{doc}', 400],
    ['GET', '/api/documents/known', {}, undefined, '/api/documents/{doc}', 401],
    ['GET', '/api/documents/other', reader, undefined, '/api/documents/{doc}', 403],
    ['DELETE', '/api/documents/known', writer, undefined, '/api/documents/{doc}', 405],
    ['GET', '/api/documents/known/history', reader, undefined, '/api/documents/{doc}/history', 200],
    ['GET', '/api/documents/known/history?limit=x', reader, undefined, '/api/documents/{doc}/history', 400],
    ['GET', '/api/documents/known/history', {}, undefined, '/api/documents/{doc}/history', 401],
    ['GET', '/api/documents/other/history', reader, undefined, '/api/documents/{doc}/history', 403],
    ['POST', '/api/documents/known/history', writer, undefined, '/api/documents/{doc}/history', 405],
    ['GET', '/api/documents/known/state?at=1', reader, undefined, '/api/documents/{doc}/state', 200],
    ['GET', '/api/documents/known/state?at=x', reader, undefined, '/api/documents/{doc}/state', 400],
    ['GET', '/api/documents/known/state', {}, undefined, '/api/documents/{doc}/state', 401],
    ['GET', '/api/documents/other/state', reader, undefined, '/api/documents/{doc}/state', 403],
    ['GET', '/api/documents/known/state?at=99', reader, undefined, '/api/documents/{doc}/state', 404],
    ['PUT', '/api/documents/known/state', writer, undefined, '/api/documents/{doc}/state', 405],
    ['POST', '/api/documents/known/restore', as(writer, jsonBody), '{"seq":"one"}', '/api/documents/{doc}/restore', 400],
    ['POST', '/api/documents/known/restore', as({}, jsonBody), '{"seq":1}', '/api/documents/{doc}/restore', 401],
    ['POST', '/api/documents/known/restore', as(reader, jsonBody), '{"seq":1}', '/api/documents/{doc}/restore', 403],
    ['POST', '/api/documents/known/restore', as(writer, jsonBody), '{"seq":99}', '/api/documents/{doc}/restore', 404],
    ['POST', '/api/documents/known/restore', as(writer, jsonBody), JSON.stringify({ seq: 1, padding: 'x'.repeat(70_000) }), '/api/documents/{doc}/restore', 413],
    ['POST', '/api/documents/known/restore', as(writer, 'text/plain'), '{"seq":1}', '/api/documents/{doc}/restore', 415],
    ['POST', '/api/documents/known/restore', elsewhere(as(writer, jsonBody)), '{"seq":1}', '/api/documents/{doc}/restore', 403],
    ['GET', '/api/documents/known/restore', writer, undefined, '/api/documents/{doc}/restore', 405],
    ['GET', '/api/documents/known/versions', reader, undefined, '/api/documents/{doc}/versions', 200],
    ['GET', '/api/documents/known/versions?limit=x', reader, undefined, '/api/documents/{doc}/versions', 400],
    ['GET', '/api/documents/known/versions', {}, undefined, '/api/documents/{doc}/versions', 401],
    ['GET', '/api/documents/other/versions', reader, undefined, '/api/documents/{doc}/versions', 403],
    ['DELETE', '/api/documents/known/versions', writer, undefined, '/api/documents/{doc}/versions', 405],
    ['POST', '/api/documents/known/versions', as(writer, jsonBody), '{"seq":1,"name":"first"}', '/api/documents/{doc}/versions', 200],
    ['POST', '/api/documents/known/versions', as(writer, jsonBody), '{"seq":1,"name":""}', '/api/documents/{doc}/versions', 400],
    ['POST', '/api/documents/known/versions', as({}, jsonBody), '{"seq":1,"name":"first"}', '/api/documents/{doc}/versions', 401],
    ['POST', '/api/documents/known/versions', as(reader, jsonBody), '{"seq":1,"name":"first"}', '/api/documents/{doc}/versions', 403],
    ['POST', '/api/documents/known/versions', as(writer, jsonBody), '{"seq":99,"name":"first"}', '/api/documents/{doc}/versions', 404],
    ['POST', '/api/documents/known/versions', as(writer, jsonBody), JSON.stringify({ seq: 1, name: 'x', padding: 'x'.repeat(70_000) }), '/api/documents/{doc}/versions', 413],
    ['POST', '/api/documents/known/versions', writer, '{"seq":1,"name":"first"}', '/api/documents/{doc}/versions', 415],
    ['POST', '/api/documents/known/versions', elsewhere(as(writer, jsonBody)), '{"seq":1,"name":"first"}', '/api/documents/{doc}/versions', 403],
    ['GET', '/api/documents/known/authorship?at=2', reader, undefined, '/api/documents/{doc}/authorship', 200],
    ['GET', '/api/documents/known/authorship?at=later', reader, undefined, '/api/documents/{doc}/authorship', 400],
    ['GET', '/api/documents/known/authorship', {}, undefined, '/api/documents/{doc}/authorship', 401],
    ['GET', '/api/documents/other/authorship', reader, undefined, '/api/documents/{doc}/authorship', 403],
    ['GET', '/api/documents/known/authorship?at=99', reader, undefined, '/api/documents/{doc}/authorship', 404],
    ['POST', '/api/documents/known/authorship', writer, undefined, '/api/documents/{doc}/authorship', 405],
    ['GET', '/api/documents/known/state?at=2000-01-01T00:00:00Z', reader, undefined, '/api/documents/{doc}/state', 200],
    ['POST', '/api/documents/written/updates', as(writer, binary), yjsUpdate('posted'), '/api/documents/{doc}/updates', 200],
    ['POST', '/api/documents/written/updates', as(writer, binary), new Uint8Array([1, 2, 250, 251]), '/api/documents/{doc}/updates', 400],
    ['POST', '/api/documents/written/updates', as({}, binary), yjsUpdate('x'), '/api/documents/{doc}/updates', 401],
    ['POST', '/api/documents/known/updates', as(reader, binary), yjsUpdate('x'), '/api/documents/{doc}/updates', 403],
    ['GET', '/api/documents/written/updates', writer, undefined, '/api/documents/{doc}/updates', 405],
    ['POST', '/api/documents/written/updates', as(writer, binary), new Uint8Array(70_000), '/api/documents/{doc}/updates', 413],
    ['POST', '/api/documents/written/updates', as(writer, binary), yjsUpdate('x'.repeat(30_000)), '/api/documents/{doc}/updates', 413],
    ['POST', '/api/documents/written/updates', as(writer, 'text/plain'), 'x', '/api/documents/{doc}/updates', 415],
    ['POST', '/api/documents/written/updates', elsewhere(as(writer, binary)), yjsUpdate('x'), '/api/documents/{doc}/updates', 403],
    ['GET', '/api/documents/known/content?format=json', reader, undefined, '/api/documents/{doc}/content', 200],
    ['GET', '/api/documents/known/content?format=text&field=text&at=2', reader, undefined, '/api/documents/{doc}/content', 200],
    ['GET', '/api/documents/known/content?format=pdf', reader, undefined, '/api/documents/{doc}/content', 400],
    ['GET', '/api/documents/known/content', {}, undefined, '/api/documents/{doc}/content', 401],
    ['GET', '/api/documents/other/content', reader, undefined, '/api/documents/{doc}/content', 403],
    ['GET', '/api/documents/known/content?at=99', reader, undefined, '/api/documents/{doc}/content', 404],
    ['GET', '/api/documents/known/content?format=markdown&field=text', reader, undefined, '/api/documents/{doc}/content', 409],
    ['DELETE', '/api/documents/known/content', writer, undefined, '/api/documents/{doc}/content', 405],
    ['POST', '/api/documents/written/content', as(writer, 'text/markdown'), '# Posted\n\nwith **Markdown**', '/api/documents/{doc}/content', 200],
    ['POST', '/api/documents/written/content?mode=append', as(writer, 'text/html'), '<p>and <em>HTML</em></p>', '/api/documents/{doc}/content', 200],
    ['POST', '/api/documents/written/content', as(writer, jsonBody), '{"type": "doc", "content": [', '/api/documents/{doc}/content', 400],
    ['POST', '/api/documents/written/content', as({}, 'text/markdown'), 'x', '/api/documents/{doc}/content', 401],
    ['POST', '/api/documents/known/content', as(reader, 'text/markdown'), 'x', '/api/documents/{doc}/content', 403],
    ['POST', '/api/documents/written/content?field=posted', as(writer, 'text/markdown'), 'x', '/api/documents/{doc}/content', 409],
    ['POST', '/api/documents/written/content', as(writer, 'text/markdown'), 'x'.repeat(70_000), '/api/documents/{doc}/content', 413],
    ['POST', '/api/documents/written/content?mode=append', as(writer, 'text/markdown'), 'word '.repeat(6000), '/api/documents/{doc}/content', 413],
    ['POST', '/api/documents/written/content', as(writer, 'text/plain'), 'x', '/api/documents/{doc}/content', 415],
    ['POST', '/api/documents/written/content', elsewhere(as(writer, 'text/markdown')), 'x', '/api/documents/{doc}/content', 403],
    ['POST', '/api/documents/written/content', as(writer, jsonBody), '{"type": "doc", "content": [{"type": "table"}]}', '/api/documents/{doc}/content', 422],
    ['POST', '/api/documents/known/compact', {}, undefined, '/api/documents/{doc}/compact', 401],
    ['POST', '/api/documents/known/compact', reader, undefined, '/api/documents/{doc}/compact', 403],
    ['POST', '/api/documents/known/compact', elsewhere(writer), undefined, '/api/documents/{doc}/compact', 403],
    ['POST', '/api/documents/known/compact', writer, undefined, '/api/documents/{doc}/compact', 200],
    // After that compaction, --retention snapshot has dropped the entries: seq 1 is gone.
    ['GET', '/api/documents/known/state?at=1', reader, undefined, '/api/documents/{doc}/state', 410],
    ['POST', '/api/documents/known/restore', as(writer, jsonBody), '{"seq":1}', '/api/documents/{doc}/restore', 410],
    ['POST', '/api/documents/known/restore', as(writer, jsonBody), '{"seq":3}', '/api/documents/{doc}/restore', 200],
    ['GET', '/api/documents/known/authorship?at=1', reader, undefined, '/api/documents/{doc}/authorship', 410],
    ['GET', '/api/documents/known/content?format=text&field=text&at=1', reader, undefined, '/api/documents/{doc}/content', 410],
    ['GET', '/api/documents/known/authorship', reader, undefined, '/api/documents/{doc}/authorship', 200],
    ['DELETE', '/api/documents/known/compact', writer, undefined, '/api/documents/{doc}/compact', 405],
  ];
  for (const [method, url, headers, body, template, status] of cases) {
    const label = `${method} ${url} (${headers.authorization === undefined ? 'no token' : headers.authorization === reader.authorization ? 'reader' : 'writer'})`;
    const response = await fetch(`${server.http}${url}`, { method, headers, body });
    assert.equal(response.status, status, `${label}: ${await response.clone().text()}`);
    if (status === 401) assert.equal(response.headers.get('www-authenticate'), 'Bearer', label);
    if (status >= 400) {
      // Every error code an answer carries is one the document names.
      const { code } = (await json<{ error: { code: string } }>(response.clone())).error;
      assert.match(errorCodes, new RegExp(`\\b${code}\\b`), `${label}: the OpenAPI document names the error code ${code}`);
      if (status === 401) {
        seen401.add(code);
        assert.match(openapi.components.responses.Unauthorized.description, new RegExp(`\\b${code}\\b`), `${label}: the 401 answer names ${code}`);
      }
    }
    if (headers.origin !== undefined) assert.equal((await json<{ error: { code: string } }>(response.clone())).error.code, 'CORS_ORIGIN_REFUSED', label);
    const pathItem = openapi.paths[template];
    assert.ok(pathItem !== undefined, `${template} is described`);
    // A 405 answers a method the path does not list; it is declared on the operations the path has.
    const operations = status === 405 ? Object.values(pathItem) : [pathItem[method.toLowerCase()]];
    assert.ok(operations[0] !== undefined, `${label}: ${method} ${template} is described`);
    for (const operation of operations) {
      const declared = operation.responses[String(status)];
      assert.ok(declared !== undefined, `${label}: ${template} declares ${status} (it declares ${Object.keys(operation.responses).join(', ')})`);
      if (status >= 400) {
        const name = declared.$ref?.replace('#/components/responses/', '');
        const component = name === undefined ? undefined : openapi.components.responses[name];
        assert.equal(component?.content?.['application/json'].schema.$ref, '#/components/schemas/Error', `${label}: shared error schema`);
        if (status === 405) assert.ok(component?.headers?.Allow !== undefined, 'the 405 response declares Allow');
        if (status === 401) assert.ok(component?.headers?.['WWW-Authenticate'] !== undefined, 'the 401 response declares WWW-Authenticate');
      }
    }
  }
  assert.deepEqual([...seen401].sort(), ['TOKEN_CLAIMS_INVALID', 'TOKEN_EXPIRED', 'TOKEN_INVALID', 'TOKEN_MISSING'], 'every 401 code was met');
});

test('metrics use the standard process names and count every compaction, automatic or asked for through the API', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'metrics.db'), '--compact-after-entries', '3']);
  const metrics = async () => (await fetch(`${server.http}/metrics`)).text();
  const compactions = async (outcome: string) => Number(new RegExp(`^palimpsest_compactions_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)$`, 'm').exec(await metrics())?.[1]);
  const before = await metrics();
  assert.match(before, /^process_cpu_seconds_total\{[^}]*\} /m);
  assert.match(before, /^nodejs_heap_size_used_bytes\{[^}]*\} /m);
  assert.doesNotMatch(before, /process_process_|palimpsest_process_/);
  // Every outcome has a sample before the first compaction.
  assert.equal(await compactions('written'), 0);
  assert.equal(await compactions('failed'), 0);

  const raw = await connectRaw(server.url, 'counted');
  const doc = new Y.Doc();
  doc.on('update', (u: Uint8Array) => void raw.sendUpdate(u));
  for (const word of ['a', 'b', 'c']) doc.getText('text').insert(0, word);
  await waitFor(() => raw.acks.length === 3);
  await waitFor(async () => (await compactions('written')) === 1, { message: 'the automatic compaction after 3 entries is counted' });
  doc.getText('text').insert(0, 'd');
  await waitFor(() => raw.acks.length === 4);
  const compact = await fetch(`${server.http}/api/documents/counted/compact`, { method: 'POST' });
  assert.equal((await json<{ seq: number }>(compact)).seq, 4);
  assert.equal(await compactions('written'), 2, 'the compaction asked for through the API is counted');
  // Nothing to do is not a compaction.
  assert.equal((await json<{ compacted: boolean }>(await fetch(`${server.http}/api/documents/counted/compact`, { method: 'POST' }))).compacted, false);
  assert.equal(await compactions('written'), 2);
  assert.ok(server.logs.some((line) => line.msg === 'snapshot written' && line.via === 'api' && line.seq === 4), 'logged like the automatic ones');
});

test('the appends and bytes logged count every entry, written over REST (updates, content, restore) or a WebSocket, each once; a repeat counts as skipped', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'counted-writes.db')]);
  const counters = async () => {
    const text = await (await fetch(`${server.http}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1]);
    return { entries: value('palimpsest_appends_logged_total'), bytes: value('palimpsest_bytes_logged_total') };
  };
  /** What the log holds, by the history API: entries and the bytes of their updates. */
  const logged = async (docs: string[]) => {
    let entries = 0;
    let bytes = 0;
    for (const doc of docs) {
      for (const entry of await json<Array<{ size: number }>>(await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/history?limit=10000`))) {
        entries += 1;
        bytes += entry.size;
      }
    }
    return { entries, bytes };
  };
  assert.deepEqual(await counters(), { entries: 0, bytes: 0 });

  // REST only: nobody has the document open.
  const rest = `${server.http}/api/documents/${encodeURIComponent('counted/rest')}`;
  const source = new Y.Doc();
  source.getText('text').insert(0, 'posted as a Yjs update');
  const posts: Array<[string, RequestInit]> = [
    [`${rest}/updates`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(source) }],
    [`${rest}/content`, { method: 'POST', headers: { 'content-type': 'text/markdown' }, body: '# Posted\n\nas **Markdown**' }],
    [`${rest}/content?mode=append`, { method: 'POST', headers: { 'content-type': 'text/html' }, body: '<p>and HTML</p>' }],
    [`${rest}/restore`, { method: 'POST', headers: JSON_BODY, body: '{"seq":1}' }],
  ];
  for (const [url, init] of posts) {
    const response = await fetch(url, init);
    assert.equal(response.status, 200, `${url}: ${await response.text()}`);
  }
  const afterRest = await logged(['counted/rest']);
  assert.ok(afterRest.entries >= posts.length, `each write logged an entry (${afterRest.entries})`);
  await waitFor(async () => JSON.stringify(await counters()) === JSON.stringify(await logged(['counted/rest'])),
    { message: 'the counters equal what the REST writes logged' });

  // A WebSocket client's entries count as before, and nothing twice.
  const raw = await connectRaw(server.url, 'counted/socket');
  const doc = new Y.Doc();
  doc.on('update', (u: Uint8Array) => void raw.sendUpdate(u));
  doc.getText('text').insert(0, 'typed');
  doc.getText('text').insert(5, ' live');
  await waitFor(() => raw.acks.length === 2);
  await waitFor(async () => JSON.stringify(await counters()) === JSON.stringify(await logged(['counted/rest', 'counted/socket'])),
    { message: 'the counters equal every entry logged' });
  assert.equal((await logged(['counted/socket'])).entries, 2);
  assert.deepEqual(await counters(), await logged(['counted/rest', 'counted/socket']));

  // An update the log already holds, posted again over REST: counted as skipped, and only that.
  const skipped = async () => Number(/^palimpsest_appends_skipped_total\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${server.http}/metrics`)).text())?.[1]);
  const skippedBefore = await skipped();
  const again = await fetch(`${rest}/updates`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(source) });
  assert.equal(again.status, 200, await again.text());
  assert.equal(await skipped(), skippedBefore + 1);
  assert.deepEqual(await counters(), await logged(['counted/rest', 'counted/socket']));
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
  // A socket counts until its close handshake ends, which may come after its document's unload.
  await waitFor(async () => /palimpsest_connections\{[^}]*protocol="hocuspocus"[^}]*\} 0\b/.test(await (await fetch(`${server.http}/metrics`)).text()),
    { message: 'no hocuspocus connection counted' });
});

test('opening a document without writing to it stores nothing: it is listed only once someone edits it', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'open-only.db')]);
  const provider = hocuspocusClient(t, server.url, 'open/only');
  const yws = yWebsocketClient(t, server.url, 'open/only');
  await waitSettled([provider, yws]);
  const listed = async () => ((await (await fetch(`${server.http}/api/documents`)).json()) as { documents: string[] }).documents;
  assert.deepEqual(await listed(), [], 'two clients synced an empty document: nothing stored');
  yws.doc.getText('t').insert(0, 'first words');
  await waitFor(async () => (await listed()).includes('open/only'), { message: 'listed after the first edit' });
  const history = (await (await fetch(`${server.http}/api/documents/open%2Fonly/history`)).json()) as unknown[];
  assert.equal(history.length, 1, 'one entry: the edit');
});
