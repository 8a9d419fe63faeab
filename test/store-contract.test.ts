// The event store contract, run against every backend: SQLite files and
// PostgreSQL databases (a server this file starts). Each backend says how to
// make a new empty store, and how another program would damage a snapshot or
// hold the write lock; the tests and their assertions are the same for both.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import * as prng from 'lib0/prng';
import pg from 'pg';
import * as Y from 'yjs';
import { computeRestoreUpdate, createdRanges, openEventStore, StoreError, type OpenedEventStore } from '../persistence/index.js';
import { startPostgres, type PostgresProcess } from './helpers/postgres-process.js';
import { tempDir } from './helpers/temp.js';
import { loadTrace, traceUpdates } from './helpers/traces.js';

interface OpenOptions {
  retention?: 'all' | 'snapshot'; compactAfterEntries?: number; keepSnapshotsEvery?: number; busyTimeoutMs?: number;
  /** Where the data lives (a file, a database URL); default: a new, empty one. */
  path?: string;
}

interface Backend {
  /** Set up before the suite (a PostgreSQL server), torn down after it. */
  setUp?(teardown: { after(fn: () => Promise<void>): void }): Promise<void>;
  location(t: TestContext): Promise<string>;
  /** Replaces the state of the snapshot at `seq` behind the store's back. */
  overwriteSnapshot(location: string, seq: number, state: Uint8Array): Promise<void>;
  /** Another program takes the write lock; the returned function releases it. */
  holdWriteLock(location: string): Promise<() => Promise<void>>;
}

let postgres: PostgresProcess | null = null;

const backends: Record<string, Backend> = {
  sqlite: {
    async location(t) {
      return join(tempDir(t), 'store.db');
    },
    async overwriteSnapshot(location, seq, state) {
      const db = new Database(location);
      db.prepare('UPDATE snapshots SET state = ? WHERE seq = ?').run(state, seq);
      db.close();
    },
    async holdWriteLock(location) {
      const blocker = new Database(location);
      blocker.exec('BEGIN IMMEDIATE');
      return async () => {
        blocker.exec('ROLLBACK');
        blocker.close();
      };
    },
  },
  postgres: {
    async setUp(teardown) {
      postgres = await startPostgres(teardown);
    },
    async location() {
      return postgres!.createDatabase();
    },
    async overwriteSnapshot(location, seq, state) {
      const client = new pg.Client({ connectionString: location });
      await client.connect();
      await client.query('UPDATE snapshots SET state = $1 WHERE seq = $2', [Buffer.from(state), seq]);
      await client.end();
    },
    async holdWriteLock(location) {
      const blocker = new pg.Client({ connectionString: location });
      await blocker.connect();
      await blocker.query('BEGIN');
      // What an append locks first: the document rows.
      await blocker.query('LOCK TABLE documents IN EXCLUSIVE MODE');
      return async () => {
        await blocker.query('ROLLBACK');
        await blocker.end();
      };
    },
  },
};

function opener(backend: Backend) {
  return async (t: TestContext, options: OpenOptions = {}): Promise<OpenedEventStore> => {
    const data = options.path ?? await backend.location(t);
    const store = openEventStore({
      data, compactAfterEntries: options.compactAfterEntries ?? 0, compactAfterBytes: 0, keepSnapshotsEvery: options.keepSnapshotsEvery,
      retention: options.retention, busyTimeoutMs: options.busyTimeoutMs,
    });
    t.after(() => store.close());
    await store.opened();
    return store;
  };
}

const meta = { instanceId: 'test', user: 'ada' };

function textOf(update: Uint8Array, name = 'text'): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  return doc.getText(name).toString();
}

function editor() {
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  return { doc, text: doc.getText('text'), updates };
}

/** Two editors of one text: `a` typed 'a' then 'aa' (two updates), `b` typed 'b'. */
function twoEditors() {
  const a = editor();
  const b = editor();
  a.text.insert(0, 'a');
  b.text.insert(0, 'b');
  a.text.insert(1, 'aa');
  return { a, b };
}

for (const [name, backend] of Object.entries(backends)) {
  const open = opener(backend);
  describe(`event store contract (${name})`, () => {
    const teardowns: Array<() => Promise<void>> = [];
    before(() => backend.setUp?.({ after: (fn) => teardowns.push(fn) }));
    after(async () => {
      for (const teardown of teardowns.reverse()) await teardown();
    });

    test('each entry keeps its counts, the item ids it created and its version group; imports and pruning keep them right', async (t) => {
      const store = await open(t, { retention: 'snapshot' });
      const ada = editor();
      const bob = editor();
      const authors = ['Ada', 'Ada', null, 'Bob', 'Bob', 'Ada'];
      const expected: Array<{ added: number; removed: number; client: number }> = [];
      for (const [i, author] of authors.entries()) {
        const { doc, text, updates } = author === 'Bob' ? bob : ada;
        const before = updates.length;
        if (i === 4) text.delete(0, 2);
        else text.insert(text.length, `${i}-${author ?? 'server'} `);
        const update = updates[before];
        (author === 'Bob' ? ada : bob).doc.transact(() => Y.applyUpdate((author === 'Bob' ? ada : bob).doc, update));
        expected.push({ added: i === 4 ? 0 : `${i}-${author ?? 'server'} `.length, removed: i === 4 ? 2 : 0, client: doc.clientID });
        await store.append('facts', update, { instanceId: 'test', user: null, displayName: author });
      }
      const summaries = await store.summaries('facts', { withCreated: true });
      assert.deepEqual(summaries.map((s) => [s.seq, s.added, s.removed]), expected.map((e, i) => [i + 1, e.added, e.removed]));
      // The ids each entry created: its author's client, one range as long as what it inserted.
      assert.deepEqual(summaries.map((s) => {
        const ranges: number[][] = [];
        createdRanges(s.created!, (...range) => ranges.push([range[0], range[2]]));
        return ranges;
      }), expected.map((e) => (e.added === 0 ? [] : [[e.client, e.added]])));
      // Groups: the server's entry joins Ada's version, Bob starts one, Ada another; running counts per group.
      assert.deepEqual(summaries.map((s) => [s.group?.start, s.group?.displayName, s.group?.added, s.group?.removed]), [
        [1, 'Ada', expected[0].added, 0], [1, 'Ada', expected[0].added + expected[1].added, 0],
        [1, 'Ada', expected[0].added + expected[1].added + expected[2].added, 0],
        [4, 'Bob', expected[3].added, 0], [4, 'Bob', expected[3].added, 2], [6, 'Ada', expected[5].added, 0],
      ]);
      assert.deepEqual(await store.groupStarts('facts', { fromSeq: 1, toSeq: 6, limit: 10 }), [6, 4, 1]);
      assert.deepEqual(await store.groupStarts('facts', { fromSeq: 2, toSeq: 5, limit: 1 }), [4]);
      assert.deepEqual((await store.summaries('facts', { seqs: [5, 2], descending: true })).map((s) => s.seq), [5, 2]);
      assert.deepEqual((await store.summaries('facts', { fromSeq: 2, toSeq: 4, authored: true, limit: 1 })).map((s) => s.seq), [2]);
      // Imported entries (palimpsest copy) get the same facts.
      const entries = await store.entries('facts');
      await store.importEntries('copied', entries, 6);
      const copied = await store.summaries('copied', { withCreated: true });
      const comparable = (list: typeof summaries) => list.map((s) => [s.seq, s.added, s.removed, Buffer.from(s.created!).toString('hex'), s.group]);
      assert.deepEqual(comparable(copied), comparable(summaries));
      // Pruning drops entries with their facts; an entry after the pruned start begins a group of its own.
      await store.compact('facts');
      const more = ada.updates.length;
      ada.text.insert(0, 'after ');
      await store.append('facts', ada.updates[more], { instanceId: 'test', user: null, displayName: 'Ada' });
      const left = await store.summaries('facts', {});
      assert.deepEqual(left.map((s) => [s.seq, s.group?.start]), [[7, 7]]);
      // Authorship blocks: kept once per fromSeq, read back by fromSeq.
      await store.saveAuthorshipBlock('facts', { fromSeq: 1, toSeq: 1000, data: new Uint8Array([1, 2, 3]) });
      await store.saveAuthorshipBlock('facts', { fromSeq: 1, toSeq: 1000, data: new Uint8Array([9]) });
      const blocks = await store.authorshipBlocks('facts', 1);
      assert.deepEqual(blocks.map((b) => [b.fromSeq, b.toSeq, [...b.data]]), [[1, 1000, [1, 2, 3]]]);
      assert.deepEqual(await store.authorshipBlocks('facts', 0), []);
    });

    test('an entry after another store pruned the log\'s end begins a group of its own', async (t) => {
      const location = await backend.location(t);
      const writer = await open(t, { path: location });
      const pruner = await open(t, { path: location, retention: 'snapshot' });
      const ada = editor();
      for (const word of ['one ', 'two ', 'three ']) ada.text.insert(ada.text.length, word);
      for (const update of ada.updates.slice(0, 2)) await writer.append('pruned', update, { ...meta, displayName: 'Ada' });
      assert.deepEqual((await writer.summaries('pruned', {})).map((s) => s.group?.start), [1, 1]);
      // The other store snapshots the document and drops entries 1 and 2, the writer's last among them.
      assert.equal((await pruner.compact('pruned'))?.pruned, 2);
      await writer.append('pruned', ada.updates[2], { ...meta, displayName: 'Ada' });
      assert.deepEqual((await writer.summaries('pruned', {})).map((s) => [s.seq, s.group?.start]), [[3, 3]]);
    });

    test('appends get gap-free seqs from 1 per document, with their metadata', async (t) => {
      const store = await open(t);
      const a = editor();
      const b = editor();
      a.text.insert(0, 'one');
      b.text.insert(0, 'other');
      a.text.insert(3, ' two');
      const results = await Promise.all([
        store.append('doc-a', a.updates[0], meta),
        store.append('doc-b', b.updates[0], { instanceId: 'i2', user: null }),
        store.append('doc-a', a.updates[1], meta),
      ]);
      assert.deepEqual(results.map((r) => r.seq), [1, 1, 2]);
      const entries = await store.entries('doc-a');
      assert.deepEqual(entries.map((e) => [e.seq, e.instanceId, e.user]), [[1, 'test', 'ada'], [2, 'test', 'ada']]);
      assert.equal(entries[0].size, entries[0].update.length);
      assert.ok(entries[0].receivedAt instanceof Date && !Number.isNaN(entries[0].receivedAt.getTime()));
      assert.deepEqual((await store.entries('doc-b')).map((e) => e.user), [null]);
      assert.deepEqual(await store.documents(), ['doc-a', 'doc-b']);
      assert.equal(textOf((await store.stateAt('doc-a')).update), 'one two');
    });

    test('entries keep the display name their connection announced, null when none', async (t) => {
      const store = await open(t);
      const a = editor();
      a.text.insert(0, 'one');
      a.text.insert(3, ' two');
      await store.append('doc', a.updates[0], { ...meta, displayName: 'Ada L.' });
      await store.append('doc', a.updates[1], { instanceId: 'test', user: null });
      assert.deepEqual((await store.entries('doc')).map((e) => [e.user, e.displayName]), [['ada', 'Ada L.'], [null, null]]);
    });

    test('seqAtTime gives the last seq received at or before a time, 0 before the first', async (t) => {
      const store = await open(t);
      const a = editor();
      for (let i = 0; i < 3; i++) {
        a.text.insert(0, String(i));
        await store.append('doc', a.updates[i], meta);
      }
      const entries = await store.entries('doc');
      assert.equal(await store.seqAtTime('doc', new Date(entries[0].receivedAt.getTime() - 1)), 0);
      assert.equal(await store.seqAtTime('doc', entries[2].receivedAt), 3);
      assert.equal(await store.seqAtTime('doc', new Date(entries[2].receivedAt.getTime() + 60_000)), 3);
      assert.equal(await store.seqAtTime('never-written', new Date()), 0);
    });

    test('named versions are kept with the document, replaced by a second name, and survive reopening', async (t) => {
      const location = await backend.location(t);
      const a = editor();
      a.text.insert(0, 'draft');
      a.text.insert(5, ' final');
      {
        const store = await open(t, { path: location });
        await store.append('doc', a.updates[0], meta);
        await store.append('doc', a.updates[1], meta);
        await store.nameVersion('doc', { seq: 1, name: 'first draft', user: 'ada', createdAt: new Date(), restoredFrom: null });
        await store.nameVersion('doc', { seq: 2, name: 'restore', user: null, createdAt: new Date(), restoredFrom: 1 });
        await store.nameVersion('doc', { seq: 1, name: 'Draft one', user: 'bob', createdAt: new Date(), restoredFrom: null });
        await assert.rejects(store.nameVersion('doc', { seq: 3, name: 'x', user: null, createdAt: new Date(), restoredFrom: null }),
          (error: StoreError) => error.code === 'UNKNOWN_SEQ');
        await assert.rejects(store.nameVersion('other', { seq: 1, name: 'x', user: null, createdAt: new Date(), restoredFrom: null }),
          (error: StoreError) => error.code === 'UNKNOWN_SEQ');
        await store.close();
      }
      const reopened = await open(t, { path: location });
      const names = await reopened.versionNames('doc');
      assert.deepEqual(names.map((n) => [n.seq, n.name, n.user, n.restoredFrom]), [[1, 'Draft one', 'bob', null], [2, 'restore', null, 1]]);
      assert.ok(names.every((n) => n.createdAt instanceof Date && !Number.isNaN(n.createdAt.getTime())));
      assert.deepEqual(await reopened.versionNames('never-written'), []);
    });

    test('an update the log already holds adds no entry: resends and a repeated full sync step 2', async (t) => {
      const store = await open(t);
      const a = editor();
      for (let i = 0; i < 20; i++) {
        a.text.insert(i, String.fromCharCode(97 + i));
        if (i % 5 === 4) a.text.delete(0, 1);
      }
      for (const update of a.updates) await store.append('doc', update, meta);
      const before = (await store.entries('doc')).length;
      assert.equal(before, a.updates.length);
      // Resends after lost acks, in any order, and grouped in one transaction.
      const resends = await Promise.all([...a.updates].reverse().map((u) => store.append('doc', u, meta)));
      assert.ok(resends.every((r) => r.seq === null && r.size === 0));
      // What a reconnecting client sends as sync step 2: its whole state, delete set included.
      assert.equal((await store.append('doc', Y.encodeStateAsUpdate(a.doc), meta)).seq, null);
      assert.equal((await store.entries('doc')).length, before);
    });

    test('a partly new update logs only its new part', async (t) => {
      const store = await open(t);
      const a = editor();
      a.text.insert(0, 'x'.repeat(2000));
      await store.append('doc', a.updates[0], meta);
      a.text.insert(0, 'new');
      a.text.delete(10, 5);
      const result = await store.append('doc', Y.encodeStateAsUpdate(a.doc), meta);
      assert.equal(result.seq, 2);
      assert.ok(result.size < 60, `logged ${result.size} bytes for a 3-character insert and one delete`);
      assert.equal(textOf((await store.stateAt('doc')).update), a.text.toString());
      // The new part alone, resent, is now covered too.
      assert.equal((await store.append('doc', a.updates[1], meta)).seq, null);
      assert.equal((await store.append('doc', a.updates[2], meta)).seq, null);
    });

    test('an update that arrives before the one it follows is logged once, however often it is resent', async (t) => {
      const store = await open(t, { compactAfterEntries: 0 });
      const a = editor();
      a.text.insert(0, 'first ');
      a.text.insert(6, 'second ');
      a.text.insert(13, 'third');
      const [first, second, third] = a.updates;
      // The second and third arrive first: Yjs holds them pending until the first fills the gap.
      assert.equal((await store.append('doc', second, meta)).seq, 1);
      assert.equal((await store.append('doc', second, meta)).seq, null, 'a resend beyond the gap');
      assert.equal((await store.append('doc', third, meta)).seq, 2);
      assert.equal((await store.append('doc', first, meta)).seq, 3);
      for (const update of [first, second, third]) assert.equal((await store.append('doc', update, meta)).seq, null);
      assert.equal((await store.append('doc', Y.encodeStateAsUpdate(a.doc), meta)).seq, null);
      assert.equal(textOf((await store.stateAt('doc')).update), 'first second third');
      // Compaction carries what was pending into the snapshot's coverage.
      const gap = editor();
      gap.text.insert(0, 'x');
      gap.text.insert(1, 'y');
      assert.equal((await store.append('gap', gap.updates[1], meta)).seq, 1);
      await store.compact('gap');
      assert.deepEqual((await store.verify()).problems, []);
      assert.equal((await store.append('gap', gap.updates[0], meta)).seq, 2);
      assert.equal(textOf((await store.stateAt('gap')).update), 'xy');
    });

    test('a malformed update is refused and nothing is logged', async (t) => {
      const store = await open(t);
      const a = editor();
      a.text.insert(0, 'hello');
      const broken = a.updates[0].slice(0, a.updates[0].length - 3);
      await assert.rejects(store.append('doc', broken, meta), /does not decode/);
      await assert.rejects(store.append('doc', new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]), meta), /does not decode/);
      assert.deepEqual(await store.entries('doc'), []);
      assert.equal((await store.append('doc', a.updates[0], meta)).seq, 1);
    });

    test('stateAt at random seqs equals an independent replay of a real editing trace, across compactions', async (t) => {
      const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
      t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
      // Snapshots every 700 entries, of which the first in each 2,000 seqs and the latest are kept.
      const store = await open(t, { compactAfterEntries: 700, keepSnapshotsEvery: 2000 });
      const { updates, texts } = traceUpdates(loadTrace('seph-blog1'), 6000);
      assert.equal(updates.length, texts.length);
      // Appended in bursts, as clients do, so several appends share a transaction.
      for (let i = 0; i < updates.length; i += 25) {
        await Promise.all(updates.slice(i, i + 25).map((u) => store.append('blog', u, meta)));
      }
      const info = await store.info('blog');
      assert.equal(info?.seq, updates.length);
      assert.deepEqual(info?.snapshots.map((s) => s.seq), [700, 2100, 4200, 5600], 'snapshots kept');
      const rng = prng.create(seed);
      const seqs = [0, 1, updates.length, ...info!.snapshots.map((s) => s.seq), ...info!.snapshots.map((s) => s.seq + 1)];
      for (let i = 0; i < 40; i++) seqs.push(prng.uint32(rng, 1, updates.length));
      for (const seq of seqs) {
        const state = await store.stateAt('blog', seq);
        assert.equal(state.seq, seq);
        assert.equal(textOf(state.update), seq === 0 ? '' : texts[seq - 1], `state at seq ${seq} (seed ${seed})`);
      }
      await assert.rejects(store.stateAt('blog', updates.length + 1), (error: StoreError) => error.code === 'UNKNOWN_SEQ');
      const report = await store.verify();
      assert.deepEqual(report.problems, []);
      assert.equal(report.entries, updates.length);
    });

    test('load gives the latest snapshot and the log after it, which rebuild the latest state', async (t) => {
      const store = await open(t);
      const { updates, texts } = traceUpdates(loadTrace('friendsforever_flat'), 1500);
      for (const u of updates.slice(0, 1000)) await store.append('ff', u, meta);
      const compaction = await store.compact('ff');
      assert.equal(compaction?.seq, 1000);
      assert.equal(await store.compact('ff'), null, 'nothing new to compact');
      for (const u of updates.slice(1000)) await store.append('ff', u, meta);
      const loaded = await store.load('ff');
      assert.equal(loaded.seq, 1500);
      assert.equal(loaded.snapshot?.seq, 1000);
      assert.equal(loaded.tail.length, 500);
      const doc = new Y.Doc();
      Y.applyUpdate(doc, loaded.snapshot!.state);
      for (const u of loaded.tail) Y.applyUpdate(doc, u);
      assert.equal(doc.getText('text').toString(), texts[1499]);
      assert.deepEqual(await store.load('unknown'), { doc: 'unknown', seq: 0, snapshot: null, tail: [] });
    });

    test("retention 'snapshot' drops exactly the entries a snapshot covers, and the state survives", async (t) => {
      const store = await open(t, { retention: 'snapshot' });
      const a = editor();
      for (let i = 0; i < 50; i++) a.text.insert(a.text.length, `${i},`);
      for (const u of a.updates) await store.append('doc', u, meta);
      const result = await store.compact('doc');
      assert.deepEqual([result?.seq, result?.pruned], [50, 50]);
      a.text.insert(0, 'after:');
      assert.equal((await store.append('doc', a.updates[a.updates.length - 1], meta)).seq, 51);
      // Resending pruned updates still adds nothing: the snapshot's coverage remembers them.
      assert.equal((await store.append('doc', a.updates[3], meta)).seq, null);
      assert.deepEqual((await store.entries('doc')).map((e) => e.seq), [51]);
      assert.equal(textOf((await store.stateAt('doc')).update), a.text.toString());
      assert.equal(textOf((await store.stateAt('doc', 50)).update), a.text.toString().slice('after:'.length));
      await assert.rejects(store.stateAt('doc', 20), (error: StoreError) => error.code === 'HISTORY_PRUNED');
      assert.deepEqual((await store.verify()).problems, []);
      // Every entry pruned: the snapshot alone carries the document.
      assert.equal((await store.compact('doc'))?.pruned, 1);
      assert.deepEqual(await store.entries('doc'), []);
      assert.equal(textOf((await store.stateAt('doc')).update), a.text.toString());
      assert.deepEqual((await store.verify()).problems, []);
    });

    test("a store keeping everything compacts a log another pruned: the snapshot the log continues from stays", async (t) => {
      const path = await backend.location(t);
      const a = editor();
      for (let i = 0; i < 40; i++) a.text.insert(a.text.length, `${i},`);
      // A server under retention 'snapshot' compacts twice: entries 1-30 are pruned, 31 onwards remain.
      const pruning = await open(t, { retention: 'snapshot', keepSnapshotsEvery: 1000, path });
      for (const u of a.updates.slice(0, 10)) await pruning.append('doc', u, meta);
      await pruning.compact('doc');
      for (const u of a.updates.slice(10, 30)) await pruning.append('doc', u, meta);
      await pruning.compact('doc');
      for (const u of a.updates.slice(30)) await pruning.append('doc', u, meta);
      await pruning.close();
      // Then `palimpsest compact` (retention 'all') snapshots seq 40.
      const keeping = await open(t, { keepSnapshotsEvery: 1000, path });
      assert.equal((await keeping.compact('doc'))?.seq, 40);
      assert.deepEqual((await keeping.info('doc'))?.snapshots.map((s) => s.seq), [10, 30, 40]);
      assert.deepEqual((await keeping.verify()).problems, []);
      const texts = a.updates.map((_, i) => { const d = new Y.Doc(); for (const u of a.updates.slice(0, i + 1)) Y.applyUpdate(d, u); return d.getText('text').toString(); });
      for (const seq of [30, 35, 40]) assert.equal(textOf((await keeping.stateAt('doc', seq)).update), texts[seq - 1], `state at ${seq}`);
    });

    test('verify detects a damaged snapshot, and a snapshot that disagrees with the log', async (t) => {
      const location = await backend.location(t);
      const store = await open(t, { path: location });
      const a = editor();
      for (let i = 0; i < 30; i++) a.text.insert(0, `${i}`);
      for (const u of a.updates.slice(0, 10)) await store.append('doc', u, meta);
      await store.compact('doc');
      for (const u of a.updates.slice(10, 20)) await store.append('doc', u, meta);
      await store.compact('doc');
      for (const u of a.updates.slice(20)) await store.append('doc', u, meta);
      assert.deepEqual((await store.verify()).problems, []);

      // Bytes flipped in one snapshot; another replaced by the state of a different document.
      const damaged = Buffer.from((await store.stateAt('doc', 10)).update);
      damaged.fill(0x7f, 2, 12);
      await backend.overwriteSnapshot(location, 10, damaged);
      const other = new Y.Doc();
      other.getText('text').insert(0, 'not this document');
      await backend.overwriteSnapshot(location, 20, Y.encodeStateAsUpdate(other));

      const report = await store.verify();
      assert.deepEqual(report.problems.map((p) => p.seq).sort((x, y) => (x ?? 0) - (y ?? 0)), [10, 20]);
      assert.ok(report.problems.every((p) => p.doc === 'doc' && p.problem.length > 0));
    });

    test('two handles on one file (two processes) log an update once', async (t) => {
      const first = await open(t);
      const second = await open(t, { path: first.path });
      const a = editor();
      a.text.insert(0, 'common');
      a.text.insert(6, '!');
      assert.equal((await first.append('doc', a.updates[0], meta)).seq, 1);
      // The second handle has never seen this document: it must read what the first logged.
      assert.equal((await second.append('doc', a.updates[0], { instanceId: 'other', user: null })).seq, null);
      assert.equal((await second.append('doc', Y.encodeStateAsUpdate(a.doc), meta)).seq, 2);
      assert.equal((await first.append('doc', a.updates[1], meta)).seq, null);
      assert.equal((await first.entries('doc')).length, 2);
    });

    test('changesSince names the documents whose log grew after a cursor, whichever handle wrote them', async (t) => {
      const first = await open(t);
      const second = await open(t, { path: first.path });
      const { a, b } = twoEditors();
      await first.append('doc-a', a.updates[0], meta);
      const start = await second.changesSince(null);
      assert.deepEqual(start.changes, [], 'a new cursor reports nothing');
      await first.append('doc-b', b.updates[0], meta);
      await first.append('doc-a', a.updates[1], meta);
      const next = await second.changesSince(start.cursor);
      assert.deepEqual(next.changes.map((c) => [c.doc, c.seq]).sort(), [['doc-a', 2], ['doc-b', 1]]);
      // Nothing new since: a document may be named again, but never with a seq it did not reach.
      const again = await second.changesSince(next.cursor);
      assert.ok(again.changes.every((c) => (c.doc === 'doc-a' && c.seq === 2) || (c.doc === 'doc-b' && c.seq === 1)), JSON.stringify(again.changes));
    });

    test('feed gives every document\'s entries in commit order, resumes after any cursor, and sees the other handle\'s', async (t) => {
      const first = await open(t);
      const second = await open(t, { path: first.path });
      const { a, b } = twoEditors();
      assert.deepEqual(await first.feed(null), { entries: [], cursor: null });
      await first.append('doc-a', a.updates[0], meta);
      await second.append('doc-b', b.updates[0], { instanceId: 'other', user: null });
      await first.append('doc-a', a.updates[1], meta);
      const all = await second.feed(null);
      assert.deepEqual(all.entries.map((e) => [e.doc, e.seq, e.instanceId]), [['doc-a', 1, 'test'], ['doc-b', 1, 'other'], ['doc-a', 2, 'test']]);
      assert.deepEqual(all.entries.map((e) => e.update), (await first.entries('doc-a')).slice(0, 1).map((e) => e.update)
        .concat((await first.entries('doc-b')).map((e) => e.update), (await first.entries('doc-a')).slice(1).map((e) => e.update)));
      assert.equal(all.cursor, all.entries[2].cursor);
      const page = await first.feed(all.entries[0].cursor, { limit: 1 });
      assert.deepEqual(page.entries.map((e) => [e.doc, e.seq]), [['doc-b', 1]]);
      assert.equal(page.cursor, page.entries[0].cursor);
      assert.deepEqual(await first.feed(all.cursor), { entries: [], cursor: all.cursor }, 'nothing after the last cursor');
      b.text.insert(1, 'bb');
      await second.append('doc-b', b.updates[1], meta);
      assert.deepEqual((await first.feed(all.cursor)).entries.map((e) => [e.doc, e.seq]), [['doc-b', 2]]);
    });

    test('feedCursorProblem accepts every cursor the feed handed out and refuses any other, saying what the cursors look like', async (t) => {
      const store = await open(t);
      const form = name === 'sqlite' ? /whole numbers from 1/ : /<transaction id>\.<seq>\.<document name in base64url>/;
      // Nothing handed out yet: no cursor can be one of this feed's.
      assert.notEqual(await store.feedCursorProblem('1'), null);
      const { a, b } = twoEditors();
      await store.append('doc-a', a.updates[0], meta);
      await store.append('doc/b', b.updates[0], meta);
      await store.append('doc-a', a.updates[1], meta);
      const { entries } = await store.feed(null);
      assert.equal(entries.length, 3);
      for (const entry of entries) assert.equal(await store.feedCursorProblem(entry.cursor), null, entry.cursor);
      const last = entries[2].cursor;
      const otherForm = name === 'sqlite' ? `1.1.${Buffer.from('doc-a').toString('base64url')}` : '1';
      // Past the end: a position the feed has not reached; a transaction id PostgreSQL has not assigned.
      const pastTheEnd = name === 'sqlite' ? String(Number(last) + 1) : `${BigInt(last.split('.')[0]) + 1_000_000n}.1.${last.split('.')[2]}`;
      for (const bad of ['bogus', '-5', '1.5', '', ' 1', '0', '01', '99999999999999999999999', otherForm, pastTheEnd,
        `${last}!`, `${last.split('.')[0]}.0.${last.split('.')[2] ?? ''}`, `${last.split('.')[0]}.1.ZG9jLWE=`, '18446744073709551616.1.ZG9jLWE']) {
        const problem = await store.feedCursorProblem(bad);
        assert.notEqual(problem, null, `"${bad}" is refused`);
        if (bad !== pastTheEnd) assert.match(problem!, form, `"${bad}": the message says what a cursor looks like`);
        else assert.match(problem!, /past the end/, `"${bad}"`);
      }
    });

    test('a failed write rejects the append, logs nothing, and the store recovers', async (t) => {
      const location = await backend.location(t);
      const store = await open(t, { busyTimeoutMs: 50, path: location });
      const a = editor();
      a.text.insert(0, 'first');
      a.text.insert(0, 'second ');
      await store.append('doc', a.updates[0], meta);
      // Another process holds the write lock: our write cannot happen.
      const release = await backend.holdWriteLock(location);
      await assert.rejects(store.append('doc', a.updates[1], meta), (error: StoreError) => error.code === 'STORE_WRITE_FAILED');
      assert.equal(store.healthy(), false);
      await release();
      assert.equal((await store.append('doc', a.updates[1], meta)).seq, 2);
      assert.equal(store.healthy(), true);
      assert.equal(textOf((await store.stateAt('doc')).update), 'second first');
    });

    test('restore appends a forward update that brings back the state at a seq', async (t) => {
      const store = await open(t);
      const doc = new Y.Doc();
      const updates: Uint8Array[] = [];
      doc.on('update', (u: Uint8Array) => updates.push(u));
      const text = doc.getText('text');
      const fragment = doc.getXmlFragment('default');
      text.insert(0, 'version one');
      const paragraph = new Y.XmlElement('paragraph');
      paragraph.insert(0, [new Y.XmlText('kept paragraph')]);
      fragment.insert(0, [paragraph]);
      for (const u of updates.splice(0)) await store.append('doc', u, meta);
      const restorePoint = (await store.info('doc'))!.seq;
      const expected = (await store.stateAt('doc', restorePoint)).update;
      text.delete(0, 7);
      text.insert(text.length, ' and more');
      fragment.insert(1, [new Y.XmlElement('heading')]);
      (paragraph.get(0) as Y.XmlText).insert(0, 'edited ');
      doc.getMap('meta').set('title', 'added later');
      for (const u of updates.splice(0)) await store.append('doc', u, meta);

      const restore = await computeRestoreUpdate(store, 'doc', restorePoint);
      assert.ok(restore !== null);
      const result = await store.append('doc', restore, { instanceId: 'api', user: 'restorer' });
      assert.equal(result.seq, restorePoint + 5 + 1);
      const restored = new Y.Doc();
      Y.applyUpdate(restored, (await store.stateAt('doc')).update);
      const original = new Y.Doc();
      Y.applyUpdate(original, expected);
      assert.equal(restored.getText('text').toString(), original.getText('text').toString());
      assert.equal(restored.getXmlFragment('default').toString(), original.getXmlFragment('default').toString());
      assert.deepEqual(restored.getMap('meta').toJSON(), {});
      // The client that made the later edits converges to the restored state too.
      Y.applyUpdate(doc, restore);
      assert.equal(doc.getText('text').toString(), 'version one');
      assert.equal(await computeRestoreUpdate(store, 'doc', result.seq!), null);
    });

    test('restore reads values JSON cannot write, or cannot tell apart (BigInt, -0)', async (t) => {
      const store = await open(t);
      const { doc, updates } = editor();
      const map = doc.getMap('meta');
      map.set('count', 10n);
      map.set('zero', 0);
      for (const u of updates.splice(0)) await store.append('doc', u, meta);
      const restorePoint = (await store.info('doc'))!.seq;
      map.set('zero', -0);
      for (const u of updates.splice(0)) await store.append('doc', u, meta);
      const restore = await computeRestoreUpdate(store, 'doc', restorePoint);
      assert.ok(restore !== null, '-0 is not the 0 the document had');
      Y.applyUpdate(doc, restore);
      assert.equal(Object.is(map.get('zero'), 0), true);
      assert.equal(map.get('count'), 10n);
    });
  });
}

test('opening a file that is not a Palimpsest database fails with a message naming the path', async (t) => {
  const dir = tempDir(t);
  const foreign = join(dir, 'foreign.db');
  const db = new Database(foreign);
  db.exec('CREATE TABLE notes (body TEXT)');
  db.close();
  assert.throws(() => openEventStore({ path: foreign }), (error: StoreError) =>
    error.code === 'STORE_OPEN_FAILED' && error.message.includes(foreign));
  const { writeFileSync } = await import('node:fs');
  const garbage = join(dir, 'garbage.db');
  writeFileSync(garbage, Buffer.alloc(8192, 0x42));
  assert.throws(() => openEventStore({ path: garbage }), (error: StoreError) =>
    error.code === 'STORE_OPEN_FAILED' && error.message.includes(garbage));
});

test('a SQLite file of schema version 1 is migrated on open, and what changes after shows in changesSince', async (t) => {
  const path = join(tempDir(t), 'v1.db');
  const a = new Y.Doc();
  const updates: Uint8Array[] = [];
  a.on('update', (u: Uint8Array) => updates.push(u));
  a.getText('text').insert(0, 'written by version 1');
  a.getText('text').insert(0, 'then: ');
  const first = openEventStore({ path });
  await first.append('old', updates[0], meta);
  await first.close();
  // Back to what schema version 1 had.
  const db = new Database(path);
  db.exec(`DROP TABLE service_state; DROP TABLE leases; DROP TRIGGER updates_feed; DROP TABLE feed;
    DROP TABLE version_names; ALTER TABLE updates DROP COLUMN display_name;
    DROP INDEX documents_by_change; ALTER TABLE documents DROP COLUMN change_id;
    DROP TABLE authorship_blocks; DROP INDEX updates_group_starts;
    ALTER TABLE updates DROP COLUMN added; ALTER TABLE updates DROP COLUMN removed; ALTER TABLE updates DROP COLUMN created;
    ALTER TABLE updates DROP COLUMN group_start; ALTER TABLE updates DROP COLUMN group_user; ALTER TABLE updates DROP COLUMN group_name;
    ALTER TABLE updates DROP COLUMN group_added; ALTER TABLE updates DROP COLUMN group_removed; PRAGMA user_version = 1`);
  db.close();
  assert.throws(() => openEventStore({ path, readonly: true }), (error: StoreError) =>
    error.code === 'STORE_OPEN_FAILED' && error.message.includes(path) && error.message.includes('schema version 1'));
  const store = openEventStore({ path });
  t.after(() => store.close());
  const start = await store.changesSince(null);
  assert.equal((await store.append('old', updates[1], meta)).seq, 2);
  assert.deepEqual((await store.changesSince(start.cursor)).changes, [{ doc: 'old', seq: 2 }]);
  assert.equal(textOf((await store.stateAt('old')).update), 'then: written by version 1');
  // Entries logged before the feed existed are in it, ahead of those logged after.
  assert.deepEqual((await store.feed(null)).entries.map((e) => [e.doc, e.seq]), [['old', 1], ['old', 2]]);
  // Entries from before their facts were stored get them worked out from the update; the log goes on ungrouped.
  assert.deepEqual((await store.summaries('old', { withCreated: true })).map((s) => [s.seq, s.added, s.created!.length > 0, s.group]),
    [[1, 'written by version 1'.length, true, null], [2, 'then: '.length, true, null]]);
});
