// The server's store (background: true) commits appends on a writer thread.
// What that must keep: the event loop runs while a commit waits (here: for
// another connection's write lock), appends made meanwhile commit after it in
// order, another process' appends found at commit time are never overwritten
// or logged twice, a failed batch fails all of its appends and the next one
// continues from the file, and close commits everything appended before it.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore, StoreError, type AppendResult } from '../persistence/index.js';
import { tempDir } from './helpers/temp.js';

const meta = { instanceId: 'test', user: null };

function openStore(t: TestContext, path: string, busyTimeoutMs = 5000) {
  const store = openEventStore({ path, background: true, compactAfterEntries: 0, compactAfterBytes: 0, busyTimeoutMs });
  t.after(() => store.close());
  return store;
}

function editor() {
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  return { doc, text: doc.getText('text'), updates };
}

function textOf(update: Uint8Array): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc.getText('text').toString();
}

test('while a commit waits for another connection\'s write lock, the event loop runs and reads are answered; the appends commit in order once it is free', async (t) => {
  const path = join(tempDir(t), 'store.db');
  // A long busy timeout: the commit waits for the blocker rather than failing.
  const store = openStore(t, path, 60_000);
  const a = editor();
  a.text.insert(0, 'one');
  assert.equal((await store.append('doc', a.updates[0], meta)).seq, 1);

  // The blocker is a connection of this very thread: were the commit made on
  // this thread, it would wait for a lock only this thread can release.
  const blocker = new Database(path);
  t.after(() => blocker.close());
  blocker.exec('BEGIN IMMEDIATE');
  a.text.insert(3, ' two');
  const settled: Array<AppendResult | Error> = [];
  const first = store.append('doc', a.updates[1], meta).then((r) => settled.push(r), (e: Error) => settled.push(e));
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  // Appends made while the first waits form the next batch.
  a.text.insert(7, ' three');
  const second = store.append('doc', a.updates[2], meta).then((r) => settled.push(r), (e: Error) => settled.push(e));
  const loaded = await store.load('doc');
  assert.equal(loaded.seq, 1, 'reads see what is committed');
  assert.deepEqual(settled, [], 'nothing is acknowledged while the write lock is held');

  blocker.exec('ROLLBACK');
  await Promise.all([first, second]);
  assert.deepEqual(settled.map((r) => (r as AppendResult).seq), [2, 3]);
  assert.equal(textOf((await store.stateAt('doc')).update), 'one two three');
  assert.deepEqual((await store.verify()).problems, []);
});

test('two server stores on one file, appending in turn, log every update once in a gap-free log', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const path = join(tempDir(t), 'store.db');
  const handles = [openStore(t, path), openStore(t, path)];
  const docs = ['doc-a', 'doc-b'];
  const editors = docs.map(() => [editor(), editor()]);
  const sent: Uint8Array[][] = [[], []];
  for (let round = 0; round < 200; round++) {
    const d = prng.uint32(rng, 0, docs.length - 1);
    const e = editors[d][prng.uint32(rng, 0, editors[d].length - 1)];
    if (e.text.length > 3 && prng.bool(rng)) e.text.delete(prng.uint32(rng, 0, e.text.length - 2), 1);
    else e.text.insert(prng.uint32(rng, 0, e.text.length), prng.word(rng, 1, 3));
    const update = e.updates[e.updates.length - 1];
    sent[d].push(update);
    // Each handle's cursors go stale whenever the other one appends; a resend (a lost ack) maybe reaches both at once.
    const pending = [handles[prng.uint32(rng, 0, 1)].append(docs[d], update, meta)];
    if (prng.uint32(rng, 0, 3) === 0) pending.push(handles[prng.uint32(rng, 0, 1)].append(docs[d], update, meta));
    await Promise.all(pending);
  }
  for (const [d, doc] of docs.entries()) {
    assert.deepEqual((await handles[1].entries(doc)).map((entry) => entry.seq), Array.from({ length: sent[d].length }, (_, i) => i + 1),
      `seed ${seed}`);
    const expected = new Y.Doc();
    for (const update of sent[d]) Y.applyUpdate(expected, update);
    assert.equal(textOf((await handles[0].stateAt(doc)).update), expected.getText('text').toString(), `seed ${seed}`);
    for (const handle of handles) assert.equal((await handle.append(doc, Y.encodeStateAsUpdate(expected), meta)).seq, null);
  }
  assert.deepEqual((await handles[0].verify()).problems, []);
});

test('a batch the writer thread cannot write fails all of its appends with STORE_WRITE_FAILED, and the next continues from the file', async (t) => {
  const path = join(tempDir(t), 'store.db');
  const store = openStore(t, path);
  const a = editor();
  a.text.insert(0, 'one');
  a.text.insert(3, ' two');
  a.text.insert(7, ' three');
  assert.equal((await store.append('doc', a.updates[0], meta)).seq, 1);
  const other = new Database(path);
  t.after(() => other.close());
  other.exec(`CREATE TRIGGER refuse BEFORE INSERT ON updates WHEN NEW.instance_id = 'refused'
              BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
  const batch = [
    store.append('doc', a.updates[1], meta),
    store.append('doc', a.updates[2], { instanceId: 'refused', user: null }),
  ];
  for (const append of batch) {
    await assert.rejects(append, (error: StoreError) => error.code === 'STORE_WRITE_FAILED' && /refused by the test/.test(error.message));
  }
  assert.deepEqual((await store.entries('doc')).map((e) => e.seq), [1]);
  assert.equal((await store.append('doc', a.updates[1], meta)).seq, 2);
  assert.equal(store.healthy(), true, 'a write that succeeds reports the store healthy again');
  assert.equal((await store.append('doc', a.updates[2], meta)).seq, 3);
  other.exec('DROP TRIGGER refuse');
  assert.equal(textOf((await store.stateAt('doc')).update), 'one two three');
});

test('close commits every append made before it', async (t) => {
  const path = join(tempDir(t), 'store.db');
  const store = openEventStore({ path, background: true });
  const a = editor();
  for (let i = 0; i < 50; i++) a.text.insert(a.text.length, String(i % 10));
  const appends = a.updates.map((update) => store.append('doc', update, meta));
  await store.close();
  assert.deepEqual((await Promise.all(appends)).map((r) => r.seq), a.updates.map((_, i) => i + 1));
  const reopened = openEventStore({ path });
  t.after(() => reopened.close());
  assert.equal(textOf((await reopened.stateAt('doc')).update), a.text.toString());
});
