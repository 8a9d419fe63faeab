// What each stock client does with each close code: a condition that can pass
// (server shutdown, overload) makes both @hocuspocus/provider and y-websocket
// reconnect by themselves, and every edit made meanwhile reaches the log; one
// that cannot (bad name, forbidden) makes y-websocket stop and tells the
// application why (the provider learns it from authenticationFailed).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { freePort, runCli } from './helpers/cli.js';
import { hocuspocusClient, yWebsocketClient } from './helpers/clients.js';
import { rawSocket } from './helpers/raw-socket.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

async function loggedText(data: string, doc: string): Promise<string> {
  const result = await runCli(['export', doc, '--json', '--data', data]);
  assert.equal(result.code, 0, result.stderr);
  const ydoc = new Y.Doc();
  Y.applyUpdate(ydoc, Buffer.from((JSON.parse(result.stdout) as { update: string }).update, 'base64'));
  return ydoc.getText('t').toString();
}

test('after a server shutdown (1001) both stock clients reconnect by themselves and edits made meanwhile reach the log', async (t) => {
  const data = join(tempDir(t), 'shutdown.db');
  const port = await freePort();
  const first = await startServerProcess(t, ['--data', data, '--port', String(port)]);
  const provider = hocuspocusClient(t, first.url, 'close/shutdown');
  const yws = yWebsocketClient(t, first.url, 'close/shutdown');
  const codes: number[] = [];
  yws.provider.on('connection-close', (event: CloseEvent | null) => { if (event !== null) codes.push(event.code); });
  await waitFor(() => provider.provider.isSynced && yws.provider.synced, { message: 'both synced' });

  assert.equal(await first.kill('SIGTERM'), 0);
  await waitFor(() => codes.includes(1001) && !yws.provider.wsconnected, { message: 'y-websocket saw 1001' });
  provider.doc.getText('t').insert(0, 'P-offline ');
  yws.doc.getText('t').insert(0, 'Y-offline ');

  const second = await startServerProcess(t, ['--data', data, '--port', String(port)]);
  assert.equal(second.port, port);
  await waitFor(async () => {
    const text = await loggedText(data, 'close/shutdown');
    return text.includes('P-offline') && text.includes('Y-offline');
  }, { timeoutMs: 30_000, message: 'both offline edits logged after the restart' });
  assert.ok(yws.provider.shouldConnect, 'y-websocket still wants to connect');
});

test('a client over the per-address limit gets 1013 and, once a slot frees, both stock clients get in and their edits are logged', async (t) => {
  const data = join(tempDir(t), 'overload.db');
  const server = await startServerProcess(t, ['--data', data, '--max-connections-per-address', '1']);
  const holder = rawSocket(t, server.url);
  await holder.opened;
  const yws = yWebsocketClient(t, server.url, 'close/overload');
  const provider = hocuspocusClient(t, server.url, 'close/overload');
  const ywsCodes: number[] = [];
  const providerCodes: number[] = [];
  yws.provider.on('connection-close', (event: CloseEvent | null) => { if (event !== null) ywsCodes.push(event.code); });
  provider.provider.configuration.websocketProvider.on('close', ({ event }: { event: { code: number } }) => providerCodes.push(event.code));
  await waitFor(() => ywsCodes.includes(1013) && providerCodes.includes(1013), { message: 'both refused with 1013' });
  yws.doc.getText('t').insert(0, 'yws ');
  provider.doc.getText('t').insert(0, 'provider ');

  holder.ws.close();
  // One slot: whichever gets it first edits, then leaves it to the other.
  await waitFor(() => yws.provider.synced || provider.provider.isSynced, { timeoutMs: 20_000, message: 'one client got in' });
  if (yws.provider.synced) await waitFor(async () => (await loggedText(data, 'close/overload')).includes('yws'), { message: 'y-websocket edit logged' });
  else await waitFor(() => provider.provider.unsyncedChanges === 0, { message: 'provider edit acknowledged' });
  const first = yws.provider.synced ? yws : provider;
  first.destroy();
  await waitFor(async () => {
    const text = await loggedText(data, 'close/overload');
    return text.includes('yws') && text.includes('provider');
  }, { timeoutMs: 20_000, message: 'both edits logged' });
  assert.ok(ywsCodes.every((code) => code === 1013), `y-websocket close codes ${ywsCodes.join(',')}`);
});

test('an invalid document name (4422) and a forbidden document (4403) stop y-websocket, and the application is told why', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'final.db'), '--jwt-secret', TEST_SECRET]);
  const token = await hs256Token({ sub: 'ann', docs: { 'final/allowed': 'write' } });

  const badName = yWebsocketClient(t, server.url, 'bad name!', { token });
  const badNameClosed = new Promise<number>((resolve) => badName.provider.once('connection-close', (event: CloseEvent | null) => resolve(event?.code ?? 0)));
  assert.equal(await badNameClosed, 4422);
  await waitFor(() => !badName.provider.shouldConnect, { message: 'y-websocket stopped after 4422' });

  const forbidden = yWebsocketClient(t, server.url, 'final/other', { token });
  const forbiddenClosed = new Promise<number>((resolve) => forbidden.provider.once('connection-close', (event: CloseEvent | null) => resolve(event?.code ?? 0)));
  assert.equal(await forbiddenClosed, 4403);
  await waitFor(() => !forbidden.provider.shouldConnect, { message: 'y-websocket stopped after 4403' });

  const provider = hocuspocusClient(t, server.url, 'final/other', { token });
  const reason = await new Promise<string>((resolve) => provider.provider.on('authenticationFailed', ({ reason: why }: { reason: string }) => resolve(why)));
  assert.equal(reason, 'forbidden');
});
