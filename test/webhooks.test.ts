// Webhooks against a real HTTP receiver that fails at random (500s, answers
// too late, dropped connections) while the delivering server is SIGKILLed
// mid-way and another instance takes its lease: every change arrives at least
// once, in seq order per document once de-duplicated by webhook-id, and every
// signature verifies. With small retry limits, an event the receiver keeps
// refusing is dead-lettered, listed, and re-delivered on request.

import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import * as prng from 'lib0/prng';
import { runCli } from './helpers/cli.js';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { startPostgres, type PostgresProcess } from './helpers/postgres-process.js';
import { startServerProcess, type ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

interface Delivery {
  id: string;
  body: string;
  event: { type: string; timestamp: string; data: { doc: string; fromSeq: number; toSeq: number; users: string[]; at: string } };
}

type Behaviour = 'ok' | 'error' | 'late' | 'drop' | 'hold';

/** A webhook receiver: checks every request's signature, answers as `behave` says, records what it accepted. */
async function startReceiver(t: TestContext, secret: Buffer, behave: () => Behaviour) {
  const accepted: Array<Delivery & { at: number }> = [];
  const held: Delivery[] = [];
  const badSignatures: string[] = [];
  let requests = 0;
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests++;
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(request.headers['webhook-id']);
      const timestamp = String(request.headers['webhook-timestamp']);
      const expected = createHmac('sha256', secret).update(`${id}.${timestamp}.${body}`).digest();
      const signatures = String(request.headers['webhook-signature']).split(' ');
      const valid = signatures.some((s) => {
        const [version, value] = s.split(',');
        const given = Buffer.from(value ?? '', 'base64');
        return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
      });
      if (!valid) badSignatures.push(id);
      switch (behave()) {
        case 'error':
          response.writeHead(500).end('try again');
          return;
        case 'drop':
          request.socket.destroy();
          return;
        case 'late':
          // Past the server's --webhook-timeout-ms, and then not a 2xx either.
          setTimeout(() => request.socket.destroy(), 800).unref();
          return;
        case 'hold':
          // No answer at all while the test kills the sender.
          held.push({ id, body, event: JSON.parse(body) as Delivery['event'] });
          return;
        case 'ok':
          accepted.push({ id, body, event: JSON.parse(body) as Delivery['event'], at: Date.now() });
          response.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, accepted, held, badSignatures, requests: () => requests };
}

let postgres: Promise<PostgresProcess> | null = null;
const teardowns: Array<() => Promise<void>> = [];
after(async () => {
  for (const teardown of teardowns.reverse()) await teardown();
});
const backends: Record<string, (t: TestContext) => Promise<string>> = {
  sqlite: async (t) => join(tempDir(t), 'hooks.db'),
  postgres: async () => {
    postgres ??= startPostgres({ after: (fn) => teardowns.push(fn) });
    return (await postgres).createDatabase();
  },
};

function webhookFlags(url: string, secret: Buffer, extra: string[] = []): string[] {
  return ['--webhook-url', url, '--webhook-secret', `whsec_${secret.toString('base64')}`, '--webhook-coalesce-ms', '50',
    '--webhook-timeout-ms', '400', '--webhook-retry-base-ms', '20', '--webhook-retry-cap-ms', '300', ...extra];
}

/** The events per document once de-duplicated by webhook-id, in the order they were first accepted. */
function byDocument(accepted: Delivery[]): Map<string, Delivery[]> {
  const seen = new Map<string, string>();
  const docs = new Map<string, Delivery[]>();
  for (const delivery of accepted) {
    const before = seen.get(delivery.id);
    if (before !== undefined) {
      assert.equal(delivery.body, before, `${delivery.id} is sent again with the same body`);
      continue;
    }
    seen.set(delivery.id, delivery.body);
    const list = docs.get(delivery.event.data.doc) ?? [];
    list.push(delivery);
    docs.set(delivery.event.data.doc, list);
  }
  return docs;
}

for (const [name, data] of Object.entries(backends)) {
  describe(`webhooks (${name})`, () => {
    test('a receiver failing at random and a delivering server SIGKILLed mid-way: every change once or more, in seq order, signed', async (t) => {
      const seed = Date.now() >>> 0;
      t.diagnostic(`seed ${seed}`);
      const gen = prng.create(seed);
      const secret = randomBytes(32);
      /** Set once armed: the next request is held unanswered and this kills its sender at once. */
      let onHold: (() => void) | null = null;
      let killedAt = Infinity;
      const receiver = await startReceiver(t, secret, () => {
        if (onHold !== null) {
          onHold();
          onHold = null;
          return 'hold';
        }
        const roll = prng.real53(gen);
        return roll < 0.25 ? 'error' : roll < 0.32 ? 'late' : roll < 0.4 ? 'drop' : 'ok';
      });
      const location = await data(t);
      const start = (id: string) => startServerProcess(t, ['--data', location, '--instance-id', id, ...webhookFlags(receiver.url, secret)]);
      const one = await start('one');
      const two = await start('two');
      const holderOf = (servers: ServerProcess[]) => servers.find((s) => s.logs.some((l) => l.msg === 'delivering webhooks (holding the lease)'));
      const leader = await waitFor(() => holderOf([one, two]), { message: 'an instance holds the webhook lease' });
      const survivor = leader === one ? two : one;

      const docs = ['hooks/a', 'hooks/b', 'hooks/c', 'hooks/d'];
      const write = async (server: ServerProcess, round: string) => {
        await Promise.all(docs.map(async (doc) => {
          const client = hocuspocusClient(t, server.url, doc);
          const text = client.doc.getText('text');
          const edits = prng.uint32(gen, 3, 12);
          for (let i = 0; i < edits; i++) {
            text.insert(text.length, `${round}${i} `);
            if (prng.bool(gen)) await waitSettled([client]);
          }
          await waitSettled([client]);
          client.destroy();
        }));
      };
      await write(leader, 'first');
      await waitFor(() => receiver.accepted.length >= 1, { message: 'a first event accepted' });
      // Cut while an event is in flight: the receiver holds the next request unanswered, and its sender dies.
      // These changes are written through the other instance; the lease holder delivers them.
      onHold = () => {
        leader.child.kill('SIGKILL');
        killedAt = Date.now();
      };
      await write(survivor, 'more');
      await waitFor(() => receiver.held.length === 1, { message: 'a request held' });
      await leader.kill('SIGKILL');
      await write(survivor, 'second');
      await waitFor(() => survivor.logs.some((l) => l.msg === 'delivering webhooks (holding the lease)'),
        { timeoutMs: 30_000, message: 'the surviving instance took over the lease' });

      const history = new Map<string, number>();
      for (const doc of docs) {
        const info = (await (await fetch(`${survivor.http}/api/documents/${encodeURIComponent(doc)}`)).json()) as { seq: number };
        history.set(doc, info.seq);
      }
      await waitFor(() => docs.every((doc) => (byDocument(receiver.accepted).get(doc)?.at(-1)?.event.data.toSeq ?? 0) === history.get(doc)),
        { timeoutMs: 60_000, message: 'every change delivered' });

      assert.deepEqual(receiver.badSignatures, [], 'every signature verifies');
      const [unconfirmed] = receiver.held;
      const resent = receiver.accepted.find((d) => d.id === unconfirmed.id && d.at > killedAt);
      assert.equal(resent?.body, unconfirmed.body, 'the event the killed server had in flight is sent again by the survivor, same id and body: ' +
        JSON.stringify({ unconfirmed, killedAt, accepted: receiver.accepted.filter((d) => d.event.data.doc === unconfirmed.event.data.doc) }));
      for (const [doc, events] of byDocument(receiver.accepted)) {
        let next = 1;
        for (const { event } of events) {
          assert.equal(event.type, 'document.changed');
          assert.equal(event.data.fromSeq, next, `${doc}: events follow on in seq order`);
          assert.ok(event.data.toSeq >= event.data.fromSeq);
          assert.ok(!Number.isNaN(Date.parse(event.timestamp)) && !Number.isNaN(Date.parse(event.data.at)));
          next = event.data.toSeq + 1;
        }
        assert.equal(next - 1, history.get(doc), `${doc}: up to its last seq`);
      }
      t.diagnostic(`requests ${receiver.requests()}, accepted ${receiver.accepted.length}, distinct ${new Set(receiver.accepted.map((d) => d.id)).size}`);
    });
  });
}

test('an event the receiver keeps refusing is dead-lettered after the retry limit, listed, and re-delivered on request', async (t) => {
  const secret = randomBytes(32);
  let refusing = true;
  const receiver = await startReceiver(t, secret, () => (refusing ? 'error' : 'ok'));
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'dead.db'),
    ...webhookFlags(receiver.url, secret, ['--webhook-retry-total-ms', '500'])]);
  const client = hocuspocusClient(t, server.url, 'hooks/dead');
  client.doc.getText('text').insert(0, 'refused');
  await waitSettled([client]);

  const list = async () => ((await (await fetch(`${server.http}/api/webhooks/dead-letters`)).json()) as {
    deadLetters: Array<{ id: string; doc: string; fromSeq: number; toSeq: number; attempts: number; lastError: string; body: string }>;
  }).deadLetters;
  const [dead] = await waitFor(async () => ((await list()).length === 1 ? list() : null), { message: 'a dead letter' });
  assert.deepEqual([dead.doc, dead.fromSeq, dead.toSeq], ['hooks/dead', 1, 1]);
  assert.ok(dead.attempts >= 2, `retried before giving up (${dead.attempts} attempts)`);
  assert.equal(dead.lastError, 'HTTP 500');
  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.match(metrics, /palimpsest_webhook_dead_letters_total\{[^}]*\} 1\b|palimpsest_webhook_dead_letters_total 1\b/);
  assert.ok(server.logs.some((l) => l.msg?.toString().startsWith('webhook dead-lettered') && l.id === dead.id));

  // Still refusing: the redelivery fails and the letter stays.
  const failed = await fetch(`${server.http}/api/webhooks/dead-letters/${dead.id}/redeliver`, { method: 'POST' });
  assert.equal(failed.status, 502);
  assert.equal(((await failed.json()) as { error: { code: string } }).error.code, 'WEBHOOK_DELIVERY_FAILED');
  assert.equal((await list()).length, 1);

  refusing = false;
  // The document's later changes go on after the dead letter.
  client.doc.getText('text').insert(0, 'accepted ');
  await waitSettled([client]);
  await waitFor(() => receiver.accepted.some((d) => d.event.data.fromSeq === 2), { message: 'the next change delivered' });
  // A page on another site cannot make the server send it again.
  const fromPage = await fetch(`${server.http}/api/webhooks/dead-letters/${dead.id}/redeliver`, { method: 'POST', headers: { origin: 'https://elsewhere.example' } });
  assert.equal(fromPage.status, 403);
  assert.equal(((await fromPage.json()) as { error: { code: string } }).error.code, 'CORS_ORIGIN_REFUSED');
  assert.equal(receiver.accepted.filter((d) => d.id === dead.id).length, 0, 'not sent again');
  const redelivered = await fetch(`${server.http}/api/webhooks/dead-letters/${dead.id}/redeliver`, { method: 'POST' });
  assert.equal(redelivered.status, 200);
  const again = receiver.accepted.find((d) => d.id === dead.id);
  assert.equal(again?.body, dead.body, 'the same id and body');
  assert.deepEqual(await list(), []);
  assert.equal((await fetch(`${server.http}/api/webhooks/dead-letters/${dead.id}/redeliver`, { method: 'POST' })).status, 404);
});

test('bad webhook settings stop the start with a message naming the flag', async (t) => {
  const data = join(tempDir(t), 'config.db');
  const cases: Array<{ args: string[]; env?: Record<string, string>; flag: RegExp }> = [
    { args: ['--webhook-url', 'http://127.0.0.1:9/hook'], flag: /--webhook-secret: needed with --webhook-url/ },
    { args: ['--webhook-url', 'ftp://example.com/hook', '--webhook-secret', `whsec_${randomBytes(32).toString('base64')}`], flag: /--webhook-url: "ftp:/ },
    { args: ['--webhook-url', 'http://127.0.0.1:9/hook', '--webhook-secret', 'not-a-secret'], flag: /--webhook-secret: expected whsec_/ },
    { args: [], env: { PALIMPSEST_WEBHOOK_URLS: 'http://a.example/x,nope', PALIMPSEST_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}` },
      flag: /PALIMPSEST_WEBHOOK_URLS \(environment variable; --webhook-url overrides it\): "nope" is not an http/ },
    { args: ['--webhook-url', 'http://127.0.0.1:9/hook', '--webhook-secret', `whsec_${randomBytes(32).toString('base64')}`,
      '--webhook-retry-base-ms', '5000', '--webhook-retry-cap-ms', '1000'], flag: /--webhook-retry-cap-ms: must be at least/ },
  ];
  for (const { args, env, flag } of cases) {
    const result = await runCli(['serve', '--port', '0', '--data', data, ...args], { env });
    assert.equal(result.code, 2, `${args.join(' ')}: exit code 2 (${result.stderr})`);
    assert.match(result.stderr, flag);
  }
});

test('a restore through the API goes out as document.restored, naming the user who restored', async (t) => {
  const secret = randomBytes(32);
  const receiver = await startReceiver(t, secret, () => 'ok');
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'restored.db'), '--jwt-secret', TEST_SECRET,
    ...webhookFlags(receiver.url, secret)]);
  const token = await hs256Token({ sub: 'ada', docs: { '*': 'write' } });
  const client = hocuspocusClient(t, server.url, 'hooks/restore', { token });
  const text = client.doc.getText('text');
  text.insert(0, 'first');
  await waitSettled([client]);
  text.insert(5, ' second');
  await waitSettled([client]);
  await waitFor(() => receiver.accepted.some((d) => d.event.data.toSeq === 2), { message: 'the edits delivered' });
  const restore = await fetch(`${server.http}/api/documents/hooks%2Frestore/restore`, {
    method: 'POST', headers: { authorization: `Bearer ${await hs256Token({ sub: 'bob', docs: { '*': 'write' } })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ seq: 1 }),
  });
  assert.equal(restore.status, 200);
  const { seq } = (await restore.json()) as { seq: number };
  const restored = await waitFor(() => receiver.accepted.find((d) => d.event.data.toSeq === seq), { message: 'the restore delivered' });
  assert.equal(restored.event.type, 'document.restored');
  assert.deepEqual(restored.event.data.users, ['bob']);
  const edits = receiver.accepted.filter((d) => d.event.data.toSeq < seq);
  assert.ok(edits.every((d) => d.event.type === 'document.changed' && d.event.data.users.every((user) => user === 'ada')), JSON.stringify(edits));
});
