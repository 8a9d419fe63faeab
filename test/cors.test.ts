// CORS on the REST API: off by default (a page on another origin gets no
// Access-Control-Allow-Origin and its preflight is refused), and for the
// origins listed with --cors-origins: preflights answered, answers readable
// with their Palimpsest headers, other origins still refused; "*" for any.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { cliPath, startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';

const EMBED = 'https://embed.example';
const OTHER = 'https://elsewhere.example';

function preflight(url: string, origin: string, method = 'GET', headers = 'authorization'): Promise<Response> {
  return fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });
}

test('without --cors-origins the API answers no cross-origin page: no CORS headers, preflights refused with a reason', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'closed.db')]);
  const url = `${server.http}/api/documents/notes/versions`;
  const answer = await fetch(url, { headers: { origin: EMBED } });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('access-control-allow-origin'), null);
  const refused = await preflight(url, EMBED);
  assert.equal(refused.status, 403);
  assert.equal(refused.headers.get('access-control-allow-origin'), null);
  const body = await refused.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'CORS_ORIGIN_REFUSED');
  assert.match(body.error.message, /--cors-origins/);
});

test('a listed origin gets preflights answered and readable answers with the seq header; an unlisted one does not', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'cors.db'), '--jwt-secret', TEST_SECRET, '--cors-origins', `${EMBED}, https://second.example`]);
  const token = await hs256Token({ sub: 'u-1', name: 'Ada', docs: { '*': 'write' } });
  const base = `${server.http}/api/documents/notes`;

  const answered = await preflight(`${base}/restore`, EMBED, 'POST', 'authorization, content-type');
  assert.equal(answered.status, 204);
  assert.equal(answered.headers.get('access-control-allow-origin'), EMBED);
  assert.match(answered.headers.get('access-control-allow-methods') ?? '', /POST/);
  assert.match(answered.headers.get('access-control-allow-headers') ?? '', /authorization/);
  assert.equal(answered.headers.get('access-control-allow-credentials'), null, 'tokens, not cookies: credentials are never allowed');
  assert.match(answered.headers.get('vary') ?? '', /Origin/);

  const state = await fetch(`${base}/state`, { headers: { origin: EMBED, authorization: `Bearer ${token}` } });
  assert.equal(state.status, 200);
  assert.equal(state.headers.get('access-control-allow-origin'), EMBED);
  assert.match(state.headers.get('access-control-expose-headers') ?? '', /x-palimpsest-seq/);
  // Errors are readable too, so a page can tell a missing token from a network failure.
  const unauthorized = await fetch(`${base}/state`, { headers: { origin: EMBED } });
  assert.equal(unauthorized.status, 401);
  assert.equal(unauthorized.headers.get('access-control-allow-origin'), EMBED);

  const other = await preflight(`${base}/state`, OTHER);
  assert.equal(other.status, 403);
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  const otherGet = await fetch(`${base}/state`, { headers: { origin: OTHER, authorization: `Bearer ${token}` } });
  assert.equal(otherGet.headers.get('access-control-allow-origin'), null);
  assert.equal((await preflight(`${base}/state`, EMBED, 'DELETE')).status, 403, 'a method the API does not use');
  assert.equal((await preflight(`${base}/state`, EMBED, 'GET', 'x-custom')).status, 403, 'a header the API does not read');
  // Outside /api nothing changes: the editor's files keep their own rules.
  assert.equal((await fetch(`${server.http}/healthz`, { headers: { origin: EMBED } })).headers.get('access-control-allow-origin'), null);
});

test('--cors-origins "*" answers any origin where tokens are required; a malformed origin, or "*" without tokens, stops the server at start naming the flag', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'any.db'), '--jwt-secret', TEST_SECRET, '--cors-origins', '*']);
  const answered = await preflight(`${server.http}/api/documents`, OTHER);
  assert.equal(answered.status, 204);
  assert.equal(answered.headers.get('access-control-allow-origin'), '*');
  const bad = spawnSync(process.execPath, [cliPath, 'serve', '--port', '0', '--data', join(tempDir(t), 'bad.db'), '--cors-origins', 'embed.example/path'],
    { encoding: 'utf8', timeout: 20_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--cors-origins/);
  const open = spawnSync(process.execPath, [cliPath, 'serve', '--port', '0', '--data', join(tempDir(t), 'open.db'), '--cors-origins', '*'],
    { encoding: 'utf8', timeout: 20_000, env: { ...process.env, PALIMPSEST_JWT_SECRET: '', PALIMPSEST_JWKS_FILE: '' } });
  assert.equal(open.status, 2, 'any origin on a server without tokens');
  assert.match(open.stderr, /--cors-origins.*--jwt-secret/);
});

test('on a server without tokens a page on another site cannot change a document: its POSTs are refused 403 before anything runs, as simple requests or not', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'writes.db'), '--cors-origins', EMBED]);
  const path = `${server.http}/api/documents/notes`;
  // Two entries, written without an Origin header (as curl or a server would).
  const doc = new Y.Doc();
  for (const words of ['first', ' second']) {
    const before = Y.encodeStateVector(doc);
    doc.getText('text').insert(doc.getText('text').length, words);
    const written = await fetch(`${path}/updates`, {
      method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(doc, before),
    });
    assert.equal(written.status, 200, await written.text());
  }
  const history = async () => (await (await fetch(`${path}/history`)).json()) as unknown[];
  const versions = async () => (await (await fetch(`${path}/versions`)).json()) as { versions: unknown[] };
  const [historyBefore, versionsBefore] = [await history(), await versions()];

  // What a page on any site can send without a preflight: fetch(url, {method: 'POST', mode: 'no-cors', body}), a form.
  const attempts: Array<[string, RequestInit]> = [
    ['restore', { body: '{"seq":1}', headers: { 'content-type': 'text/plain;charset=UTF-8' } }],
    ['versions', { body: '{"seq":1,"name":"planted"}', headers: { 'content-type': 'text/plain;charset=UTF-8' } }],
    ['compact', {}],
    ['content?mode=append', { body: 'planted', headers: { 'content-type': 'text/plain' } }],
    ['restore', { body: '{"seq":1}', headers: { 'content-type': 'application/json' } }],
  ];
  for (const [action, init] of attempts) {
    for (const origin of [OTHER, 'null']) {
      const answer = await fetch(`${path}/${action}`, { method: 'POST', ...init, headers: { ...init.headers as Record<string, string>, origin } });
      const body = await answer.json() as { error: { code: string; message: string } };
      assert.equal(answer.status, 403, `${action} from ${origin}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, 'CORS_ORIGIN_REFUSED');
      assert.match(body.error.message, new RegExp(`a page on ${origin} may not change documents here; it is not in --cors-origins`));
    }
  }
  assert.deepEqual(await history(), historyBefore, 'nothing was logged');
  assert.deepEqual(await versions(), versionsBefore, 'no version was named');

  // A JSON body sent as text/plain (no preflight) is refused even without an Origin header.
  const untyped = await fetch(`${path}/restore`, { method: 'POST', body: '{"seq":1}', headers: { 'content-type': 'text/plain' } });
  assert.equal(untyped.status, 415);
  assert.equal((await untyped.json() as { error: { code: string } }).error.code, 'UNSUPPORTED_MEDIA_TYPE');

  // The server's own pages (the demo editor) and a listed origin still write.
  const own = await fetch(`${path}/versions`, {
    method: 'POST', headers: { origin: server.http, 'content-type': 'application/json' }, body: '{"seq":1,"name":"mine"}',
  });
  assert.equal(own.status, 200, await own.text());
  const listed = await fetch(`${path}/restore`, { method: 'POST', headers: { origin: EMBED, 'content-type': 'application/json' }, body: '{"seq":1}' });
  assert.equal(listed.status, 200, await listed.text());
  assert.equal(listed.headers.get('access-control-allow-origin'), EMBED);
  assert.equal((await history()).length, historyBefore.length + 1, 'the listed origin restored');
});

test('without --cors-origins a POST from another origin is refused with advice to list it', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'closed-writes.db')]);
  const answer = await fetch(`${server.http}/api/documents/notes/compact`, { method: 'POST', headers: { origin: OTHER } });
  const body = await answer.json() as { error: { code: string; message: string } };
  assert.deepEqual([answer.status, body.error.code], [403, 'CORS_ORIGIN_REFUSED']);
  assert.match(body.error.message, /this server answers no cross-origin requests \(list the origin with --cors-origins/);
  assert.equal((await fetch(`${server.http}/api/documents/notes/compact`, { method: 'POST' })).status, 200, 'curl (no Origin) still compacts');
});
