// What the PostgreSQL store adds to the contract (store-contract.test.ts runs
// that over both backends): several hosts on one database — exactly once when
// they append to the same document at the same moment, migrations when they
// start together, one compaction at a time, notifications of each other's
// commits — and what an outage does to appends and health.

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import * as prng from 'lib0/prng';
import pg from 'pg';
import * as Y from 'yjs';
import { openEventStore, StoreError, type OpenedEventStore } from '../persistence/index.js';
import { postgresForSuite, startPostgres } from './helpers/postgres-process.js';
import { waitFor } from './helpers/wait.js';

const meta = { instanceId: 'test', user: null };

describe('PostgreSQL event store', () => {
  const postgres = postgresForSuite();

  async function open(t: TestContext, data: string, options: { compactAfterEntries?: number; busyTimeoutMs?: number } = {}): Promise<OpenedEventStore> {
    const store = openEventStore({ data, compactAfterEntries: options.compactAfterEntries ?? 0, compactAfterBytes: 0, busyTimeoutMs: options.busyTimeoutMs });
    t.after(() => store.close());
    await store.opened();
    return store;
  }

  test('two hosts appending the same updates to one document at the same moment log each once', async (t) => {
    const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
    const rng = prng.create(seed);
    const url = await postgres().createDatabase();
    const hosts = [await open(t, url), await open(t, url), await open(t, url)];
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on('update', (update: Uint8Array) => updates.push(update));
    const text = doc.getText('text');
    for (let round = 0; round < 60; round++) {
      const before = updates.length;
      for (let k = prng.uint32(rng, 1, 4); k > 0; k--) text.insert(prng.uint32(rng, 0, text.length), prng.word(rng, 1, 5));
      const fresh = updates.slice(before);
      // Every host receives every fresh update (as after a resend or a move), some also the whole state.
      await Promise.all(hosts.flatMap((host, i) => [
        ...fresh.map((u) => host.append('one-doc', u, { instanceId: `host-${i}`, user: null })),
        ...(prng.bool(rng) ? [host.append('one-doc', Y.encodeStateAsUpdate(doc), { instanceId: `host-${i}`, user: null })] : []),
      ]));
    }
    const entries = await hosts[0].entries('one-doc');
    const rebuilt = new Y.Doc();
    for (const entry of entries) {
      assert.equal(Y.snapshotContainsUpdate(Y.snapshot(rebuilt), entry.update), false, `seq ${entry.seq} repeats what the log held (seed ${seed})`);
      Y.applyUpdate(rebuilt, entry.update);
    }
    assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => i + 1), 'gap-free seqs');
    assert.ok(entries.length <= updates.length, `${entries.length} entries for ${updates.length} updates`);
    assert.equal(rebuilt.getText('text').toString(), text.toString());
    assert.deepEqual((await hosts[1].verify()).problems, []);
  });

  test('a host whose view of a document is behind (another host appended since its last write) logs nothing twice', async (t) => {
    const url = await postgres().createDatabase();
    const [a, b] = [await open(t, url), await open(t, url)];
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on('update', (update: Uint8Array) => updates.push(update));
    const text = doc.getText('text');
    for (const word of ['one ', 'two ', 'three ', 'four ', 'five ']) text.insert(text.length, word);
    const append = (host: OpenedEventStore, i: number): Promise<number | null> =>
      host.append('behind', updates[i], meta).then((r) => r.seq);
    // a writes twice (its second write has a view of the document to go on), then b writes behind its back.
    assert.deepEqual([await append(a, 0), await append(a, 1)], [1, 2]);
    assert.deepEqual(await Promise.all([append(b, 1), append(b, 2)]), [null, 3]);
    // a's view ends at seq 2: it must find seq 3 before deciding what is new.
    assert.deepEqual(await Promise.all([append(a, 2), append(a, 3)]), [null, 4]);
    assert.deepEqual(await Promise.all([append(b, 3), append(b, 4)]), [null, 5]);
    assert.deepEqual(await Promise.all([append(a, 4), append(a, 0)]), [null, null]);
    const entries = await b.entries('behind');
    assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3, 4, 5]);
    const rebuilt = new Y.Doc();
    for (const entry of entries) Y.applyUpdate(rebuilt, entry.update);
    assert.equal(rebuilt.getText('text').toString(), text.toString());
    assert.deepEqual((await a.verify()).problems, []);
  });

  test('instances starting together on a new database create the schema once', async (t) => {
    const url = await postgres().createDatabase();
    const stores = await Promise.all([1, 2, 3, 4].map(() => open(t, url)));
    const a = new Y.Doc();
    a.getText('text').insert(0, 'hello');
    assert.equal((await stores[3].append('doc', Y.encodeStateAsUpdate(a), meta)).seq, 1);
    // One row, at the version a store starting alone reaches.
    const alone = await postgres().createDatabase();
    await open(t, alone);
    const versions = async (database: string) => {
      const client = new pg.Client({ connectionString: database });
      await client.connect();
      try {
        return (await client.query('SELECT version FROM palimpsest_schema')).rows;
      } finally {
        await client.end();
      }
    };
    const expected = await versions(alone);
    assert.equal(expected.length, 1);
    assert.deepEqual(await versions(url), expected);
  });

  test('a database holding tables of another application is refused with a message naming the host', async (t) => {
    const url = await postgres().createDatabase();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('CREATE TABLE documents (title text)');
    await client.end();
    const store = openEventStore({ data: url });
    t.after(() => store.close());
    await assert.rejects(store.opened(), (error: StoreError) =>
      error.code === 'STORE_OPEN_FAILED' && error.message.includes(`127.0.0.1:${postgres().port}`) && error.message.includes('another application'));
  });

  test('one instance compacts a document at a time: a held compaction lock makes another skip it', async (t) => {
    const url = await postgres().createDatabase();
    const store = await open(t, url);
    const a = new Y.Doc();
    a.getText('text').insert(0, 'x');
    await store.append('doc', Y.encodeStateAsUpdate(a), meta);
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    t.after(() => other.end());
    await other.query('BEGIN');
    // The lock another instance's compaction of 'doc' holds (see persistence/postgres/schema.ts).
    await other.query("SELECT pg_advisory_xact_lock($1, hashtext('doc'))", [0x504c4d51]);
    assert.equal(await store.compact('doc'), null);
    assert.deepEqual((await store.info('doc'))?.snapshots, []);
    await other.query('COMMIT');
    assert.equal((await store.compact('doc'))?.seq, 1);
  });

  test('background compactions run on the worker and agree with the log', async (t) => {
    const url = await postgres().createDatabase();
    const store = openEventStore({ data: url, background: true, compactAfterEntries: 50, compactAfterBytes: 0, keepSnapshotsEvery: 0 });
    t.after(() => store.close());
    await store.opened();
    const a = new Y.Doc();
    const updates: Uint8Array[] = [];
    a.on('update', (u: Uint8Array) => updates.push(u));
    for (let i = 0; i < 220; i++) a.getText('text').insert(0, `${i} `);
    for (let i = 0; i < updates.length; i += 10) await Promise.all(updates.slice(i, i + 10).map((u) => store.append('doc', u, meta)));
    await store.compactionsIdle();
    const snapshots = (await store.info('doc'))!.snapshots.map((s) => s.seq);
    // The worker compacts at the last seq when it gets to a document: as many snapshots as it caught up.
    assert.ok(snapshots.length >= 1 && snapshots.every((seq) => seq >= 50), `snapshots at ${snapshots.join(', ')}`);
    const report = await store.verify();
    assert.deepEqual(report.problems, []);
    assert.equal(report.snapshots, snapshots.length);
  });

  test("an instance is told of another's commits (LISTEN/NOTIFY), not of its own", async (t) => {
    const url = await postgres().createDatabase();
    const [mine, theirs] = [await open(t, url), await open(t, url)];
    let told = 0;
    const stop = mine.watchChanges!(() => { told++; });
    t.after(stop);
    // Connected once it has reported what it may have missed.
    await waitFor(() => told > 0 && mine.healthy(), { message: 'listening' });
    const start = await mine.changesSince(null);
    told = 0;
    const a = new Y.Doc();
    a.getText('text').insert(0, 'mine');
    await mine.append('doc-mine', Y.encodeStateAsUpdate(a), meta);
    const b = new Y.Doc();
    b.getText('text').insert(0, 'theirs');
    await theirs.append('doc-theirs', Y.encodeStateAsUpdate(b), meta);
    await waitFor(() => told > 0, { message: 'notified of the other store' });
    const { changes } = await mine.changesSince(start.cursor);
    assert.deepEqual(changes.map((c) => c.doc).sort(), ['doc-mine', 'doc-theirs']);
    // Its own commit alone did not wake it: only one notification came, from theirs.
    assert.equal(told, 1);
  });

  test('while PostgreSQL is down appends fail and the store is unhealthy; when it returns both recover', async (t) => {
    const own = await startPostgres({ after: (fn) => { t.after(fn); } });
    const url = await own.createDatabase();
    const store = await open(t, url);
    const stop = store.watchChanges!(() => undefined);
    t.after(stop);
    const a = new Y.Doc();
    const updates: Uint8Array[] = [];
    a.on('update', (u: Uint8Array) => updates.push(u));
    a.getText('text').insert(0, 'before ');
    assert.equal((await store.append('doc', updates[0], meta)).seq, 1);
    await waitFor(() => store.healthy(), { message: 'healthy while up' });
    await own.stop('immediate');
    await waitFor(() => !store.healthy(), { message: 'unhealthy once PostgreSQL is gone' });
    assert.match(store.healthProblem!() ?? '', new RegExp(`127\\.0\\.0\\.1:${own.port}`));
    a.getText('text').insert(7, 'during');
    await assert.rejects(store.append('doc', updates[1], meta), (error: StoreError) => error.code === 'STORE_WRITE_FAILED');
    await own.start();
    await waitFor(() => store.healthy(), { timeoutMs: 30_000, message: 'healthy again' });
    // The client resends what was not acknowledged; it is logged once.
    assert.equal((await store.append('doc', updates[1], meta)).seq, 2);
    assert.equal((await store.append('doc', Y.encodeStateAsUpdate(a), meta)).seq, null);
    assert.deepEqual((await store.verify()).problems, []);
  });
});
