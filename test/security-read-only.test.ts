// Read-only tokens: a reader receives updates and presence, but what it types
// is refused — not applied, not logged, not broadcast — and it is told so.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { hocuspocusClient, yWebsocketClient } from './helpers/clients.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

test("a read-only client's edits never reach the log or other clients; it still gets updates and presence, and is told", async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'ro.db'), '--jwt-secret', TEST_SECRET]);
  const doc = 'handbook/intro';
  const admin = await hs256Token({ sub: 'admin', docs: { '*': 'write' } });
  const readToken = await hs256Token({ sub: 'reader', name: 'Reader', docs: { 'handbook/*': 'read' } });

  const writer = hocuspocusClient(t, server.url, doc, { token: await hs256Token({ sub: 'writer', docs: { 'handbook/*': 'write' } }) });
  writer.provider.setAwarenessField('user', { name: 'Writer' });
  const reader = hocuspocusClient(t, server.url, doc, { token: readToken });
  const readerYws = yWebsocketClient(t, server.url, doc, { token: readToken });
  const notices: string[] = [];
  reader.provider.on('stateless', ({ payload }: { payload: string }) => notices.push(payload));

  await waitFor(() => writer.provider.isSynced && reader.provider.isSynced && readerYws.provider.synced, { message: 'all synced' });
  assert.equal(reader.provider.authorizedScope, 'readonly');

  // Both readers type; the writer types after them, so its update is proof of delivery order.
  reader.doc.getText('body').insert(0, 'READER-HOCUSPOCUS ');
  readerYws.doc.getText('body').insert(0, 'READER-YWS ');
  reader.doc.getMap('meta').set('title', 'defaced');
  writer.doc.getText('body').insert(0, 'Welcome.');

  await waitFor(() => reader.doc.getText('body').toString().includes('Welcome.') && readerYws.doc.getText('body').toString().includes('Welcome.'),
    { message: "readers received the writer's update" });
  await waitFor(() => [...reader.provider.awareness!.getStates().values()].some((state) => (state.user as { name?: string } | undefined)?.name === 'Writer'),
    { message: "reader sees the writer's presence" });
  await waitFor(() => notices.some((notice) => JSON.parse(notice).type === 'palimpsest:write-refused'), { message: 'reader told its write was refused' });
  await waitFor(() => writer.provider.unsyncedChanges === 0, { message: 'writer acknowledged' });

  // A late joiner loads from the log: the readers' text is in no log entry and reaches no one.
  const late = hocuspocusClient(t, server.url, doc, { token: admin });
  await waitFor(() => late.provider.isSynced && late.doc.getText('body').toString() === 'Welcome.', { message: 'late joiner sees only the writer' });
  assert.equal(writer.doc.getText('body').toString(), 'Welcome.');
  assert.equal(writer.doc.getMap('meta').get('title'), undefined);

  const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/history`, { headers: { authorization: `Bearer ${admin}` } });
  const entries = (await response.json()) as Array<{ user: string | null; update: string }>;
  assert.ok(entries.length > 0);
  assert.deepEqual([...new Set(entries.map((entry) => entry.user))], ['writer']);
  const replayed = new Y.Doc();
  for (const entry of entries) Y.applyUpdate(replayed, Buffer.from(entry.update, 'base64'));
  assert.equal(replayed.getText('body').toString(), 'Welcome.');

  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(metrics, /palimpsest_refusals_total\{reason="read-only"[^}]*\} [1-9]/);
});

test('a read-only provider that does not edit (as the demo editor locks itself) is synced with nothing pending', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'ro.db'), '--jwt-secret', TEST_SECRET]);
  const doc = 'handbook/policy';
  const writer = hocuspocusClient(t, server.url, doc, { token: await hs256Token({ sub: 'writer', docs: { '*': 'write' } }) });
  writer.doc.getText('body').insert(0, 'v1');
  const reader = hocuspocusClient(t, server.url, doc, { token: await hs256Token({ sub: 'reader', docs: { '*': 'read' } }) });
  await waitFor(() => reader.provider.isSynced && reader.provider.unsyncedChanges === 0 && reader.doc.getText('body').toString() === 'v1',
    { message: 'reader synced, nothing pending' });

  // Reconnecting sends the reader's whole state as sync step 2; it holds nothing new, so it is acknowledged.
  reader.disconnect();
  await waitFor(() => !reader.provider.isSynced, { message: 'reader disconnected' });
  writer.doc.getText('body').insert(2, ' v2');
  reader.connect();
  await waitFor(() => reader.provider.isSynced && reader.provider.unsyncedChanges === 0 && reader.doc.getText('body').toString() === 'v1 v2',
    { message: 'reader resynced, nothing pending' });
});

test('a read-only provider that edits anyway keeps the refused change pending (provider 4.8 ignores SyncStatus 0) until it resyncs clean', async (t) => {
  // Documents the client behaviour SECURITY.md describes: a refused change can never be
  // acknowledged, so @hocuspocus/provider keeps counting it; only a fresh document clears it.
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'ro.db'), '--jwt-secret', TEST_SECRET]);
  const doc = 'handbook/faq';
  const token = await hs256Token({ sub: 'reader', docs: { '*': 'read' } });
  const reader = hocuspocusClient(t, server.url, doc, { token });
  await waitFor(() => reader.provider.isSynced && reader.provider.unsyncedChanges === 0, { message: 'reader synced' });
  const statuses: number[] = [];
  reader.provider.on('message', ({ message }: { message: { decoder: { arr: Uint8Array } } }) => {
    const bytes = message.decoder.arr;
    // address · type 8 (SyncStatus) · varInt applied
    const nameLength = bytes[0];
    if (bytes[1 + nameLength] === 8) statuses.push(bytes[2 + nameLength]);
  });
  reader.doc.getText('body').insert(0, 'typed while read-only');
  await waitFor(() => statuses.includes(0), { message: 'SyncStatus 0 received' });
  assert.ok(reader.provider.unsyncedChanges > 0);

  reader.destroy();
  const fresh = hocuspocusClient(t, server.url, doc, { token });
  await waitFor(() => fresh.provider.isSynced && fresh.provider.unsyncedChanges === 0, { message: 'a fresh reader is synced' });
  assert.equal(fresh.doc.getText('body').toString(), '');
});
