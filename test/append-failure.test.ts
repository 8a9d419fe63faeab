// A failed append while the update is already in the live document (fan-out
// does not wait for the commit): the sender is not acknowledged, and the live
// document is repaired into the log once the database takes writes again, so
// what other clients already see is logged even if the sender never returns,
// and nothing built on the failed update is acknowledged before that.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import * as Y from 'yjs';
import { runCli } from './helpers/cli.js';
import { hocuspocusClient, waitConverged } from './helpers/clients.js';
import { connectRaw } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

async function loggedText(data: string, doc: string): Promise<string> {
  const result = await runCli(['export', doc, '--json', '--data', data]);
  assert.equal(result.code, 0, result.stderr);
  const ydoc = new Y.Doc();
  Y.applyUpdate(ydoc, Buffer.from((JSON.parse(result.stdout) as { update: string }).update, 'base64'));
  return ydoc.getText('text').toString();
}

test('after a failed append the live document is repaired into the log, and edits built on the failed update wait for it', async (t) => {
  const data = join(tempDir(t), 'repair.db');
  const server = await startServerProcess(t, ['--data', data]);
  const writer = hocuspocusClient(t, server.url, 'repair/doc');
  await waitFor(() => writer.provider.isSynced, { message: 'writer synced' });

  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on('update', (update: Uint8Array) => updates.push(update));
  source.getText('text').insert(0, 'kept ');
  source.getText('text').insert(5, 'arrived-during-the-failure');
  const sender = await connectRaw(server.url, 'repair/doc');
  assert.equal(await sender.sendUpdate(updates[0]), true);

  // Another process holds the write lock past the server's busy timeout.
  const blocker = new Database(data);
  t.after(() => blocker.close());
  blocker.exec('BEGIN IMMEDIATE');
  assert.equal(await sender.sendUpdate(updates[1]), false, 'no ack for an update that was not written');
  assert.equal((await sender.closed).code, 4503);
  // The writer already holds the update (fan-out did not wait), and edits on top of it.
  await waitFor(() => writer.doc.getText('text').toString() === 'kept arrived-during-the-failure', { message: 'the writer saw the update' });
  writer.doc.getText('text').delete(5, 'arrived-'.length);
  writer.doc.getText('text').insert(writer.doc.getText('text').length, ' +writer');
  const expected = writer.doc.getText('text').toString();
  assert.equal(expected, 'kept during-the-failure +writer');
  assert.ok(writer.provider.unsyncedChanges > 0, 'the writer is not acknowledged while the database refuses writes');

  blocker.exec('ROLLBACK');
  // The sender never comes back: the repair alone brings its update into the log.
  await waitFor(() => writer.provider.unsyncedChanges === 0, { timeoutMs: 30_000, message: 'the writer is acknowledged after the repair' });
  assert.equal(await loggedText(data, 'repair/doc'), expected, 'the log holds what clients see');
  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(metrics, /palimpsest_repairs_total\{outcome="written"[^}]*\} [1-9]/);

  // A new client loads exactly that.
  const late = hocuspocusClient(t, server.url, 'repair/doc');
  await waitConverged([writer.doc, late.doc]);
  assert.equal(late.doc.getText('text').toString(), expected);
});
