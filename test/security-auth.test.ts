// Authentication and per-document permissions over every way in: the
// Hocuspocus provider, stock y-websocket on /yjs/<doc>, and the REST API,
// against a real `palimpsest serve` with an HS256 secret and an ES256 JWKS.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { hocuspocusClient, yWebsocketClient, type TestClient } from './helpers/clients.js';
import { cliPath, startServerProcess, type ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { es256Issuer, hs256Token, type Es256Issuer } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

interface Outcome {
  /** Close code the server ended the socket with, or null while it is open. */
  closeCode: number | null;
  /** Reason of a Hocuspocus authenticationFailed event. */
  deniedReason: string | null;
  synced: boolean;
}

/** Opens a client of `kind` with `token` and reports how the server answered. */
function connect(t: TestContext, server: ServerProcess, kind: TestClient['kind'], doc: string, token: string) {
  const outcome: Outcome = { closeCode: null, deniedReason: null, synced: false };
  if (kind === 'hocuspocus') {
    const client = hocuspocusClient(t, server.url, doc, { token });
    client.provider.configuration.websocketProvider.on('close', ({ event }: { event: { code: number } }) => {
      outcome.closeCode ??= event.code;
    });
    client.provider.on('authenticationFailed', ({ reason }: { reason: string }) => { outcome.deniedReason = reason; });
    client.provider.on('synced', () => { outcome.synced = true; });
    return { client, outcome };
  }
  const client = yWebsocketClient(t, server.url, doc, { token });
  client.provider.on('connection-close', (event: { code: number } | null) => {
    if (event !== null) outcome.closeCode ??= event.code;
  });
  client.provider.on('sync', (synced: boolean) => { outcome.synced ||= synced; });
  return { client, outcome };
}

async function history(server: ServerProcess, doc: string, token: string): Promise<Array<{ user: string | null }>> {
  const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/history`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200);
  return (await response.json()) as Array<{ user: string | null }>;
}

describe('authentication', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let issuer: Es256Issuer;
  let admin: string;

  before(async () => {
    // One server for the whole matrix; its teardown is tied to this suite's lifetime.
    const suite = { after: (fn: () => unknown) => { teardown.push(fn); } };
    const dir = tempDir(suite);
    issuer = await es256Issuer(dir);
    server = await startServerProcess(suite, ['--data', join(dir, 'auth.db'), '--jwt-secret', 'test-secret-test-secret-test-secret-0123',
      '--jwks-file', issuer.jwksFile]);
    admin = await hs256Token({ sub: 'admin', docs: { '*': 'write' } });
  });
  const teardown: Array<() => unknown> = [];
  after(async () => {
    for (const fn of teardown.reverse()) await fn();
  });

  const refusals: Array<{ name: string; token: () => Promise<string>; code: number }> = [
    { name: 'no token', token: async () => '', code: 4401 },
    { name: 'a token with a bad signature', token: () => hs256Token({ sub: 'mallory', docs: { '*': 'write' } }, 'another-secret-another-secret-0123'), code: 4401 },
    { name: 'an expired token', token: () => hs256Token({ sub: 'ada', docs: { '*': 'write' }, expiresIn: -120 }), code: 4401 },
    { name: 'a token for other documents', token: () => hs256Token({ sub: 'ada', docs: { 'other/*': 'write' } }), code: 4403 },
    { name: 'a token that names the document "none"', token: () => hs256Token({ sub: 'ada', docs: { 'team/*': 'write', 'team/secret-*': 'none' } }), code: 4403 },
  ];

  for (const kind of ['hocuspocus', 'y-websocket'] as const) {
    for (const refusal of refusals) {
      test(`${kind}: ${refusal.name} is refused with ${refusal.code} and nothing is logged`, async (t) => {
        const doc = `team/secret-${kind}-${refusal.code}-${Math.random().toString(36).slice(2, 8)}`;
        const { client, outcome } = connect(t, server, kind, doc, await refusal.token());
        client.doc.getText('t').insert(0, 'should never be stored');
        await waitFor(() => outcome.closeCode !== null, { message: 'socket closed by the server' });
        assert.equal(outcome.closeCode, refusal.code);
        assert.equal(outcome.synced, false);
        if (kind === 'hocuspocus') assert.equal(outcome.deniedReason, refusal.code === 4401 ? 'unauthorized' : 'forbidden');
        client.destroy();
        assert.deepEqual(await history(server, doc, admin), []);
      });
    }

    test(`${kind}: a write token edits and the log records its sub as the user`, async (t) => {
      const doc = `team/${kind}-write`;
      const { client, outcome } = connect(t, server, kind, doc, await hs256Token({ sub: 'ada', name: 'Ada', docs: { 'team/*': 'write' } }));
      await waitFor(() => outcome.synced, { message: 'synced' });
      client.doc.getText('t').insert(0, 'hello');
      const entries = await waitFor(async () => {
        const logged = await history(server, doc, admin);
        return logged.length > 0 ? logged : null;
      }, { message: 'edit logged' });
      assert.ok(entries.every((entry) => entry.user === 'ada'));
      assert.equal(outcome.closeCode, null);
    });

    test(`${kind}: an ES256 token from the JWKS file is accepted`, async (t) => {
      const doc = `jwks/${kind}`;
      const { client, outcome } = connect(t, server, kind, doc, await issuer.token({ sub: 'grace', docs: { 'jwks/*': 'write' } }));
      await waitFor(() => outcome.synced, { message: 'synced' });
      client.doc.getText('t').insert(0, 'signed elsewhere');
      await waitFor(async () => (await history(server, doc, admin)).some((entry) => entry.user === 'grace'), { message: 'edit logged as grace' });
    });

    test(`${kind}: a read token syncs the document but is not a writer`, async (t) => {
      const doc = `shared/${kind}-read`;
      const writer = connect(t, server, 'hocuspocus', doc, await hs256Token({ sub: 'ada', docs: { 'shared/*': 'write' } }));
      writer.client.doc.getText('t').insert(0, 'published');
      await waitFor(async () => (await history(server, doc, admin)).length > 0, { message: 'writer logged' });
      const { client, outcome } = connect(t, server, kind, doc, await hs256Token({ sub: 'reader', docs: { 'shared/*': 'read' } }));
      await waitFor(() => client.doc.getText('t').toString() === 'published', { message: 'reader received the document' });
      if (kind === 'hocuspocus') {
        const provider = (client as ReturnType<typeof hocuspocusClient>).provider;
        await waitFor(() => provider.authorizedScope === 'readonly', { message: 'provider told it is read-only' });
      }
      assert.equal(outcome.closeCode, null);
    });
  }

  test('an ES256 token signed by an unknown key is refused with 4401', async (t) => {
    const stranger = await es256Issuer(tempDir(t));
    const { outcome } = connect(t, server, 'hocuspocus', 'jwks/stranger', await stranger.token({ sub: 'eve', docs: { '*': 'write' } }));
    await waitFor(() => outcome.closeCode !== null, { message: 'closed' });
    assert.equal(outcome.closeCode, 4401);
  });

  test('a provider presents a fresh token without losing its session; a token for the wrong user ends it', async (t) => {
    const doc = 'team/refresh';
    let token = await hs256Token({ sub: 'ada', docs: { 'team/*': 'read' } });
    const socket = new HocuspocusProviderWebsocket({ url: server.url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket });
    const provider = new HocuspocusProvider({ websocketProvider: socket, name: doc, document: new Y.Doc(), token: () => token });
    t.after(() => { provider.destroy(); socket.destroy(); });
    let closes = 0;
    socket.on('close', () => { closes += 1; });
    provider.attach();
    const client = { provider, doc: provider.document };
    await waitFor(() => client.provider.isSynced && client.provider.authorizedScope === 'readonly', { message: 'read-only session' });
    client.doc.getText('t').insert(0, 'before ');
    await waitFor(() => client.provider.unsyncedChanges > 0, { message: 'refused write pending' });

    // The upgraded token lets the same session write: the next update is logged.
    token = await hs256Token({ sub: 'ada', docs: { 'team/*': 'write' } });
    await client.provider.sendToken();
    await waitFor(async () => {
      client.doc.getText('t').insert(0, 'x');
      return (await history(server, doc, admin)).some((entry) => entry.user === 'ada');
    }, { message: 'write after refresh logged', intervalMs: 200 });
    assert.equal(closes, 0, 'the socket stayed open across the refresh');

    token = await hs256Token({ sub: 'mallory', docs: { 'team/*': 'write' } });
    await client.provider.sendToken();
    await waitFor(() => closes > 0, { message: 'socket closed for a token of another user' });
  });

  test('the REST API answers 401 without a valid token, 403 outside the grant, 200 within it', async () => {
    const doc = encodeURIComponent('team/api');
    const url = `${server.http}/api/documents/${doc}/history`;
    const get = async (token: string | null, path = url, init: RequestInit = {}) => (await fetch(path, {
      ...init, headers: token === null ? {} : { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    })).status;
    assert.equal(await get(null), 401);
    assert.equal(await get(await hs256Token({ sub: 'ada', docs: { '*': 'write' } }, 'another-secret-another-secret-0123')), 401);
    assert.equal(await get(await hs256Token({ sub: 'ada', docs: { '*': 'write' }, expiresIn: -120 })), 401);
    assert.equal(await get(await hs256Token({ sub: 'ada', docs: { 'other/*': 'write' } })), 403);
    const reader = await hs256Token({ sub: 'ada', docs: { 'team/*': 'read' } });
    assert.equal(await get(reader), 200);
    assert.equal(await get(await issuer.token({ sub: 'grace', docs: { 'team/*': 'read' } })), 200);
    // Writing (compaction, restore) needs write access.
    assert.equal(await get(reader, `${server.http}/api/documents/${doc}/compact`, { method: 'POST' }), 403);
    assert.equal(await get(await hs256Token({ sub: 'ada', docs: { 'team/*': 'write' } }), `${server.http}/api/documents/${doc}/compact`,
      { method: 'POST' }), 200);
    // Listing every document name needs read access to every document.
    assert.equal(await get(reader, `${server.http}/api/documents`), 403);
    assert.equal(await get(admin, `${server.http}/api/documents`), 200);
    // Probes and the API description stay open.
    assert.equal(await get(null, `${server.http}/healthz`), 200);
    assert.equal(await get(null, `${server.http}/api/openapi.json`), 200);
    assert.equal(await get(null, `${server.http}/metrics`), 200, 'loopback peers read /metrics');
  });
});

describe('configuration', () => {
  test('serve refuses a non-loopback --host without authentication (exit 2, names the flag) unless --insecure', () => {
    const dir = tempDir({ after: () => undefined });
    const run = (args: string[]) => spawnSync(process.execPath, [cliPath, 'serve', '--port', '0', '--data', join(dir, 'x.db'), ...args],
      { encoding: 'utf8', timeout: 20_000, env: { ...process.env, PALIMPSEST_JWT_SECRET: '', PALIMPSEST_JWKS_FILE: '' } });
    const refused = run(['--host', '0.0.0.0']);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /--host/);
    assert.match(refused.stderr, /--insecure/);

    const shortSecret = run(['--jwt-secret', 'short']);
    assert.equal(shortSecret.status, 2);
    assert.match(shortSecret.stderr, /--jwt-secret/);

    const missingJwks = run(['--jwks-file', join(dir, 'absent.json')]);
    assert.equal(missingJwks.status, 2);
    assert.match(missingJwks.stderr, /--jwks-file/);

    const badOrigin = run(['--allowed-origins', 'example.com/path']);
    assert.equal(badOrigin.status, 2);
    assert.match(badOrigin.stderr, /--allowed-origins/);

    const badProxy = run(['--trusted-proxies', '10.0.0.0/99']);
    assert.equal(badProxy.status, 2);
    assert.match(badProxy.stderr, /--trusted-proxies/);
  });

  test('serve listens beyond loopback without authentication when --insecure is given', async (t) => {
    const server = await startServerProcess(t, ['--host', '0.0.0.0', '--insecure', '--data', join(tempDir(t), 'x.db')]);
    assert.ok(server.port > 0);
    await waitFor(() => server.logs.some((line) => line.level === 'warn' && /no authentication configured/.test(String(line.msg))),
      { message: 'warning about the missing authentication' });
  });
});
