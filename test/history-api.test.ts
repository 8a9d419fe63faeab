// The history routes of the REST API: versions (grouped by author and pause,
// newest first, paginated), names for versions, ?at=<time>, authorship, and
// the display names entries record. Logs with chosen receive times are written
// into a real SQLite file through the store's import (as `palimpsest copy`
// does), then served by a real server process.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore, type LogEntry } from '../persistence/index.js';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { loadTrace } from './helpers/traces.js';
import { waitFor } from './helpers/wait.js';

/** JSON bodies are sent as JSON: the API refuses any other type (415). */
const JSON_BODY = { 'content-type': 'application/json' };

interface Version {
  fromSeq: number; toSeq: number; startedAt: string; endedAt: string; entries: number; added: number; removed: number;
  authors: Array<{ user: string | null; displayName: string | null }>; name: string | null; restoredFrom: number | null;
  namedBy: { user: string | null; displayName: string | null } | null;
}
interface VersionsPage { seq: number; units: string; versions: Version[]; nextBefore: number | null }
interface Authorship {
  seq: number;
  blocks: Array<{ type: string; runs: Array<{ text: string; author: string | null; seq: number; change?: string }> }>;
  authors: Array<{ author: string | null; characters: number }>;
}

async function json<T>(response: Response): Promise<T> {
  assert.equal(response.status, 200, `${response.url}: ${response.status} ${await response.clone().text()}`);
  return (await response.json()) as T;
}

/** One edit by `author` at `at` (ms since the epoch) on the shared Y.Text 'text'. */
interface Edit { author: string; at: number; apply(text: Y.Text): void }

/** Turns edits into log entries: each author edits from its own Y.Doc (own client id), kept in step with the others. */
function logOf(edits: Edit[], authors: string[]): LogEntry[] {
  const docs = new Map(authors.map((author) => [author, new Y.Doc()]));
  const entries: LogEntry[] = [];
  for (const edit of edits) {
    const doc = docs.get(edit.author)!;
    let update: Uint8Array | null = null;
    const capture = (u: Uint8Array) => { update = u; };
    doc.on('update', capture);
    doc.transact(() => edit.apply(doc.getText('text')));
    doc.off('update', capture);
    if (update === null) continue;
    for (const other of docs.values()) if (other !== doc) Y.applyUpdate(other, update);
    entries.push({
      seq: entries.length + 1, receivedAt: new Date(edit.at), instanceId: 'seed', user: null, displayName: edit.author,
      size: (update as Uint8Array).length, update,
    });
  }
  return entries;
}

async function seededStore(t: Parameters<typeof tempDir>[0], doc: string, entries: LogEntry[]): Promise<string> {
  const data = join(tempDir(t), 'history.db');
  const store = openEventStore({ path: data, compactAfterEntries: 0 });
  for (let i = 0; i < entries.length; i += 5000) await store.importEntries(doc, entries.slice(i, i + 5000), entries[Math.min(i + 5000, entries.length) - 1].seq);
  await store.close();
  return data;
}

const T0 = Date.parse('2026-03-01T09:00:00Z');
const MINUTE = 60_000;

test('versions group consecutive entries until the author changes or a pause longer than the threshold, newest first', async (t) => {
  const typed = (author: string, at: number, text: string): Edit => ({ author, at, apply: (y) => y.insert(y.length, text) });
  const edits = [
    typed('Ada', T0, 'Hello'), typed('Ada', T0 + 1 * MINUTE, ' world'), typed('Ada', T0 + 3 * MINUTE, '!'), // one version: pauses ≤ 5 min
    typed('Ada', T0 + 10 * MINUTE, ' Again'), // a 7-minute pause starts another
    typed('Bob', T0 + 10 * MINUTE + 5000, ' Bob'), typed('Bob', T0 + 11 * MINUTE, ' here'), // another author
    { author: 'Ada', at: T0 + 12 * MINUTE, apply: (y: Y.Text) => y.delete(0, 6) }, // Ada deletes "Hello "
  ];
  const data = await seededStore(t, 'notes', logOf(edits, ['Ada', 'Bob']));
  const server = await startServerProcess(t, ['--data', data]);
  const path = `${server.http}/api/documents/notes`;
  const page = await json<VersionsPage>(await fetch(`${path}/versions`));
  assert.equal(page.units, 'characters');
  assert.deepEqual(page.versions.map((v) => [v.fromSeq, v.toSeq, v.authors.map((a) => a.displayName), v.added, v.removed]), [
    [7, 7, ['Ada'], 0, 6],
    [5, 6, ['Bob'], 9, 0],
    [4, 4, ['Ada'], 6, 0],
    [1, 3, ['Ada'], 12, 0],
  ]);
  assert.equal(page.versions[3].startedAt, new Date(T0).toISOString());
  assert.equal(page.versions[3].endedAt, new Date(T0 + 3 * MINUTE).toISOString());
  assert.equal(page.nextBefore, null);
  // A longer threshold joins Ada's two sessions; a shorter one splits the first.
  const long = await json<VersionsPage>(await fetch(`${path}/versions?pauseSeconds=600`));
  assert.deepEqual(long.versions.map((v) => [v.fromSeq, v.toSeq]), [[7, 7], [5, 6], [1, 4]]);
  const short = await json<VersionsPage>(await fetch(`${path}/versions?pauseSeconds=90`));
  assert.deepEqual(short.versions.map((v) => [v.fromSeq, v.toSeq]), [[7, 7], [5, 6], [4, 4], [3, 3], [1, 2]]);

  // ?at=<time> lists what existed then, and reads the state then.
  const atTime = new Date(T0 + 10 * MINUTE + 1000).toISOString();
  const then = await json<VersionsPage>(await fetch(`${path}/versions?at=${atTime}`));
  assert.deepEqual(then.versions.map((v) => [v.fromSeq, v.toSeq]), [[4, 4], [1, 3]]);
  const state = await fetch(`${path}/state?at=${encodeURIComponent(atTime)}`);
  assert.equal(state.headers.get('x-palimpsest-seq'), '4');
  const before = await fetch(`${path}/state?at=${encodeURIComponent(new Date(T0 - 1).toISOString())}`);
  assert.equal(before.headers.get('x-palimpsest-seq'), '0');
  const bad = await fetch(`${path}/versions?at=yesterday`);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /at must be an ISO 8601 time/);
  assert.equal((await fetch(`${path}/state?at=soon`)).status, 400);
});

test('pages of versions over a long real trace join up to the whole listing, and a page is read without replaying the log', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Math.floor(Math.random() * 1e6));
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const trace = loadTrace('automerge-paper');
  const count = Number(process.env.PALIMPSEST_HISTORY_ENTRIES ?? 100_000);
  // Authors take turns in runs; pauses of up to 8 minutes now and then.
  const authors = ['Ada', 'Bob', 'Cy'];
  let author = 'Ada';
  let at = T0;
  const edits: Edit[] = trace.txns.slice(0, count).map((txn) => {
    if (prng.int32(rng, 0, 200) === 0) author = authors[prng.int32(rng, 0, 2)];
    at += prng.int32(rng, 0, 1000) === 0 ? prng.int32(rng, 1, 8) * MINUTE : prng.int32(rng, 100, 2000);
    return {
      author, at, apply: (y) => {
        for (const [pos, del, ins] of txn.patches) {
          if (del > 0) y.delete(pos, del);
          if (ins.length > 0) y.insert(pos, ins);
        }
      },
    };
  });
  const entries = logOf(edits, authors);
  const data = await seededStore(t, 'paper', entries);
  const server = await startServerProcess(t, ['--data', data]);
  const path = `${server.http}/api/documents/paper`;

  // The independent grouping: from the metadata alone.
  const expected: Array<[number, number, string]> = [];
  for (const entry of entries) {
    const last = expected[expected.length - 1];
    const previous = entries[entry.seq - 2];
    if (last !== undefined && last[2] === entry.displayName && entry.receivedAt.getTime() - previous.receivedAt.getTime() <= 300_000) last[1] = entry.seq;
    else expected.push([entry.seq, entry.seq, entry.displayName!]);
  }
  expected.reverse();

  const seen: Array<[number, number, string]> = [];
  let before: number | null = null;
  const pageMs: number[] = [];
  for (;;) {
    const started = performance.now();
    const page: VersionsPage = await json<VersionsPage>(await fetch(`${path}/versions?limit=40${before === null ? '' : `&before=${before}`}`));
    pageMs.push(performance.now() - started);
    seen.push(...page.versions.map((v): [number, number, string] => [v.fromSeq, v.toSeq, v.authors[0].displayName!]));
    if (page.nextBefore === null) break;
    assert.equal(page.nextBefore, page.versions[page.versions.length - 1].fromSeq);
    before = page.nextBefore;
  }
  assert.deepEqual(seen, expected);
  const sorted = [...pageMs].sort((a, b) => a - b);
  t.diagnostic(`${entries.length} entries, ${expected.length} versions, ${pageMs.length} pages of 40: median ${sorted[sorted.length >> 1].toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms`);
  // Page times are reported, not asserted: the bench's history section measures them on a quiet machine.
  // Authorship, by contrast, replays the log up to its seq once: measured for the README.
  const started = performance.now();
  const authorship = await json<Authorship>(await fetch(`${path}/authorship`));
  t.diagnostic(`authorship at the last of ${entries.length} entries: ${(performance.now() - started).toFixed(0)} ms, ${authorship.authors.length} authors`);
  assert.deepEqual(authorship.authors.map((a) => a.author).sort(), [...new Set(authorship.blocks.flatMap((b) => b.runs.map((r) => r.author)))].sort());
});

test('authorship at random seqs equals an independent per-character account of who typed what', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Math.floor(Math.random() * 1e6));
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const trace = loadTrace('friendsforever_flat');
  const authors = ['Ada', 'Bob', 'Cy'];
  let author = 'Ada';
  // Alongside Yjs: the text as a string and one author label per character.
  const texts: string[] = [];
  const labels: string[][] = [];
  let text = '';
  let label: string[] = [];
  const edits: Edit[] = trace.txns.slice(0, 3000).map((txn, index) => {
    if (prng.int32(rng, 0, 20) === 0) author = authors[prng.int32(rng, 0, 2)];
    const by = author;
    for (const [pos, del, ins] of txn.patches) {
      text = text.slice(0, pos) + ins + text.slice(pos + del);
      label = [...label.slice(0, pos), ...Array<string>(ins.length).fill(by), ...label.slice(pos + del)];
    }
    texts.push(text);
    labels.push(label);
    return {
      author: by, at: T0 + index * 1000, apply: (y) => {
        for (const [pos, del, ins] of txn.patches) {
          if (del > 0) y.delete(pos, del);
          if (ins.length > 0) y.insert(pos, ins);
        }
      },
    };
  });
  const entries = logOf(edits, authors);
  assert.equal(entries.length, edits.length, 'every transaction of the trace changes the text');
  const data = await seededStore(t, 'friends', entries);
  const server = await startServerProcess(t, ['--data', data]);
  const path = `${server.http}/api/documents/friends`;
  for (let round = 0; round < 6; round++) {
    const seq = round === 0 ? entries.length : prng.int32(rng, 1, entries.length);
    const authorship = await json<Authorship>(await fetch(`${path}/authorship?at=${seq}`));
    assert.equal(authorship.seq, seq);
    const runs = authorship.blocks.flatMap((b) => b.runs);
    assert.equal(runs.map((r) => r.text).join(''), texts[seq - 1], `text at seq ${seq}`);
    const perCharacter = runs.flatMap((r) => Array<string | null>(r.text.length).fill(r.author));
    assert.deepEqual(perCharacter, labels[seq - 1], `authors at seq ${seq}`);
  }
  // With since: leaving out what was removed gives the text at `at`; leaving out what was inserted, the text at `since`.
  for (let round = 0; round < 6; round++) {
    const at = round === 0 ? entries.length : prng.int32(rng, 2, entries.length);
    const since = round === 0 ? at - 10 : prng.int32(rng, 0, at - 1);
    const changes = await json<Authorship>(await fetch(`${path}/authorship?at=${at}&since=${since}`));
    const runs = changes.blocks.flatMap((b) => b.runs);
    assert.equal(runs.filter((r) => r.change !== 'removed').map((r) => r.text).join(''), texts[at - 1], `at ${at} since ${since}`);
    assert.equal(runs.filter((r) => r.change !== 'inserted').map((r) => r.text).join(''), since === 0 ? '' : texts[since - 1], `at ${at} since ${since}`);
    assert.ok(runs.filter((r) => r.change === 'inserted').every((r) => r.seq > since), `at ${at} since ${since}: insertions are later than since`);
  }
});

test('named versions survive a restart; a restore shows as its own version by the person who restored', async (t) => {
  const data = join(tempDir(t), 'named.db');
  let server = await startServerProcess(t, ['--data', data]);
  const writer = hocuspocusClient(t, server.url, 'plan');
  writer.provider.setAwarenessField('user', { name: 'Ada', color: '#f00' });
  const text = writer.doc.getText('text');
  text.insert(0, 'first draft');
  await waitSettled([writer]);
  text.insert(text.length, ', then more');
  await waitSettled([writer]);
  const path = `${server.http}/api/documents/plan`;
  const history = await json<Array<{ displayName: string | null }>>(await fetch(`${path}/history`));
  assert.deepEqual(history.map((e) => e.displayName), ['Ada', 'Ada'], 'entries record the name the connection announced');

  const named = await fetch(`${path}/versions`, { method: 'POST', headers: JSON_BODY, body: JSON.stringify({ seq: 1, name: 'First draft' }) });
  assert.deepEqual(await json(named), { doc: 'plan', seq: 1, name: 'First draft', namedBy: { user: null, displayName: null } });
  assert.equal((await fetch(`${path}/versions`, { method: 'POST', headers: JSON_BODY, body: JSON.stringify({ seq: 9, name: 'x' }) })).status, 404);
  assert.equal((await fetch(`${path}/versions`, { method: 'POST', headers: JSON_BODY, body: JSON.stringify({ seq: 1, name: '' }) })).status, 400);
  const restored = await fetch(`${path}/restore`, { method: 'POST', headers: JSON_BODY, body: JSON.stringify({ seq: 1, displayName: 'Bob' }) });
  assert.equal((await json<{ seq: number }>(restored)).seq, 3);
  await waitFor(() => text.toString() === 'first draft', { message: 'the connected client shows the restored text' });

  await server.kill('SIGKILL');
  server = await startServerProcess(t, ['--data', data]);
  const page = await json<VersionsPage>(await fetch(`${server.http}/api/documents/plan/versions`));
  assert.deepEqual(page.versions.map((v) => [v.fromSeq, v.toSeq, v.name, v.restoredFrom, v.authors.map((a) => a.displayName)]), [
    [3, 3, 'Restored from seq 1', 1, ['Bob']], // without a token, the name the restoring editor sent
    [2, 2, null, null, ['Ada']],
    [1, 1, 'First draft', null, ['Ada']],
  ]);
  const authorship = await json<Authorship>(await fetch(`${server.http}/api/documents/plan/authorship`));
  assert.deepEqual(authorship.blocks.map((b) => b.runs.map((r) => [r.text, r.author])), [[['first draft', 'Ada']]]);
});

test('a read token reads versions and authorship; naming needs write access; entries, names and restores carry the token name, not the body\'s', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'auth.db'), '--jwt-secret', TEST_SECRET]);
  const token = await hs256Token({ sub: 'u-1', name: 'Ada Lovelace', docs: { '*': 'write' } });
  const writer = hocuspocusClient(t, server.url, 'team', { token });
  // The token's name wins over the name the client announces.
  writer.provider.setAwarenessField('user', { name: 'anonymous', color: '#f00' });
  writer.doc.getText('text').insert(0, 'signed text');
  await waitSettled([writer]);
  const write = { authorization: `Bearer ${token}`, ...JSON_BODY };
  const read = { authorization: `Bearer ${await hs256Token({ sub: 'r', docs: { team: 'read' } })}` };
  const path = `${server.http}/api/documents/team`;
  const page = await json<VersionsPage>(await fetch(`${path}/versions`, { headers: read }));
  assert.deepEqual(page.versions[0].authors, [{ user: 'u-1', displayName: 'Ada Lovelace' }]);
  // Who each Yjs client id is, for colouring the live text in the editor.
  const authors = await json<{ clients: Array<{ client: number; user: string | null; displayName: string | null }> }>(
    await fetch(`${path}/authors`, { headers: read }));
  assert.deepEqual(authors.clients, [{ client: writer.doc.clientID, user: 'u-1', displayName: 'Ada Lovelace' }]);
  assert.equal((await fetch(`${path}/authors`)).status, 401);
  assert.equal((await json<Authorship>(await fetch(`${path}/authorship`, { headers: read }))).authors[0].author, 'Ada Lovelace');
  const refused = await fetch(`${path}/versions`, { method: 'POST', headers: read, body: JSON.stringify({ seq: 1, name: 'mine' }) });
  assert.equal(refused.status, 403);
  assert.equal((await fetch(`${path}/restore`, { method: 'POST', headers: read, body: '{"seq":0}' })).status, 403);
  assert.equal((await fetch(`${path}/versions`)).status, 401);
  // The token's name is what naming and restoring record; a name in the body does not override it.
  const naming = await fetch(`${path}/versions`, { method: 'POST', headers: write, body: JSON.stringify({ seq: 1, name: 'mine', displayName: 'Mallory' }) });
  assert.deepEqual((await json<{ namedBy: unknown }>(naming)).namedBy, { user: 'u-1', displayName: 'Ada Lovelace' });
  const listed = (await json<VersionsPage>(await fetch(`${path}/versions`, { headers: read }))).versions[0];
  assert.deepEqual([listed.name, listed.namedBy], ['mine', { user: 'u-1', displayName: 'Ada Lovelace' }]);
  writer.doc.getText('text').insert(0, 'more ');
  await waitSettled([writer]);
  const restore = await fetch(`${path}/restore`, { method: 'POST', headers: write, body: JSON.stringify({ seq: 1, displayName: 'Mallory' }) });
  const restoredSeq = (await json<{ seq: number }>(restore)).seq;
  const afterRestore = (await json<VersionsPage>(await fetch(`${path}/versions`, { headers: read }))).versions[0];
  assert.deepEqual([afterRestore.toSeq, afterRestore.restoredFrom, afterRestore.authors, afterRestore.namedBy],
    [restoredSeq, 1, [{ user: 'u-1', displayName: 'Ada Lovelace' }], { user: 'u-1', displayName: 'Ada Lovelace' }]);
  // A token without a name claim: the name the editor announces is used.
  const unnamed = { authorization: `Bearer ${await hs256Token({ sub: 'u-2', docs: { '*': 'write' } })}`, ...JSON_BODY };
  const byBody = await fetch(`${path}/versions`, { method: 'POST', headers: unnamed, body: JSON.stringify({ seq: 2, name: 'theirs', displayName: 'Grace' }) });
  assert.deepEqual((await json<{ namedBy: unknown }>(byBody)).namedBy, { user: 'u-2', displayName: 'Grace' });
});

test('after retention pruned the start of the log, authorship still shows all the text, the pruned part without an author', async (t) => {
  const data = join(tempDir(t), 'pruned.db');
  const store = openEventStore({ path: data, retention: 'snapshot', compactAfterEntries: 0 });
  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on('update', (u: Uint8Array) => updates.push(u));
  const text = source.getText('text');
  text.insert(0, 'kept in a snapshot');
  await store.append('notes', updates[0], { instanceId: 'seed', user: null, displayName: 'Ada' });
  await store.compact('notes');
  text.insert(text.length, ', then Bob');
  await store.append('notes', updates[1], { instanceId: 'seed', user: null, displayName: 'Bob' });
  assert.equal((await store.info('notes'))?.firstRetainedSeq, 2, 'seq 1 was pruned');
  await store.close();
  const server = await startServerProcess(t, ['--data', data]);
  const path = `${server.http}/api/documents/notes`;
  const authorship = await json<Authorship>(await fetch(`${path}/authorship`));
  assert.deepEqual(authorship.blocks.flatMap((b) => b.runs.map((r) => [r.text, r.author, r.seq])), [['kept in a snapshot', null, 0], [', then Bob', 'Bob', 2]]);
  const versions = await json<VersionsPage>(await fetch(`${path}/versions`));
  assert.deepEqual(versions.versions.map((v) => [v.fromSeq, v.toSeq]), [[2, 2]], 'versions start at the first retained entry');
  // The snapshot at seq 1 holds that state: it reads, without authors.
  const atOne = await json<Authorship>(await fetch(`${path}/authorship?at=1`));
  assert.deepEqual(atOne.blocks.flatMap((b) => b.runs.map((r) => [r.text, r.author])), [['kept in a snapshot', null]]);
});

test('a restore logs only what differs from the restored state, and nothing when the content is already that state', async (t) => {
  const at = (minutes: number) => T0 + minutes * 10 * MINUTE;
  const edit = (minutes: number, apply: (y: Y.Text) => void): Edit => ({ author: 'Ada', at: at(minutes), apply });
  const data = await seededStore(t, 'story', logOf([
    edit(0, (y) => y.insert(0, 'hello')), edit(1, (y) => y.insert(5, ' ')), edit(2, (y) => y.insert(6, 'wor')),
    edit(3, (y) => y.insert(9, 'ld')), edit(4, (y) => y.insert(11, '.')), // seq 5: 'hello world.'
    edit(6, (y) => y.insert(12, ' again')), // seq 6: 'hello world. again'
    edit(7, (y) => y.insert(0, 'XYZ')), // seq 7: inserted here ...
    edit(8, (y) => y.delete(0, 3)), // seq 8: ... and deleted again
    edit(9, (y) => y.delete(6, 5)), // seq 9: 'hello . again'
  ], ['Ada']));
  const server = await startServerProcess(t, ['--data', data]);
  const path = `${server.http}/api/documents/story`;
  const restore = (body: unknown) => fetch(`${path}/restore`, { method: 'POST', headers: JSON_BODY, body: JSON.stringify(body) });
  const textNow = async () => {
    const state = await json<{ update: string }>(await fetch(`${path}/state`, { headers: { accept: 'application/json' } }));
    const doc = new Y.Doc();
    Y.applyUpdate(doc, Buffer.from(state.update, 'base64'));
    return doc.getText('text').toString();
  };
  const versionOf = async (seq: number) => (await json<VersionsPage>(await fetch(`${path}/versions`))).versions.find((v) => v.fromSeq === seq);
  const entries = async () => (await json<unknown[]>(await fetch(`${path}/history`))).length;
  assert.equal(await textNow(), 'hello . again');
  assert.equal(await entries(), 9);

  // Back to seq 5: " again" goes and "world" comes back; "XYZ", added and removed since, is not touched.
  const first = await json<{ seq: number; changed: boolean }>(await restore({ seq: 5 }));
  assert.deepEqual(first, { doc: 'story', restoredTo: 5, seq: 10, changed: true });
  assert.equal(await textNow(), 'hello world.');
  const restoreVersion = await versionOf(10);
  assert.deepEqual([restoreVersion?.restoredFrom, restoreVersion?.added, restoreVersion?.removed], [5, 5, 6], JSON.stringify(restoreVersion));

  // Again: the content is already that of seq 5, so nothing is logged.
  assert.deepEqual(await json(await restore({ seq: 5 })), { doc: 'story', restoredTo: 5, seq: 10, changed: false });
  assert.equal(await entries(), 10);
  assert.equal((await json<VersionsPage>(await fetch(`${path}/versions`))).versions.filter((v) => v.restoredFrom !== null).length, 1);

  // An edit, then seq 5 once more: only the edit is undone (from the restore at seq 10, which holds seq 5's content).
  const ada = hocuspocusClient(t, server.url, 'story');
  await waitFor(() => ada.doc.getText('text').toString() === 'hello world.', { message: 'the client has the restored text' });
  ada.doc.getText('text').insert(12, '!');
  await waitSettled([ada]);
  const third = await json<{ seq: number; changed: boolean }>(await restore({ seq: 5 }));
  assert.deepEqual(third, { doc: 'story', restoredTo: 5, seq: 12, changed: true });
  await waitFor(() => ada.doc.getText('text').toString() === 'hello world.', { message: 'the client shows the restore' });
  const undoneEdit = await versionOf(12);
  assert.deepEqual([undoneEdit?.added, undoneEdit?.removed], [0, 1], JSON.stringify(undoneEdit));
});

test('a restore body takes exactly one of seq and at, besides displayName; anything else is 400 naming the field', async (t) => {
  const data = await seededStore(t, 'fields', logOf([
    { author: 'Ada', at: T0, apply: (y) => y.insert(0, 'one') },
    { author: 'Ada', at: T0 + 10 * MINUTE, apply: (y) => y.insert(3, ' two') },
  ], ['Ada']));
  const server = await startServerProcess(t, ['--data', data]);
  const path = `${server.http}/api/documents/fields`;
  const post = (route: string, body: string) => fetch(`${path}/${route}`, { method: 'POST', headers: JSON_BODY, body });
  const refused = async (route: string, body: string, mentions: RegExp) => {
    const response = await post(route, body);
    const answer = (await response.json()) as { error: { code: string; message: string } };
    assert.deepEqual([response.status, answer.error.code], [400, 'BAD_REQUEST'], `${body}: ${answer.error.message}`);
    assert.match(answer.error.message, mentions, body);
  };
  await refused('restore', '{"seq":1,"at":"2026-01-01T00:00:00Z"}', /"seq" and "at" both given/);
  await refused('restore', '{"seq":1,"when":"yesterday"}', /unknown field "when"/);
  await refused('restore', '{"seq":1,"displayName":7}', /"displayName" must be a string/);
  await refused('restore', '{"displayName":"Ada"}', /needs "seq" or "at"/);
  await refused('restore', '{"at":"last week"}', /"at" must be an ISO 8601 time/);
  await refused('restore', '[1]', /must be a JSON object/);
  await refused('versions', '{"seq":1,"at":"2026-01-01T00:00:00Z","name":"x"}', /"seq" and "at" both given/);
  await refused('versions', '{"seq":1,"name":"x","colour":"red"}', /unknown field "colour"/);
  assert.deepEqual((await (await fetch(`${path}/history`)).json() as unknown[]).length, 2, 'nothing was logged');

  // "at" alone restores the last seq received at or before that time.
  const byTime = await post('restore', JSON.stringify({ at: new Date(T0 + MINUTE).toISOString(), displayName: 'Ada' }));
  assert.deepEqual(await json(byTime), { doc: 'fields', restoredTo: 1, seq: 3, changed: true });
});
