// Exactly once: however often an update reaches the server (a resend after a
// lost ack, a reconnect, a sync step 2 carrying the whole document), the log
// holds it once.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { runCli } from './helpers/cli.js';
import { hocuspocusClient, waitConverged, waitSettled, yWebsocketClient } from './helpers/clients.js';
import { connectRaw } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

interface HistoryEntry { seq: number; update: string; size: number }

async function history(data: string, doc: string): Promise<HistoryEntry[]> {
  const result = await runCli(['history', doc, '--json', '--data', data]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as HistoryEntry[];
}

/** Every Yjs struct (client, clock) appears in at most one log entry. */
function assertNoStructLoggedTwice(entries: HistoryEntry[]): void {
  const ranges = new Map<number, Array<[number, number, number]>>();
  for (const entry of entries) {
    for (const struct of Y.decodeUpdate(Buffer.from(entry.update, 'base64')).structs) {
      if (struct instanceof Y.Skip) continue;
      const list = ranges.get(struct.id.client) ?? [];
      list.push([struct.id.clock, struct.id.clock + struct.length, entry.seq]);
      ranges.set(struct.id.client, list);
    }
  }
  for (const [client, list] of ranges) {
    list.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < list.length; i++) {
      assert.ok(list[i][0] >= list[i - 1][1],
        `client ${client} clock ${list[i][0]} is logged by seq ${list[i - 1][2]} and again by seq ${list[i][2]}`);
    }
  }
}

test('resending an acknowledged update, on the same or a new connection, adds no log entry', async (t) => {
  const data = join(tempDir(t), 'once.db');
  const server = await startServerProcess(t, ['--data', data]);
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => updates.push(u));
  doc.getText('text').insert(0, 'hello');
  doc.getText('text').insert(5, ' world');
  doc.getText('text').delete(0, 1);

  const first = await connectRaw(server.url, 'resend');
  for (const update of updates) assert.equal(await first.sendUpdate(update), true);
  assert.equal((await history(data, 'resend')).length, 3);
  // The ack was "lost": the client sends everything again, then reconnects and does it once more.
  for (const update of updates) assert.equal(await first.sendUpdate(update), true);
  first.close();
  await first.closed;
  const second = await connectRaw(server.url, 'resend');
  for (const update of updates) assert.equal(await second.sendUpdate(update, 2), true);
  // A reconnecting provider's sync step 2: the whole state, with its delete set.
  assert.equal(await second.sendUpdate(Y.encodeStateAsUpdate(doc), 1), true);
  const entries = await history(data, 'resend');
  assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3]);
  assertNoStructLoggedTwice(entries);
  const rebuilt = new Y.Doc();
  for (const entry of entries) Y.applyUpdate(rebuilt, Buffer.from(entry.update, 'base64'));
  assert.equal(rebuilt.getText('text').toString(), 'ello world');
});

test('clients that reconnect again and again log each of their transactions once', async (t) => {
  const data = join(tempDir(t), 'reconnect.db');
  const server = await startServerProcess(t, ['--data', data]);
  const clients = [
    hocuspocusClient(t, server.url, 'busy'),
    hocuspocusClient(t, server.url, 'busy'),
    yWebsocketClient(t, server.url, 'busy'),
  ];
  // Count the transactions each client makes itself (remote ones arrive with a provider origin).
  let localTransactions = 0;
  for (const client of clients) {
    client.doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin === null || origin === undefined) localTransactions++;
    });
  }
  await waitSettled(clients);
  for (let round = 0; round < 6; round++) {
    for (const [i, client] of clients.entries()) {
      client.doc.getText('text').insert(0, `${round}:${i} `);
      if ((round + i) % 2 === 0) client.disconnect();
    }
    for (const [i, client] of clients.entries()) {
      client.doc.getText('text').insert(0, `offline${round}:${i} `);
      client.connect();
    }
    await waitSettled(clients);
  }
  await waitConverged(clients.map((c) => c.doc));
  const expected = clients[0].doc.getText('text').toString();
  const entries = await waitFor(async () => {
    const all = await history(data, 'busy');
    const rebuilt = new Y.Doc();
    for (const entry of all) Y.applyUpdate(rebuilt, Buffer.from(entry.update, 'base64'));
    return rebuilt.getText('text').toString() === expected ? all : null;
  }, { message: 'the log rebuilds the clients\u2019 text' });
  assert.equal(localTransactions, 36);
  // Offline edits made back to back may reach the server merged into one
  // sync step 2, so the log can hold fewer entries than transactions, never more.
  assert.ok(entries.length <= localTransactions, `${entries.length} entries for ${localTransactions} transactions`);
  assert.ok(entries.length >= 18, `${entries.length} entries: at least one per reconnect`);
  assertNoStructLoggedTwice(entries);
});

test('a deletion Yjs derived by itself (concurrent Y.Map sets of one key) adds no entry when a client sends it back', async (t) => {
  const data = join(tempDir(t), 'map-conflict.db');
  const server = await startServerProcess(t, ['--data', data]);
  const [ada, bob] = [new Y.Doc(), new Y.Doc()];
  const adaUpdate = (() => {
    let update: Uint8Array = new Uint8Array();
    ada.once('update', (u: Uint8Array) => { update = u; });
    ada.getMap('settings').set('theme', 'dark');
    return update;
  })();
  const bobUpdate = (() => {
    let update: Uint8Array = new Uint8Array();
    bob.once('update', (u: Uint8Array) => { update = u; });
    bob.getMap('settings').set('theme', 'light');
    return update;
  })();
  const adaClient = await connectRaw(server.url, 'settings');
  const bobClient = await connectRaw(server.url, 'settings');
  assert.equal(await adaClient.sendUpdate(adaUpdate), true);
  assert.equal(await bobClient.sendUpdate(bobUpdate), true);
  // Each side learns the other's set; Yjs deletes the losing value locally, with no delete set entry sent.
  Y.applyUpdate(ada, bobUpdate);
  Y.applyUpdate(bob, adaUpdate);
  assert.equal(ada.getMap('settings').get('theme'), bob.getMap('settings').get('theme'));
  assert.equal((await history(data, 'settings')).length, 2);
  // Reconnecting, each sends its whole state as sync step 2: that deletion is in its delete set.
  for (const doc of [ada, bob]) {
    const client = await connectRaw(server.url, 'settings');
    assert.equal(await client.sendUpdate(Y.encodeStateAsUpdate(doc), 1), true);
    client.close();
  }
  assert.equal((await history(data, 'settings')).length, 2, 'no entry for a deletion the log already implies');
});
