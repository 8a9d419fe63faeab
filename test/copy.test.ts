// `palimpsest copy` moves a store between backends as it is: a SQLite file
// with a long real editing history (snapshots, and a document whose log start
// was pruned) goes to PostgreSQL and back with every entry's seq, time, user
// and instance intact, verifies clean, and exports the same state at any seq.
// Run again, it copies only what the target lacks.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { runCli } from './helpers/cli.js';
import { postgresForSuite } from './helpers/postgres-process.js';
import { tempDir } from './helpers/temp.js';
import { loadTrace, traceUpdates } from './helpers/traces.js';

function textAt(exported: string): string {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, Buffer.from((JSON.parse(exported) as { update: string }).update, 'base64'));
  return doc.getText('text').toString();
}

describe('palimpsest copy', () => {
  const postgres = postgresForSuite();

  test('a SQLite history copied to PostgreSQL and back keeps every entry, verifies clean and exports the same state at any seq', async (t) => {
    const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
    const rng = prng.create(seed);
    const dir = tempDir(t);
    const source = join(dir, 'source.db');
    const { updates } = traceUpdates(loadTrace('seph-blog1'), 6500);
    const store = openEventStore({ data: source, compactAfterEntries: 700, keepSnapshotsEvery: 2000 });
    for (let i = 0; i < 6000; i += 25) {
      await Promise.all(updates.slice(i, i + 25).map((u, k) => store.append('blog', u, {
        instanceId: `host-${k % 3}`, user: k % 2 === 0 ? 'ada' : null, displayName: k % 3 === 0 ? 'Ada L.' : null,
      })));
    }
    const named = { seq: 700, name: 'before the rewrite', user: 'ada', displayName: 'Ada L.', createdAt: new Date('2026-03-01T10:00:00Z'), restoredFrom: null };
    await store.nameVersion('blog', named);
    await store.close();
    // A document whose first entries a retention 'snapshot' compaction dropped.
    const pruning = openEventStore({ data: source, retention: 'snapshot', compactAfterEntries: 0 });
    const notes = new Y.Doc();
    const noteUpdates: Uint8Array[] = [];
    notes.on('update', (u: Uint8Array) => noteUpdates.push(u));
    for (let i = 0; i < 40; i++) notes.getText('text').insert(0, `${i} `);
    for (const u of noteUpdates.slice(0, 30)) await pruning.append('notes', u, { instanceId: 'east', user: 'bo' });
    await pruning.compact('notes');
    for (const u of noteUpdates.slice(30)) await pruning.append('notes', u, { instanceId: 'west', user: 'bo' });
    await pruning.close();

    const target = await postgres().createDatabase();
    const copy = await runCli(['copy', '--from', source, '--to', target]);
    assert.equal(copy.code, 0, copy.stderr + copy.stdout);
    assert.match(copy.stderr, /copy: 2 documents, 6010 entries and \d+ snapshots copied/);
    assert.match(copy.stdout, /OK: verified 2 documents, 6010 log entries/);
    assert.equal((await runCli(['verify', '--data', target])).code, 0);

    for (const doc of ['blog', 'notes']) {
      const [fromSqlite, fromPostgres] = await Promise.all([source, target].map((data) => runCli(['history', doc, '--json', '--data', data])));
      assert.equal(fromPostgres.code, 0, fromPostgres.stderr);
      assert.deepEqual(JSON.parse(fromPostgres.stdout), JSON.parse(fromSqlite.stdout), `${doc}: the same entries, seqs, times, users, instances`);
    }
    const seqs = [1, 700, 701, 6000];
    for (let i = 0; i < 8; i++) seqs.push(prng.uint32(rng, 1, 6000));
    for (const seq of seqs) {
      const [a, b] = await Promise.all([source, target].map((data) => runCli(['export', 'blog', '--at', String(seq), '--json', '--data', data])));
      assert.equal(b.code, 0, b.stderr);
      assert.equal(textAt(b.stdout), textAt(a.stdout), `blog at seq ${seq} (seed ${seed})`);
    }

    // The source moves on; a second copy brings only what is new.
    const later = openEventStore({ data: source, compactAfterEntries: 0 });
    for (const u of updates.slice(6000)) await later.append('blog', u, { instanceId: 'host-0', user: 'ada' });
    await later.close();
    const again = await runCli(['copy', '--from', source, '--to', target, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout) as { copied: { entries: number; snapshots: number }; verify: { problems: unknown[]; entries: number } };
    assert.deepEqual([result.copied.entries, result.copied.snapshots, result.verify.problems], [500, 0, []]);

    // And back into a new SQLite file.
    const back = join(dir, 'back.db');
    const home = await runCli(['copy', '--from', target, '--to', back]);
    assert.equal(home.code, 0, home.stderr + home.stdout);
    for (const doc of ['blog', 'notes']) {
      const [original, roundTrip] = await Promise.all([source, back].map((data) => runCli(['history', doc, '--json', '--data', data])));
      assert.deepEqual(JSON.parse(roundTrip.stdout), JSON.parse(original.stdout), `${doc} after SQLite → PostgreSQL → SQLite`);
    }
    const [a, b] = await Promise.all([source, back].map((data) => runCli(['export', 'notes', '--json', '--data', data])));
    assert.equal(textAt(b.stdout), textAt(a.stdout));
    const copied = openEventStore({ data: back });
    t.after(() => copied.close());
    assert.deepEqual(await copied.versionNames('blog'), [named], 'version names survive both copies');
    // What history reads keep beside each entry (counts, created ids, version groups) is the same in all three stores.
    const onPostgres = openEventStore({ data: target });
    t.after(() => onPostgres.close());
    const original = openEventStore({ data: source, readonly: true });
    t.after(() => original.close());
    const facts = async (store: typeof copied, doc: string) => (await store.summaries(doc, { withCreated: true }))
      .map((s) => [s.seq, s.added, s.removed, Buffer.from(s.created!).toString('hex'), s.group]);
    for (const doc of ['blog', 'notes']) {
      const [a, b, c] = await Promise.all([original, onPostgres, copied].map((store) => facts(store, doc)));
      assert.ok(a.length > 0 && a.every((row) => row[4] !== null), `${doc}: every entry has its facts`);
      assert.deepEqual(b, a, `${doc}: facts on PostgreSQL`);
      assert.deepEqual(c, a, `${doc}: facts after the copy back`);
    }
  });

  test('a document the target holds with another history is left as it is and reported (exit 1); the other documents are copied', async (t) => {
    const dir = tempDir(t);
    const [a, b] = [join(dir, 'a.db'), join(dir, 'b.db')];
    const edits = (...texts: string[]) => {
      const doc = new Y.Doc();
      const updates: Uint8Array[] = [];
      doc.on('update', (u: Uint8Array) => updates.push(u));
      for (const text of texts) doc.getText('text').insert(doc.getText('text').length, text);
      return updates;
    };
    const write = async (data: string, docs: Record<string, Uint8Array[]>) => {
      const store = openEventStore({ data, compactAfterEntries: 0 });
      for (const [doc, updates] of Object.entries(docs)) {
        for (const u of updates) await store.append(doc, u, { instanceId: 'here', user: null });
      }
      await store.close();
    };
    await write(a, { div: edits('A one', ' A two', ' A three'), long: edits('short'), fine: edits('kept', ' whole') });
    await write(b, { div: edits('B only'), long: edits('longer', ' here') });

    const copy = await runCli(['copy', '--from', a, '--to', b]);
    assert.equal(copy.code, 1, copy.stdout + copy.stderr);
    assert.match(copy.stdout, /NOT COPIED div \(at seq 1\): the target's entry at seq 1 is not the source's/);
    assert.match(copy.stdout, /NOT COPIED long \(at seq 2\): the target's log goes further \(seq 2\) than the source's \(seq 1\)/);
    assert.match(copy.stdout, /2 document\(s\) not copied/);
    const text = async (doc: string, data: string) => textAt((await runCli(['export', doc, '--json', '--data', data])).stdout);
    assert.equal(await text('div', b), 'B only', 'the target\'s history of div is as it was');
    assert.equal(await text('long', b), 'longer here');
    assert.equal(JSON.parse((await runCli(['history', 'div', '--json', '--data', b])).stdout).length, 1);
    assert.equal(await text('fine', b), 'kept whole', 'a document the target lacked is copied');
    assert.equal((await runCli(['verify', '--data', b])).code, 0);

    const json = await runCli(['copy', '--from', a, '--to', b, '--json']);
    assert.equal(json.code, 1);
    const { copied } = JSON.parse(json.stdout) as { copied: { entries: number; notCopied: Array<{ doc: string; seq: number }> } };
    assert.deepEqual(copied.notCopied.map((c) => [c.doc, c.seq]), [['div', 1], ['long', 2]]);
    assert.equal(copied.entries, 0, 'fine was copied already; the others are not touched');
  });

  test('a source whose retention pruned what the target lacks, or a target holding another source\'s snapshots, is reported and left as it is', async (t) => {
    const dir = tempDir(t);
    const [source, target, other] = [join(dir, 'source.db'), join(dir, 'target.db'), join(dir, 'other.db')];
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on('update', (u: Uint8Array) => updates.push(u));
    for (let i = 0; i < 35; i++) doc.getText('text').insert(0, `${i} `);
    const pruning = openEventStore({ data: source, retention: 'snapshot', compactAfterEntries: 0 });
    for (const u of updates.slice(0, 10)) await pruning.append('notes', u, { instanceId: 'here', user: null });
    await pruning.compact('notes');
    for (const u of updates.slice(10, 20)) await pruning.append('notes', u, { instanceId: 'here', user: null });
    await pruning.close();
    assert.equal((await runCli(['copy', '--from', source, '--to', target])).code, 0);

    // The source moves on and prunes past what the target holds (seq 20).
    const later = openEventStore({ data: source, retention: 'snapshot', compactAfterEntries: 0 });
    for (const u of updates.slice(20, 30)) await later.append('notes', u, { instanceId: 'here', user: null });
    await later.compact('notes');
    for (const u of updates.slice(30)) await later.append('notes', u, { instanceId: 'here', user: null });
    await later.close();
    const again = await runCli(['copy', '--from', source, '--to', target]);
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.match(again.stdout, /NOT COPIED notes \(at seq 20\): the source no longer holds seq 20/);
    const verify = await runCli(['verify', '--data', target]);
    assert.equal(verify.code, 0, `the target is left as it was: ${verify.stdout}`);
    assert.equal(JSON.parse((await runCli(['history', 'notes', '--json', '--data', target])).stdout).at(-1).seq, 20);

    // A target with only another history's snapshots (a copy from elsewhere stopped before the entries).
    const elsewhere = new Y.Doc();
    elsewhere.getText('text').insert(0, 'elsewhere');
    const reading = openEventStore({ data: source, readonly: true });
    const sourceSnapshot = (await reading.snapshotRecords('notes')).find((r) => r.seq === 30)!;
    await reading.close();
    const stopped = openEventStore({ data: other, compactAfterEntries: 0 });
    await stopped.importSnapshot('notes', { ...sourceSnapshot, state: Y.encodeStateAsUpdate(elsewhere) });
    await stopped.close();
    const onto = await runCli(['copy', '--from', source, '--to', other]);
    assert.equal(onto.code, 1, onto.stdout + onto.stderr);
    assert.match(onto.stdout, /NOT COPIED notes \(at seq 30\): the target's snapshot at seq 30 is not the source's/);
  });

  test('copy without --from or --to, or from a missing file, says what to pass', async (t) => {
    const dir = tempDir(t);
    const missingTo = await runCli(['copy', '--from', join(dir, 'a.db')]);
    assert.equal(missingTo.code, 2);
    assert.match(missingTo.stderr, /--to/);
    const missingFrom = await runCli(['copy', '--from', join(dir, 'nothing-here.db'), '--to', join(dir, 'b.db')]);
    assert.equal(missingFrom.code, 1);
    assert.match(missingFrom.stderr, /nothing-here\.db/);
    const help = await runCli(['copy', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--from/);
  });
});
