// The fast paths of the SQLite append: cached cursors trusted only while no
// other connection has committed, fresh updates logged as sent, delete sets
// trimmed against many logged ranges. Each test checks the guarantee the fast
// path must keep, against real SQLite files.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import * as encoding from 'lib0/encoding';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { checkUpdate, openEventStore, StoreError } from '../persistence/index.js';
import { tempDir } from './helpers/temp.js';

const meta = { instanceId: 'test', user: null };

function openStore(t: TestContext, path: string, options: { retention?: 'all' | 'snapshot' } = {}) {
  const store = openEventStore({ path, compactAfterEntries: 0, compactAfterBytes: 0, retention: options.retention });
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

test('two handles appending to one file in turn, while a third compacts, log every update once in a gap-free log', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const path = join(tempDir(t), 'store.db');
  const handles = [openStore(t, path), openStore(t, path)];
  const compactor = openStore(t, path, { retention: 'snapshot' });
  const docs = ['doc-a', 'doc-b'];
  const editors = docs.map(() => [editor(), editor(), editor()]);
  const sent: Uint8Array[][] = [[], []];
  for (let round = 0; round < 300; round++) {
    const d = prng.uint32(rng, 0, docs.length - 1);
    const e = editors[d][prng.uint32(rng, 0, editors[d].length - 1)];
    if (e.text.length > 3 && prng.bool(rng)) e.text.delete(prng.uint32(rng, 0, e.text.length - 2), 1);
    else e.text.insert(prng.uint32(rng, 0, e.text.length), prng.word(rng, 1, 3));
    const update = e.updates[e.updates.length - 1];
    sent[d].push(update);
    // The update reaches one handle, and its resend (a lost ack) maybe the other, in the same turn or later.
    const first = handles[prng.uint32(rng, 0, 1)];
    const pending = [first.append(docs[d], update, meta)];
    if (prng.uint32(rng, 0, 3) === 0) pending.push(handles[prng.uint32(rng, 0, 1)].append(docs[d], update, meta));
    await Promise.all(pending);
    if (prng.uint32(rng, 0, 40) === 0) await compactor.compact(docs[d]);
  }
  for (const [d, doc] of docs.entries()) {
    const info = await compactor.info(doc);
    // Each editor edits its own Y.Doc of one document, so each sent update is new to that document's log.
    assert.equal(info?.seq, sent[d].length, `seed ${seed}`);
    const retained = (await compactor.entries(doc)).map((entry) => entry.seq);
    const firstRetained = info?.firstRetainedSeq ?? sent[d].length + 1;
    assert.deepEqual(retained, Array.from({ length: sent[d].length - firstRetained + 1 }, (_, i) => firstRetained + i), `seed ${seed}`);
    const expected = new Y.Doc();
    for (const update of sent[d]) Y.applyUpdate(expected, update);
    assert.equal(textOf((await handles[0].stateAt(doc)).update), expected.getText('text').toString(), `seed ${seed}`);
    // Every resend now adds nothing, whichever handle gets it.
    for (const handle of handles) assert.equal((await handle.append(doc, Y.encodeStateAsUpdate(expected), meta)).seq, null);
  }
  assert.deepEqual((await compactor.verify()).problems, []);
});

test('a write that fails part-way through a batch rejects all of its appends, and the next write continues from the file', async (t) => {
  const path = join(tempDir(t), 'store.db');
  const store = openStore(t, path);
  const a = editor();
  a.text.insert(0, 'one');
  a.text.insert(3, ' two');
  a.text.insert(7, ' three');
  assert.equal((await store.append('doc', a.updates[0], meta)).seq, 1);
  // Another connection makes the second insert of the next batch fail, after the first has been written.
  const other = new Database(path);
  t.after(() => other.close());
  other.exec(`CREATE TRIGGER refuse BEFORE INSERT ON updates WHEN NEW.instance_id = 'refused'
              BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
  const batch = [
    store.append('doc', a.updates[1], meta),
    store.append('doc', a.updates[2], { instanceId: 'refused', user: null }),
  ];
  for (const append of batch) {
    await assert.rejects(append, (error: StoreError) => error.code === 'STORE_WRITE_FAILED');
  }
  assert.deepEqual((await store.entries('doc')).map((e) => e.seq), [1]);
  // Resent with no other commit in between (the trigger stays): nothing of the failed batch counts as logged.
  assert.equal((await store.append('doc', a.updates[1], meta)).seq, 2);
  assert.equal((await store.append('doc', a.updates[2], meta)).seq, 3);
  other.exec('DROP TRIGGER refuse');
  assert.equal(textOf((await store.stateAt('doc')).update), 'one two three');
  assert.deepEqual((await store.verify()).problems, []);
});

test('an update nothing of which is logged yet is logged byte for byte as the client sent it', async (t) => {
  const store = openStore(t, join(tempDir(t), 'store.db'));
  const a = editor();
  a.text.insert(0, 'hello');
  a.text.insert(5, ' world');
  a.text.delete(0, 1);
  for (const update of a.updates) await store.append('doc', update, meta);
  assert.deepEqual((await store.entries('doc')).map((e) => Array.from(e.update)), a.updates.map((u) => Array.from(u)));
});

test('with many deleted ranges logged, a delete spanning several of them logs only the ranges not yet deleted', async (t) => {
  const store = openStore(t, join(tempDir(t), 'store.db'));
  const a = editor();
  a.text.insert(0, 'x'.repeat(1000));
  // Every fourth character deleted, one delete per update: 250 separate ranges in the logged delete set.
  for (let i = 249; i >= 0; i--) a.text.delete(i * 4, 1);
  for (const update of a.updates) await store.append('doc', update, meta);
  const logged = (await store.entries('doc')).length;
  assert.equal(logged, 251);
  // Another editor that has the text, deletes a stretch covering old deletions and new characters.
  const b = editor();
  Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc));
  b.updates.length = 0;
  b.text.delete(300, 60);
  const result = await store.append('doc', b.updates[0], meta);
  assert.equal(result.seq, 252);
  Y.applyUpdate(a.doc, b.updates[0]);
  assert.equal(textOf((await store.stateAt('doc')).update), a.text.toString());
  // Resending any of the single deletes, or b's, adds nothing.
  for (const update of [a.updates[1], a.updates[125], a.updates[250], b.updates[0]]) {
    assert.equal((await store.append('doc', update, meta)).seq, null);
  }
  assert.equal((await store.entries('doc')).length, 252);
});

/** One client's update: "ab" into the root text, then "cd" with the given references, then an optional delete set. */
function twoInserts(client: number, second: { origin?: Y.ID; rightOrigin?: Y.ID; parent?: Y.ID }, deleted: Array<[number, number]> = []): Uint8Array {
  const encoder = new Y.UpdateEncoderV1();
  // A root type by name, as Yjs itself decodes it (its typings only name live types).
  const root = 'text' as unknown as Y.AbstractType<unknown>;
  const first = new Y.Item(Y.createID(client, 0), null, null, null, null, root, null, new Y.ContentString('ab'));
  const parent = (second.parent ?? null) as unknown as Y.AbstractType<unknown> | null;
  const next = new Y.Item(Y.createID(client, 2), null, second.origin ?? null, null, second.rightOrigin ?? null, parent, null,
    new Y.ContentString('cd'));
  encoding.writeVarUint(encoder.restEncoder, 1); // clients
  encoding.writeVarUint(encoder.restEncoder, 2); // structs of this client
  encoder.writeClient(client);
  encoding.writeVarUint(encoder.restEncoder, 0); // first clock
  first.write(encoder, 0);
  next.write(encoder, 0);
  encoding.writeVarUint(encoder.restEncoder, deleted.length === 0 ? 0 : 1); // clients in the delete set
  if (deleted.length > 0) {
    encoding.writeVarUint(encoder.restEncoder, client);
    encoding.writeVarUint(encoder.restEncoder, deleted.length);
    for (const [clock, len] of deleted) {
      encoding.writeVarUint(encoder.restEncoder, clock);
      encoding.writeVarUint(encoder.restEncoder, len);
    }
  }
  return encoder.toUint8Array();
}

test('updates Yjs decodes but cannot apply are refused and not logged: references ahead of their own client, empty deleted ranges', async (t) => {
  const store = openStore(t, join(tempDir(t), 'unappliable.db'));
  // The controls: "cd" right of "a", before "a", inside a deleted "b".
  for (const [name, update, text] of [
    ['origin', twoInserts(7, { origin: Y.createID(7, 0) }), 'acdb'],
    ['right-origin', twoInserts(7, { rightOrigin: Y.createID(7, 0) }), 'cdab'],
    ['deleted', twoInserts(7, { origin: Y.createID(7, 0) }, [[1, 1]]), 'acd'],
  ] as const) {
    assert.equal(textOf(update), text, name);
    assert.equal((await store.append(`sound-${name}`, update, meta)).seq, 1, name);
  }
  const bad = {
    'origin ahead': twoInserts(7, { origin: Y.createID(7, 3) }),
    'right origin ahead': twoInserts(7, { rightOrigin: Y.createID(7, 5) }),
    'parent ahead': twoInserts(7, { parent: Y.createID(7, 2) }),
    'empty deleted range': twoInserts(7, { origin: Y.createID(7, 0) }, [[10, 0]]),
  };
  for (const [name, update] of Object.entries(bad)) {
    assert.throws(() => Y.applyUpdate(new Y.Doc(), update), `Yjs cannot apply it (${name})`);
    await assert.rejects(store.append(name, update, meta), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'MALFORMED_UPDATE', name);
      return true;
    }, name);
    assert.equal(await store.info(name), null, `nothing logged (${name})`);
  }
  assert.deepEqual((await store.verify()).problems, []);
});

test('an entry an earlier version logged that the checks now refuse does not stop its document from being written', async (t) => {
  const path = join(tempDir(t), 'legacy.db');
  const before = openEventStore({ path, compactAfterEntries: 0, compactAfterBytes: 0 });
  const author = editor();
  author.text.insert(0, 'old');
  await before.append('legacy', author.updates[0], meta);
  await before.close();
  // Yjs applies this one (the empty range is harmless on a document that has the
  // deleted clocks); earlier versions logged it as seq 2.
  const legacy = twoInserts(9, { origin: Y.createID(9, 0) }, [[0, 0]]);
  const raw = new Database(path);
  raw.prepare(`INSERT INTO updates (doc_id, seq, received_at, instance_id, user, size, update_bytes)
    SELECT id, 2, 0, 'older-version', NULL, ?, ? FROM documents WHERE name = 'legacy'`).run(legacy.length, legacy);
  raw.prepare(`UPDATE documents SET last_seq = 2 WHERE name = 'legacy'`).run();
  raw.close();

  const store = openStore(t, path);
  author.text.insert(3, ' and new');
  const other = editor();
  other.text.insert(0, 'elsewhere');
  // Both in one batch: the legacy entry is folded in while the batch is written.
  const [legacyResult, otherResult] = await Promise.all([
    store.append('legacy', author.updates[1], meta),
    store.append('other', other.updates[0], meta),
  ]);
  assert.equal(legacyResult.seq, 3);
  assert.equal(otherResult.seq, 1);
});

test('an update checked before its append is decoded once: the check hands its result to the next decode of those bytes only', async (t) => {
  const { text, updates } = editor();
  text.insert(0, 'checked once');
  text.insert(0, 'another ');
  const [first, second] = updates;
  // The same bytes, decoded next (as the append that follows the check does), get the checked result, once.
  const checked = checkUpdate(first);
  assert.equal(checkUpdate(first), checked);
  const again = checkUpdate(first);
  assert.notEqual(again, checked);
  assert.deepEqual(again.structs, checked.structs);
  // Equal bytes in another array, or other bytes decoded in between, are decoded afresh.
  const checkedAgain = checkUpdate(first);
  assert.notEqual(checkUpdate(new Uint8Array(first)), checkedAgain);
  const firstChecked = checkUpdate(first);
  checkUpdate(second);
  assert.notEqual(checkUpdate(first), firstChecked);
  // A checked update's append logs it as sent.
  const store = openStore(t, join(tempDir(t), 'checked.db'));
  checkUpdate(first);
  assert.equal((await store.append('doc', first, meta)).seq, 1);
  checkUpdate(second);
  assert.equal((await store.append('doc', second, meta)).seq, 2);
  assert.deepEqual((await store.entries('doc')).map((entry) => Buffer.from(entry.update)), [Buffer.from(first), Buffer.from(second)]);
});
