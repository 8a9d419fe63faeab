// The change feed over real servers on SQLite and on PostgreSQL: an event
// stream cut mid-way resumes with Last-Event-ID and sees every entry exactly
// once; the all-documents feed, read while writers on two instances write
// concurrently, never skips an entry (compared with the log at the end); on
// PostgreSQL, a transaction that commits after a later one is still read;
// many streams of one document, opened at different points while it is
// written, each get every later seq once (they share one reader once caught
// up); a stream whose reader stops reading holds up no other stream and gets
// every entry once it reads again.

import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import * as prng from 'lib0/prng';
import pg from 'pg';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { openEventStream, type EventStreamReader } from './helpers/event-stream.js';
import { startPostgres, type PostgresProcess } from './helpers/postgres-process.js';
import { startServerProcess, type ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

interface EntryJson { seq: number; receivedAt: string; instanceId: string; user: string | null; size: number; update: string }
interface FeedEntryJson extends EntryJson { doc: string; cursor: string }

/** One PostgreSQL server for the file, started when a test first needs it. */
let postgres: Promise<PostgresProcess> | null = null;
const teardowns: Array<() => Promise<void>> = [];
after(async () => {
  for (const teardown of teardowns.reverse()) await teardown();
});
function postgresServer(): Promise<PostgresProcess> {
  postgres ??= startPostgres({ after: (fn) => teardowns.push(fn) });
  return postgres;
}

const backends: Record<string, { data(t: TestContext): Promise<string> }> = {
  sqlite: { async data(t) { return join(tempDir(t), 'feed.db'); } },
  postgres: { async data() { return (await postgresServer()).createDatabase(); } },
};

async function history(server: ServerProcess, doc: string): Promise<EntryJson[]> {
  const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/history?limit=10000`);
  assert.equal(response.status, 200);
  return (await response.json()) as EntryJson[];
}

function seqsOf(stream: EventStreamReader): number[] {
  return stream.events.filter((e) => e.event === 'message').map((e) => Number(e.id));
}

/** Types `count` edits into `doc`, waiting for the server's ack every `every` edits. */
async function typeInto(client: ReturnType<typeof hocuspocusClient>, count: number, every: number): Promise<void> {
  const text = client.doc.getText('text');
  for (let i = 0; i < count; i++) {
    text.insert(text.length, `${i} `);
    if (i % every === every - 1) await waitSettled([client]);
  }
  await waitSettled([client]);
}

for (const [name, backend] of Object.entries(backends)) {
  describe(`change feed (${name})`, () => {
    test('an event stream cut mid-way resumes with Last-Event-ID and delivers every entry exactly once, live ones included', async (t) => {
      const server = await startServerProcess(t, ['--data', await backend.data(t)]);
      const doc = 'feed/resume';
      const writer = hocuspocusClient(t, server.url, doc);
      const text = writer.doc.getText('text');
      for (let i = 0; i < 6; i++) {
        text.insert(text.length, `before-${i} `);
        await waitSettled([writer]);
      }
      const url = `${server.http}/api/documents/${encodeURIComponent(doc)}/changes?after=0`;
      const first = await openEventStream(url);
      assert.equal(first.status, 200);
      assert.match(first.contentType, /^text\/event-stream/);
      await waitFor(() => first.events.length >= 6, { message: 'the logged entries streamed' });
      // Live: entries committed while the stream is open arrive on it.
      text.insert(text.length, 'live ');
      await waitSettled([writer]);
      await waitFor(() => first.events.length >= 7, { message: 'the live entry streamed' });
      first.cut();
      await first.ended;
      const lastSeen = first.events[first.events.length - 1].id!;

      // Written while nobody listens.
      for (let i = 0; i < 5; i++) {
        text.insert(text.length, `gap-${i} `);
        await waitSettled([writer]);
      }
      // An EventSource sends the first URL again, with Last-Event-ID: that header wins over ?after.
      const second = await openEventStream(url, { 'last-event-id': lastSeen });
      t.after(() => second.cut());
      for (let i = 0; i < 5; i++) {
        text.insert(text.length, `after-${i} `);
        await waitSettled([writer]);
      }
      const log = await history(server, doc);
      assert.ok(log.length >= 17, `17 edits logged (${log.length})`);
      await waitFor(() => second.events.length > 0 && second.events[second.events.length - 1].id === String(log[log.length - 1].seq),
        { message: 'the resumed stream reached the last seq' });
      const seen = [...seqsOf(first), ...seqsOf(second)];
      assert.deepEqual(seen, log.map((e) => e.seq), 'every seq exactly once, in order');
      const data = [...first.events, ...second.events].map((e) => JSON.parse(e.data) as EntryJson);
      assert.deepEqual(data, log, 'each event carries the entry as history gives it');
    });

    test('the all-documents feed answers 400 to anything but one of its cursors, on ?after and Last-Event-ID; an empty after reads from the first entry', async (t) => {
      const server = await startServerProcess(t, ['--data', await backend.data(t)]);
      const feed = (query: string, headers: Record<string, string> = {}) =>
        fetch(`${server.http}/api/changes${query}`, { headers: { accept: 'application/json', ...headers } });
      const form = name === 'sqlite' ? /whole numbers from 1 \(feed positions\)/ : /<transaction id>\.<seq>\.<document name in base64url>/;

      // A feed with no entry yet: its cursor is empty, and passed back it reads from the first entry.
      const empty = await feed('');
      assert.deepEqual([empty.status, await empty.json(), empty.headers.get('x-palimpsest-cursor')], [200, [], '']);
      const emptyAgain = await feed('?after=');
      assert.deepEqual([emptyAgain.status, await emptyAgain.json()], [200, []]);

      const post = async (doc: string, text: string) => {
        const source = new Y.Doc();
        source.getText('text').insert(0, text);
        const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/updates`,
          { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(source) });
        assert.equal(response.status, 200, await response.text());
      };
      await post('feed/one', 'first');
      await post('feed/two', 'second');
      const all = await feed('');
      const entries = (await all.json()) as FeedEntryJson[];
      assert.deepEqual(entries.map((e) => e.doc), ['feed/one', 'feed/two']);
      const [first, last] = [entries[0].cursor, entries[1].cursor];
      assert.equal(all.headers.get('x-palimpsest-cursor'), last);

      const pastTheEnd = name === 'sqlite' ? String(Number(last) + 1000)
        : `${BigInt(last.split('.')[0]) + 1_000_000n}.1.${Buffer.from('feed/one').toString('base64url')}`;
      const otherBackend = name === 'sqlite' ? `${first}.1.${Buffer.from('feed/one').toString('base64url')}` : '1';
      for (const bad of ['bogus', '-5', '1.5', '0', '99999999999999999999999', otherBackend, pastTheEnd]) {
        for (const [label, query, headers] of [
          ['?after (JSON)', `?after=${encodeURIComponent(bad)}`, {}],
          ['?after (event stream)', `?after=${encodeURIComponent(bad)}`, { accept: 'text/event-stream' }],
          ['Last-Event-ID', '', { 'last-event-id': bad }],
          ['Last-Event-ID over a good after', `?after=${encodeURIComponent(first)}`, { 'last-event-id': bad }],
        ] as const) {
          const response = await feed(query, headers);
          assert.equal(response.status, 400, `${bad} as ${label}`);
          assert.equal(response.headers.get('x-palimpsest-cursor'), null);
          const { error } = (await response.json()) as { error: { code: string; message: string } };
          assert.equal(error.code, 'BAD_REQUEST', `${bad} as ${label}`);
          assert.match(error.message, /is not a cursor of this feed/, `${bad} as ${label}`);
          assert.match(error.message, bad === pastTheEnd ? /past the end/ : form, `${bad} as ${label}: ${error.message}`);
        }
      }
      // The feed's own cursors go on reading after them; an empty after reads from the first entry.
      const next = await feed(`?after=${encodeURIComponent(first)}`);
      assert.deepEqual(((await next.json()) as FeedEntryJson[]).map((e) => e.doc), ['feed/two']);
      const atEnd = await feed(`?after=${encodeURIComponent(last)}`);
      assert.deepEqual([atEnd.status, await atEnd.json(), atEnd.headers.get('x-palimpsest-cursor')], [200, [], last]);
      const fromEmpty = await feed('?after=');
      assert.deepEqual(((await fromEmpty.json()) as FeedEntryJson[]).map((e) => e.cursor), [first, last]);
      const resumed = await openEventStream(`${server.http}/api/changes`, { 'last-event-id': first });
      t.after(() => resumed.cut());
      await waitFor(() => resumed.events.length >= 1, { message: 'the stream resumed after the first entry' });
      assert.deepEqual(resumed.events.map((e) => e.id), [last]);
    });

    test('the all-documents feed, read while writers on two instances write, never skips an entry', async (t) => {
      const data = await backend.data(t);
      const one = await startServerProcess(t, ['--data', data]);
      const two = await startServerProcess(t, ['--data', data]);
      const seed = Date.now() >>> 0;
      t.diagnostic(`seed ${seed}`);
      const gen = prng.create(seed);

      // Reader 1: an event stream on instance one. Reader 2: JSON long polls on instance two.
      const stream = await openEventStream(`${one.http}/api/changes`);
      t.after(() => stream.cut());
      const polled: FeedEntryJson[] = [];
      let polling = true;
      const poller = (async () => {
        let cursor = '';
        while (polling) {
          const response = await fetch(`${two.http}/api/changes?after=${encodeURIComponent(cursor)}&wait=2&limit=${prng.uint32(gen, 3, 40)}`,
            { headers: { accept: 'application/json' } });
          assert.equal(response.status, 200);
          const page = (await response.json()) as FeedEntryJson[];
          polled.push(...page);
          cursor = response.headers.get('x-palimpsest-cursor') ?? '';
          if (page.length > 0) assert.equal(cursor, page[page.length - 1].cursor);
        }
      })();

      const docs = ['a', 'b', 'c', 'd', 'e', 'f'];
      const writers = docs.flatMap((doc, i) => [
        hocuspocusClient(t, (i % 2 === 0 ? one : two).url, `feed/${doc}`),
        hocuspocusClient(t, (i % 2 === 0 ? two : one).url, `feed/${doc}-other`),
      ]);
      await Promise.all(writers.map((writer) => typeInto(writer, prng.uint32(gen, 20, 40), prng.uint32(gen, 1, 6))));

      const log = (await Promise.all(writers.map(async (w) => (await history(one, w.documentName)).map((e) => ({ ...e, doc: w.documentName })))))
        .flat();
      const key = (e: { doc: string; seq: number }) => `${e.doc}#${e.seq}`;
      const expected = new Set(log.map(key));
      const streamed = () => stream.events.map((e) => JSON.parse(e.data) as FeedEntryJson);
      await waitFor(() => streamed().length >= expected.size && polled.length >= expected.size,
        { timeoutMs: 30_000, message: `both readers read the ${expected.size} entries` });
      polling = false;
      await poller;

      for (const [reader, entries] of [['event stream', streamed()], ['long poll', polled]] as const) {
        const keys = entries.map(key);
        assert.equal(new Set(keys).size, keys.length, `${reader}: no entry twice`);
        assert.deepEqual(new Set(keys), expected, `${reader}: exactly the logged entries`);
        const lastSeq = new Map<string, number>();
        for (const entry of entries) {
          assert.ok(entry.seq > (lastSeq.get(entry.doc) ?? 0), `${reader}: ${entry.doc} in seq order`);
          lastSeq.set(entry.doc, entry.seq);
        }
        const byKey = new Map(log.map((e) => [key(e), e]));
        for (const entry of entries) {
          const { cursor, ...rest } = entry;
          assert.ok(cursor.length > 0);
          assert.deepEqual(rest, byKey.get(key(entry)), `${reader}: ${key(entry)} as history gives it`);
        }
      }
      assert.deepEqual(stream.events.map((e) => e.id), streamed().map((e) => e.cursor), 'the event id is the cursor');
    });
  });
}

test('PostgreSQL: entries of a transaction that commits after a later one are read, not skipped', async (t) => {
  const url = await (await postgresServer()).createDatabase();
  const store = openEventStore({ data: url });
  t.after(() => store.close());
  await store.opened();
  const update = (text: string) => {
    const doc = new Y.Doc();
    doc.getText('text').insert(0, text);
    return Y.encodeStateAsUpdate(doc);
  };
  await store.append('first', update('one'), { instanceId: 'test', user: null });
  const start = await store.feed(null);
  assert.deepEqual(start.entries.map((e) => e.doc), ['first']);

  // Another writer takes its transaction id first and commits last.
  const slow = new pg.Client({ connectionString: url });
  await slow.connect();
  t.after(() => slow.end());
  await slow.query('BEGIN');
  await slow.query('SELECT pg_current_xact_id()');
  await store.append('later', update('two'), { instanceId: 'test', user: null });
  const whileOpen = await store.feed(start.cursor);
  assert.deepEqual(whileOpen.entries, [], 'nothing past an open transaction is handed out');
  assert.equal(whileOpen.cursor, start.cursor);

  const bytes = Buffer.from(update('three'));
  await slow.query(`INSERT INTO documents (doc, last_seq) VALUES ('earlier', 1)`);
  await slow.query(`INSERT INTO updates (doc, seq, received_at, instance_id, "user", size, update_bytes) VALUES ('earlier', 1, now(), 'slow', NULL, $1, $2)`,
    [bytes.length, bytes]);
  await slow.query('COMMIT');
  const afterCommit = await store.feed(start.cursor);
  assert.deepEqual(afterCommit.entries.map((e) => [e.doc, e.seq]), [['earlier', 1], ['later', 1]]);
  assert.deepEqual((await store.feed(afterCommit.cursor)).entries, []);
});

test('the document feed needs read on the document, the all-documents feed a "*" grant; long polls answer JSON', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'auth.db'), '--jwt-secret', TEST_SECRET]);
  const reader = await hs256Token({ sub: 'ada', docs: { 'team/*': 'read' } });
  const writerToken = await hs256Token({ sub: 'bob', docs: { '*': 'write' } });
  const get = (path: string, token: string, accept = 'application/json') =>
    fetch(`${server.http}${path}`, { headers: { authorization: `Bearer ${token}`, accept } });

  assert.equal((await get('/api/documents/team%2Fplan/changes', reader)).status, 200);
  assert.equal((await get('/api/documents/other/changes', reader)).status, 403);
  assert.equal((await get('/api/changes', reader)).status, 403);
  assert.equal((await fetch(`${server.http}/api/changes`)).status, 401);
  const bad = await get('/api/documents/team%2Fplan/changes?wait=soon', reader);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /wait/);

  // A long poll that finds nothing waits for the next commit and answers with it.
  const waiting = get('/api/documents/team%2Fplan/changes?after=0&wait=30', reader);
  const writer = hocuspocusClient(t, server.url, 'team/plan', { token: writerToken });
  writer.doc.getText('text').insert(0, 'hello');
  await waitSettled([writer]);
  const answer = await waiting;
  assert.equal(answer.status, 200);
  const entries = (await answer.json()) as EntryJson[];
  assert.deepEqual(entries.map((e) => [e.seq, e.user]), [[1, 'bob']]);
  assert.equal(answer.headers.get('x-palimpsest-cursor'), '1');
  const all = await get('/api/changes', writerToken);
  assert.deepEqual(((await all.json()) as FeedEntryJson[]).map((e) => [e.doc, e.seq]), [['team/plan', 1]]);
});

test('streams of one document opened at different points while it is written (from 0, mid-way, at or past its end) each get every later seq once, in order', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'followers.db')]);
  const doc = 'feed/followers';
  const writer = hocuspocusClient(t, server.url, doc);
  const url = (after: number) => `${server.http}/api/documents/${encodeURIComponent(doc)}/changes?after=${after}`;
  await typeInto(writer, 10, 2);
  const streams: Array<{ after: number; stream: EventStreamReader }> = [];
  const open = async (after: number) => {
    const stream = await openEventStream(url(after));
    t.after(() => stream.cut());
    streams.push({ after, stream });
  };
  // Streams join while entries keep coming: some find others already following the document, some are behind them.
  for (let round = 0; round < 4; round++) {
    await Promise.all([open(0), open(5), open(10 + round * 5), open(13 + round * 5), open(1000)]);
    await typeInto(writer, 5, 5);
  }
  // One stream cut while the others follow: the rest go on.
  streams[1].stream.cut();
  await typeInto(writer, 5, 1);
  const log = await history(server, doc);
  const last = log[log.length - 1].seq;
  for (const [index, { after, stream }] of streams.entries()) {
    if (index === 1) continue;
    const expected = log.map((e) => e.seq).filter((seq) => seq > after);
    await waitFor(() => seqsOf(stream).length >= expected.length, { message: `the stream from ${after} (#${index}) reached seq ${last}` });
    assert.deepEqual(seqsOf(stream), expected, `the stream from ${after} (#${index}) got every seq after it once, in order`);
    assert.equal(stream.error(), null);
  }
  const streamFromZero = streams[0].stream.events.map((e) => JSON.parse(e.data) as EntryJson);
  assert.deepEqual(streamFromZero, log, 'each event carries the entry as history gives it');
});

test('a stream whose reader stops reading falls behind alone: another stream of the document gets every entry meanwhile, and the slow one all of them once it reads again', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'slow-reader.db')]);
  const doc = 'feed/slow-reader';
  const url = `${server.http}/api/documents/${encodeURIComponent(doc)}/changes?after=0`;
  const fast = await openEventStream(url);
  t.after(() => fast.cut());
  // The slow reader: a plain connection whose answer is not read until later, so that the server's buffers for it fill up.
  const slowResponse = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = httpRequest(url, { headers: { accept: 'text/event-stream' } }, resolve);
    request.once('error', reject);
    request.end();
    t.after(() => request.destroy());
  });
  slowResponse.pause();
  assert.equal(slowResponse.statusCode, 200);

  // 16 MiB of entries (21 MiB of events): more than the buffers of a loopback connection hold.
  const writer = new Y.Doc();
  const updates = 4;
  for (let i = 0; i < updates; i++) {
    const before = Y.encodeStateVector(writer);
    writer.getText('text').insert(0, String.fromCharCode(97 + (i % 26)).repeat(4 * 1024 * 1024 - 1024));
    const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(doc)}/updates`, {
      method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(writer, before),
    });
    assert.equal(response.status, 200, await response.text());
  }
  const all = Array.from({ length: updates }, (_, i) => i + 1);
  await waitFor(() => seqsOf(fast).length >= updates, { message: 'the reading stream got every entry while the other did not read', timeoutMs: 60_000 });
  assert.deepEqual(seqsOf(fast), all);

  const slowSeqs: number[] = [];
  let partial = '';
  slowResponse.setEncoding('utf8');
  slowResponse.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.startsWith('id: ')) slowSeqs.push(Number(line.slice(4)));
  });
  slowResponse.resume();
  await waitFor(() => slowSeqs.length >= updates, { message: 'the slow stream got every entry once it read again', timeoutMs: 60_000 });
  assert.deepEqual(slowSeqs, all, 'every seq once, in order, on the slow stream');
});
