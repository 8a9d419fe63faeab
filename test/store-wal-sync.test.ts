// The server's store (background: true, synchronous full) commits under
// NORMAL and fsyncs the WAL on the thread pool (persistence/sqlite/wal-sync.ts).
// An append still resolves only once its commit is on disk; what is committed
// but not yet synced is never handed to feed readers; a failed sync fails the
// store for good and tells its owner.

import assert from 'node:assert/strict';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { openEventStore, StoreError } from '../persistence/index.js';
import { hocuspocusClient } from './helpers/clients.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';

const meta = { instanceId: 'test', user: null };

function edits(count: number): Uint8Array[] {
  const ydoc = new Y.Doc();
  const updates: Uint8Array[] = [];
  ydoc.on('update', (update: Uint8Array) => updates.push(update));
  for (let i = 0; i < count; i++) ydoc.getText('t').insert(i, 'x');
  return updates;
}

/** Resolves in the same check phase as the store's flush (scheduled earlier), before any thread-pool callback can run. */
const afterFlush = () => new Promise<void>((resolve) => setImmediate(resolve));

test('an entry committed but not yet synced is not read by entries() or feed() until its append resolves', async (t) => {
  const store = openEventStore({ path: join(tempDir(t), 'sync.db'), background: true, compactAfterEntries: 0, compactAfterBytes: 0 });
  t.after(() => store.close());
  const [first, second] = edits(2);
  await store.append('doc', first, meta);

  let resolved = false;
  const appended = store.append('doc', second, meta).then((result) => { resolved = true; return result; });
  await afterFlush();
  // Committed: the document row already says seq 2, but its sync is still on the thread pool.
  assert.equal(resolved, false);
  assert.equal((await store.info('doc'))?.seq, 2, 'the commit ran in the flush');
  assert.deepEqual((await store.entries('doc')).map((e) => e.seq), [1]);
  assert.deepEqual((await store.feed(null)).entries.map((e) => e.seq), [1]);

  assert.equal((await appended).seq, 2);
  assert.deepEqual((await store.entries('doc')).map((e) => e.seq), [1, 2]);
  assert.deepEqual((await store.feed(null)).entries.map((e) => e.seq), [1, 2]);
});

test('appends that arrive while a sync runs are covered by the next one, each resolving in order', async (t) => {
  const store = openEventStore({ path: join(tempDir(t), 'group.db'), background: true, compactAfterEntries: 0, compactAfterBytes: 0 });
  t.after(() => store.close());
  const updates = edits(300);
  const order: number[] = [];
  const appends: Array<Promise<unknown>> = [];
  for (const [i, update] of updates.entries()) {
    appends.push(store.append('doc', update, meta).then((result) => order.push(result.seq!)));
    // A new event-loop turn every ten appends: many commits, fewer syncs.
    if (i % 10 === 9) await afterFlush();
  }
  await Promise.all(appends);
  assert.deepEqual(order, updates.map((_, i) => i + 1));
  assert.equal((await store.entries('doc')).length, 300);
});

test('a WAL that cannot be synced fails the append, every later one, and health, and tells the owner once', async (t) => {
  const path = join(tempDir(t), 'lost-wal.db');
  const failures: Error[] = [];
  const store = openEventStore({
    path, background: true, compactAfterEntries: 0, compactAfterBytes: 0, onSyncFailure: (error) => failures.push(error),
  });
  t.after(() => store.close());
  const [first, second] = edits(2);
  assert.equal(store.healthy(), true);
  // SQLite has the WAL open already and keeps writing to it; the store opens it by name at its first sync.
  unlinkSync(`${path}-wal`);
  await assert.rejects(store.append('doc', first, meta), (error: unknown) => {
    assert.ok(error instanceof StoreError);
    assert.equal(error.code, 'STORE_WRITE_FAILED');
    assert.match(error.message, /lost-wal\.db-wal/);
    return true;
  });
  await assert.rejects(store.append('doc', second, meta), { code: 'STORE_WRITE_FAILED' });
  assert.equal(store.healthy(), false);
  assert.equal(failures.length, 1);
  assert.match(failures[0].message, /fsync of .*lost-wal\.db-wal failed/);
});

test('the server stops with exit 1 and a line naming the WAL when it cannot sync, acknowledging nothing', async (t) => {
  const path = join(tempDir(t), 'server.db');
  const server = await startServerProcess(t, ['--data', path]);
  const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
  // Before the first append: the server opens the WAL by name at its first sync.
  unlinkSync(`${path}-wal`);
  const client = hocuspocusClient(t, server.url, 'doc');
  client.doc.getText('t').insert(0, 'never acknowledged');
  assert.equal(await exited, 1);
  assert.equal(client.provider.unsyncedChanges > 0, true, 'the edit was not acknowledged');
  const fatal = server.logs.find((line) => line.level === 'fatal');
  assert.ok(fatal !== undefined, `a fatal log line: ${JSON.stringify(server.logs.slice(-3))}`);
  assert.match(String(fatal.err), /server\.db-wal/);
  assert.match(String(fatal.msg), /could not be synced/);
});
