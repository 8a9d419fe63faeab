// The WebSocket transport's own behaviour under real clients: what the
// y-websocket bridge passes on to Hocuspocus (y-websocket sends peers'
// awareness back to the server; those echoes must not reach Hocuspocus, whose
// handling of each awareness frame is costly) and the keep-alive that drops
// peers which stop answering pings.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Extension } from '@hocuspocus/server';
import WebSocket from 'ws';
import { openEventStore } from '../persistence/index.js';
import { loadServeConfig } from '../server/config.js';
import { MessageType } from '../server/frames.js';
import { createCollabServer } from '../server/index.js';
import { createLogger } from '../server/logger.js';
import { hocuspocusClient, yWebsocketClient, type TestClient } from './helpers/clients.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

/**
 * A real server in this process, with an extension that counts the awareness
 * frames reaching Hocuspocus per document connection. (A message hook turns
 * the transport's direct awareness path off; `countAwareness: false` leaves it on.)
 */
async function serverCountingAwareness(t: TestContext, { countAwareness = true } = {}) {
  const config = loadServeConfig(['--port', '0', '--data', join(tempDir(t), 'transport.db'), '--log-level', 'silent'], {}, { staticDir: null });
  const store = openEventStore({ path: config.store.data, synchronous: 'normal' });
  const awarenessFrames = new Map<string, number>();
  const counter: Extension = {
    extensionName: 'test-awareness-counter',
    async beforeHandleMessage({ socketId, update }) {
      // Frame: varString(document name) · varUint(type) · …; names here are short, so the length is one byte.
      if (update[1 + update[0]] === MessageType.Awareness) awarenessFrames.set(socketId, (awarenessFrames.get(socketId) ?? 0) + 1);
    },
  };
  const server = createCollabServer({
    config, store, logger: createLogger({ level: 'silent', instanceId: 'test' }), extensions: countAwareness ? [counter] : [],
  });
  const { port } = await server.listen();
  t.after(async () => {
    await server.close();
    await store.close();
  });
  const total = () => [...awarenessFrames.values()].reduce((sum, n) => sum + n, 0);
  return { url: `ws://127.0.0.1:${port}`, total };
}

function sees(client: TestClient & { provider: { awareness: { getStates(): Map<number, Record<string, unknown>> } } }, clientId: number, value: unknown) {
  return client.provider.awareness.getStates().get(clientId)?.name === value;
}

test("y-websocket clients see each other's awareness; the peers' states they send back never reach Hocuspocus", async (t) => {
  const server = await serverCountingAwareness(t);
  const clients = [0, 1, 2].map(() => yWebsocketClient(t, server.url, 'transport/awareness', { disableBc: true }));
  await waitFor(() => clients.every((c) => c.provider.synced), { message: 'clients synced' });
  // y-protocols gives a new client's first state clock 0, which a server ignores; a change has clock >= 1.
  for (const [i, client] of clients.entries()) client.provider.awareness.setLocalStateField('name', `first-${i}`);
  await waitFor(() => clients.every((viewer) => clients.every((c, i) => sees(viewer, c.doc.clientID, `first-${i}`))),
    { message: 'every client sees every state' });

  const before = server.total();
  const [mover, ...others] = clients;
  mover.provider.awareness.setLocalStateField('name', 'moved');
  await waitFor(() => others.every((c) => sees(c, mover.doc.clientID, 'moved')), { message: 'peers see the change' });
  // Each peer sent its echo of the change as soon as it applied it, before this edit; once the
  // edit has reached the mover through the server, the server has handled the echo too.
  for (const [i, peer] of others.entries()) peer.doc.getText('t').insert(0, `edit-${i}`);
  await waitFor(() => mover.doc.getText('t').length === 'edit-0'.length * others.length, { message: 'the peers\' edits reach the mover' });
  t.diagnostic(`awareness frames: ${before} before, ${server.total()} after`);
  assert.equal(server.total() - before, 1, 'only the change itself reached Hocuspocus');
});

test('with no message hooks, awareness is applied directly: providers and y-websocket peers see it, and a dropped socket takes its states with it', async (t) => {
  const server = await serverCountingAwareness(t, { countAwareness: false });
  const documentName = 'transport/direct-awareness';
  const first = yWebsocketClient(t, server.url, documentName, { disableBc: true });
  const second = yWebsocketClient(t, server.url, documentName, { disableBc: true });
  const provider = hocuspocusClient(t, server.url, documentName);
  // No state until it is synced, so that its first awareness frame comes after Hocuspocus has
  // opened its connection and takes the direct path (an earlier one would wait in Hocuspocus).
  second.provider.awareness.setLocalState(null);
  await waitFor(() => first.settled() && second.settled() && provider.settled(), { message: 'clients synced' });
  const statesOf = (client: typeof provider | typeof first) => client.provider.awareness!.getStates();
  const viewers = [first, second, provider];

  // Clock 0 is ignored by a server (see above); these changes have clocks >= 1.
  first.provider.awareness.setLocalStateField('name', 'first');
  second.provider.awareness.setLocalState({ name: 'second' });
  provider.provider.setAwarenessField('name', 'provider');
  const ids = { first: first.doc.clientID, second: second.doc.clientID, provider: provider.doc.clientID };
  await waitFor(() => viewers.every((viewer) => Object.entries(ids).every(([name, id]) => statesOf(viewer).get(id)?.name === name)),
    { message: 'every client sees every state' });

  first.provider.awareness.setLocalStateField('name', 'first, moved');
  await waitFor(() => [second, provider].every((viewer) => statesOf(viewer).get(ids.first)?.name === 'first, moved'),
    { message: 'a change reaches both kinds of peer' });

  // The socket drops without a goodbye: the server removes the states that came over it, which
  // it knows only if the direct path applied them as coming from this socket's connection.
  second.provider.shouldConnect = false;
  (second.provider.ws as unknown as WebSocket).terminate();
  await waitFor(() => [first, provider].every((viewer) => !statesOf(viewer).has(ids.second)),
    { message: "the dropped client's state is removed at its peers" });
  assert.equal(statesOf(provider).get(ids.first)?.name, 'first, moved');
});

test('a y-websocket client whose document name holds "://", unencoded in its URL as stock y-websocket sends it, edits with a provider', async (t) => {
  const data = join(tempDir(t), 'url-name.db');
  const server = await startServerProcess(t, ['--data', data]);
  const documentName = 'pages/https://example.com/page';
  const yws = yWebsocketClient(t, server.url, documentName, { disableBc: true, unencodedName: true });
  const provider = hocuspocusClient(t, server.url, documentName);
  await waitFor(() => yws.provider.synced && provider.provider.isSynced, { message: 'both synced' });
  yws.doc.getText('t').insert(0, 'from y-websocket;');
  provider.doc.getText('t').insert(0, 'from provider;');
  const both = (text: string) => text.includes('from y-websocket;') && text.includes('from provider;');
  await waitFor(() => both(yws.doc.getText('t').toString()) && both(provider.doc.getText('t').toString()), {
    message: 'both clients hold both edits',
  });
  assert.equal(yws.provider.wsconnected, true, 'the y-websocket client stayed connected');
});

test('a peer that stops answering pings is dropped within two keep-alive intervals; one that answers stays', async (t) => {
  const keepAliveMs = 300;
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'keep-alive.db'), '--keep-alive-ms', String(keepAliveMs)]);
  const open = (autoPong: boolean) => {
    const ws = new WebSocket(server.url, { autoPong });
    ws.on('error', () => undefined);
    t.after(() => ws.terminate());
    let pings = 0;
    ws.on('ping', () => { pings += 1; });
    const closed = new Promise<number>((resolve) => ws.once('close', () => resolve(performance.now())));
    return { ws, pings: () => pings, closed, opened: new Promise<number>((resolve) => ws.once('open', () => resolve(performance.now()))) };
  };
  const silent = open(false);
  const honest = open(true);
  const openedAt = await silent.opened;
  await honest.opened;
  const closedAt = await silent.closed;
  assert.ok(silent.pings() >= 1, 'the silent peer was pinged before it was dropped');
  assert.ok(closedAt - openedAt < 2 * keepAliveMs + 1000, `dropped ${(closedAt - openedAt).toFixed(0)} ms after opening`);
  await waitFor(() => honest.pings() >= 3, { message: 'the honest peer keeps being pinged' });
  assert.equal(honest.ws.readyState, WebSocket.OPEN);
});
