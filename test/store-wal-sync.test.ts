// The server's store (background: true, synchronous full) commits under
// NORMAL and fsyncs the WAL on the thread pool (persistence/sqlite/wal-sync.ts).
// An append still resolves only once its commit is on disk; what is committed
// but not yet synced is never handed to feed readers; a failed sync fails the
// store for good and tells its owner. The store's fsync is held or failed by
// the test (syncFile) where timing matters; the real fdatasync runs on release.

import assert from 'node:assert/strict';
import { fdatasync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as Y from 'yjs';
import { openEventStore, StoreError } from '../persistence/index.js';
import { hocuspocusClient } from './helpers/clients.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const meta = { instanceId: 'test', user: null };

function edits(count: number): Uint8Array[] {
  const ydoc = new Y.Doc();
  const updates: Uint8Array[] = [];
  ydoc.on('update', (update: Uint8Array) => updates.push(update));
  for (let i = 0; i < count; i++) ydoc.getText('t').insert(i, 'x');
  return updates;
}

/**
 * Resolves in the same check phase as the store's flush (scheduled earlier), before any thread-pool callback can run:
 * the store flushes at the end of the turn after an append's, so this waits the same two turns.
 */
const afterFlush = () => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));

/** A WAL fsync the test releases by hand (the real one, run when released), or fails. */
function heldSyncs() {
  const held: Array<{ fd: number; done: (error: Error | null) => void }> = [];
  return {
    held,
    syncFile: (fd: number, done: (error: Error | null) => void) => { held.push({ fd, done }); },
    /** Resolves once the store has been told how the sync ended. */
    release(index = 0, error: Error | null = null): Promise<void> {
      const [one] = held.splice(index, 1);
      if (error !== null) {
        one.done(error);
        return Promise.resolve();
      }
      return new Promise((resolve) => fdatasync(one.fd, (result) => {
        one.done(result);
        resolve();
      }));
    },
    releaseAll() {
      while (held.length > 0) void this.release();
    },
  };
}

/** A server-like store (background, synchronous full) whose WAL fsyncs the test holds; closed after the test. */
function heldStore(t: TestContext, name: string, options: { onSyncFailure?: (error: Error) => void } = {}) {
  const syncs = heldSyncs();
  const store = openEventStore({
    path: join(tempDir(t), name), background: true, compactAfterEntries: 0, compactAfterBytes: 0, syncFile: syncs.syncFile, ...options,
  });
  t.after(() => {
    syncs.releaseAll();
    return store.close();
  });
  return { syncs, store };
}

test('what is committed but not yet on disk is not handed out: entries() and feed() wait for a sync that covers it', async (t) => {
  const { syncs, store } = heldStore(t, 'sync.db');
  const [first, second] = edits(2);
  const firstAppend = store.append('doc', first, meta);
  await waitFor(() => syncs.held.length === 1, { message: 'the first commit asks for its sync' });
  syncs.releaseAll();
  await firstAppend;

  let appended = false;
  const append = store.append('doc', second, meta).then((result) => { appended = true; return result; });
  await afterFlush();
  assert.equal((await store.info('doc'))?.seq, 2, 'committed in the flush');
  let read: number[] | null = null;
  let fed: number[] | null = null;
  const reads = Promise.all([
    store.entries('doc').then((entries) => { read = entries.map((e) => e.seq); }),
    store.feed(null).then((page) => { fed = page.entries.map((e) => e.seq); }),
  ]);
  await waitFor(() => syncs.held.length >= 1, { message: 'the commit asks for its sync' });
  await afterFlush();
  assert.equal(syncs.held.length, 1, 'the reads wait for the commit\'s sync rather than starting their own');
  assert.equal(appended, false, 'no append resolves before its sync');
  assert.equal(read, null, 'entries() waits for the sync');
  assert.equal(fed, null, 'feed() waits for the sync');
  syncs.releaseAll();
  assert.equal((await append).seq, 2);
  await reads;
  assert.deepEqual(read, [1, 2]);
  assert.deepEqual(fed, [1, 2]);
});

test('while a commit\'s sync runs, appends gather into one commit; syncs settle in the order they began', async (t) => {
  const { syncs, store } = heldStore(t, 'group.db');
  const updates = edits(10);
  const order: number[] = [];
  const appends: Array<Promise<unknown>> = [];
  for (const update of updates) {
    appends.push(store.append('doc', update, meta).then((result) => order.push(result.seq!)));
    await afterFlush(); // one event-loop turn each
  }
  assert.equal(syncs.held.length, 1, 'one commit with its sync; the other nine wait for it');
  assert.equal((await store.info('doc'))?.seq, 1);
  // A write other than an append syncs beside it; ending first, it still settles after the first sync.
  let written = false;
  const write = store.writeState([{ key: 'k', value: 'v' }]).then(() => { written = true; });
  await waitFor(() => syncs.held.length === 2, { message: 'the write\'s own sync' });
  await syncs.release(1);
  await afterFlush();
  assert.equal(written, false, 'the write waits for the earlier sync');
  assert.deepEqual(order, []);
  await syncs.release(0);
  await write;
  await waitFor(() => syncs.held.length === 1, { message: 'the nine gathered appends are committed together' });
  assert.equal((await store.info('doc'))?.seq, 10);
  assert.deepEqual(order, [1]);
  syncs.releaseAll();
  await Promise.all(appends);
  assert.deepEqual(order, updates.map((_, i) => i + 1));
});

test('a failed WAL sync fails its append and a write that synced beside it, every later one and health, and tells the owner once', async (t) => {
  const failures: Error[] = [];
  const { syncs, store } = heldStore(t, 'eio.db', { onSyncFailure: (error) => failures.push(error) });
  const [first, second, third] = edits(3);
  const one = store.append('doc', first, meta);
  await waitFor(() => syncs.held.length === 1, { message: 'the append\'s sync' });
  const write = store.writeState([{ key: 'k', value: 'v' }]);
  const two = store.append('doc', second, meta);
  await waitFor(() => syncs.held.length === 2, { message: 'two syncs running' });
  assert.equal(store.healthy(), true);
  // The later sync succeeds first; the earlier then reports the write-back error (Linux reports it to one fsync only).
  await syncs.release(1);
  await afterFlush();
  await syncs.release(0, Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  for (const settled of [one, write, two]) {
    await assert.rejects(settled, (error: unknown) => {
      assert.ok(error instanceof StoreError);
      assert.equal(error.code, 'STORE_WRITE_FAILED');
      assert.match(error.message, /eio\.db-wal.*EIO/);
      return true;
    });
  }
  await assert.rejects(store.append('doc', third, meta), { code: 'STORE_WRITE_FAILED' });
  assert.equal(store.healthy(), false);
  assert.equal(failures.length, 1);
  assert.match(failures[0].message, /fsync of .*eio\.db-wal failed/);
  // Nothing committed is handed out or written any more.
  await assert.rejects(store.entries('doc'), { code: 'STORE_WRITE_FAILED' });
  await assert.rejects(store.feed(null), { code: 'STORE_WRITE_FAILED' });
  await assert.rejects(store.writeState([{ key: 'k', value: 'v' }]), { code: 'STORE_WRITE_FAILED' });
});

test('a write other than an append resolves after its own sync; reads meanwhile wait for it; a read with nothing new since the last sync starts none', async (t) => {
  const { syncs, store } = heldStore(t, 'state.db');
  const [first] = edits(1);
  const append = store.append('doc', first, meta);
  await waitFor(() => syncs.held.length === 1, { message: 'the append asks for its sync' });
  await syncs.release();
  await append;
  // Nothing committed since: the read is free.
  assert.deepEqual((await store.entries('doc')).map((e) => e.seq), [1]);
  assert.equal(syncs.held.length, 0, 'no sync for a read with nothing new');

  let written = false;
  const write = store.writeState([{ key: 'cursor', value: '1' }]).then(() => { written = true; });
  await waitFor(() => syncs.held.length === 1, { message: 'the write asks for its sync' });
  // This connection's own write leaves data_version as it is: the read must still wait.
  let read = false;
  const reading = store.entries('doc').then(() => { read = true; });
  await afterFlush();
  assert.equal(syncs.held.length, 1, 'the read shares the write\'s sync');
  assert.equal(written, false, 'the write waits for its sync');
  assert.equal(read, false, 'the read waits for the write\'s sync');
  await syncs.release();
  await Promise.all([write, reading]);
  assert.deepEqual(await store.readState('cursor'), [{ key: 'cursor', value: '1' }]);
});

test('a read that waits for a sync is not answered when an earlier sync fails after it', async (t) => {
  const { syncs, store } = heldStore(t, 'read-eio.db', { onSyncFailure: () => undefined });
  const [first] = edits(1);
  const one = store.append('doc', first, meta);
  await waitFor(() => syncs.held.length === 1, { message: 'the append\'s sync' });
  const write = store.writeState([{ key: 'k', value: 'v' }]);
  await waitFor(() => syncs.held.length === 2, { message: 'two syncs running' });
  const read = store.entries('doc');
  await afterFlush();
  assert.equal(syncs.held.length, 2, 'the read shares the second sync');
  // The second sync ends well first; the first then reports the lost write-back.
  await syncs.release(1);
  await afterFlush();
  await syncs.release(0, Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  await assert.rejects(read, { code: 'STORE_WRITE_FAILED' }, 'entries that may not be on disk are not handed out');
  await assert.rejects(one, { code: 'STORE_WRITE_FAILED' });
  await assert.rejects(write, { code: 'STORE_WRITE_FAILED' });
});

test('reads after close are refused with STORE_CLOSED', async (t) => {
  const store = openEventStore({ path: join(tempDir(t), 'closed.db'), background: true });
  await store.append('doc', edits(1)[0], meta);
  await store.close();
  await assert.rejects(store.entries('doc'), { code: 'STORE_CLOSED' });
  await assert.rejects(store.feed(null), { code: 'STORE_CLOSED' });
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
