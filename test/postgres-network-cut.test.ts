// A network cut between the instances and PostgreSQL, through a TCP proxy:
// every open connection is torn down mid-edit, and new ones are refused or
// held unanswered (a black hole); then a silent cut, where open connections
// stay open but carry nothing and no reset tells anyone. Meanwhile nothing is acknowledged and
// /readyz says why; once the path heals, every client converges without a
// further edit, each change is logged once, and the log replays to the text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import { hocuspocusClient, waitConverged, waitSettled, yWebsocketClient, type TestClient } from './helpers/clients.js';
import { assertLogMatches, randomEdit, readiness, startInstances } from './helpers/redis-cluster.js';
import { startRedis } from './helpers/redis-process.js';
import { startPostgres } from './helpers/postgres-process.js';
import { startTcpProxy, type CutMode } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

test('instances cut off from PostgreSQL mid-edit acknowledge nothing, say so on /readyz, and after the cut heals converge with each change logged once', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const postgres = await startPostgres(t);
  const direct = await postgres.createDatabase();
  const proxy = await startTcpProxy(t, { host: '127.0.0.1', port: postgres.port });
  const throughProxy = direct.replace(`:${postgres.port}/`, `:${proxy.port}/`);
  const redis = await startRedis(t);
  const instances = await startInstances(t, { data: throughProxy, redis: redis.url, names: ['east', 'west'] });
  await waitFor(async () => (await Promise.all(instances.map(readiness))).every((r) => r.status === 200), { message: 'instances ready' });

  const documentName = `cut-${seed}`;
  const clients: TestClient[] = [];
  for (let i = 0; i < 6; i++) {
    const url = instances[i % instances.length].url;
    clients.push(i % 3 === 2 ? yWebsocketClient(t, url, documentName) : hocuspocusClient(t, url, documentName));
  }
  const acknowledging = clients.filter((c) => c.kind === 'hocuspocus');
  let counter = 0;
  const editSome = (count: number) => {
    for (let k = 0; k < count; k++) {
      const i = prng.uint32(rng, 0, clients.length - 1);
      randomEdit(rng, clients[i].doc, `c${i}`, ++counter);
    }
  };
  try {
    await waitSettled(clients);
    for (let step = 0; step < 40; step++) {
      editSome(prng.uint32(rng, 1, 3));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitSettled(acknowledging);
    await waitConverged(clients.map((c) => c.doc));
    t.diagnostic(`${await assertLogMatches(direct, documentName, clients)} entries before the first cut`);

    for (const mode of ['refuse', 'hold', 'stall'] as CutMode[]) {
      // Edits in flight when the path breaks: some of their appends are cut mid-transaction.
      editSome(6);
      assert.ok(proxy.open() > 0, 'the instances hold connections to PostgreSQL through the proxy');
      proxy.cut(mode);
      const cutAt = Date.now();
      await waitFor(async () => (await Promise.all(instances.map(readiness))).every((r) =>
        r.status === 503 && r.body.problems.some((p) => p.check === 'database' && /PostgreSQL/.test(p.problem))),
      { timeoutMs: 30_000, message: `readyz reports the cut (${mode})` });
      t.diagnostic(`${mode}: readyz ${JSON.stringify((await readiness(instances[0])).body.problems)}`);
      editSome(10);
      // Every acknowledging client edits, so each has something that must stay unacknowledged.
      acknowledging.forEach((client, i) => randomEdit(rng, client.doc, `a${i}`, ++counter));
      const editedAt = proxy.accepted();
      // Kept cut until the instances have tried PostgreSQL again since those
      // edits and failed: refused, or (when held) given up on an attempt at
      // its connect time-out. Their edits reached no log, so none is acknowledged.
      const triedAndFailed = () => mode === 'refuse' ? proxy.accepted() > editedAt : proxy.abandoned(editedAt) > 0;
      await waitFor(() => triedAndFailed() && acknowledging.every((c) => !c.settled()),
        { timeoutMs: 60_000, intervalMs: 200, message: `clients unacknowledged while the instances fail to reach PostgreSQL (${mode})` });
      const during = await Promise.all(instances.map(readiness));
      assert.ok(during.every((r) => r.status === 503), `still not ready while cut (${mode})`);
      if (mode !== 'refuse') assert.ok(proxy.held() > 0, 'the instances tried to reconnect into the black hole');

      proxy.heal();
      await waitFor(async () => (await Promise.all(instances.map(readiness))).every((r) => r.status === 200),
        { timeoutMs: 60_000, message: `instances ready again after the cut (${mode})` });
      // No further edit: reconnecting clients resend what was not acknowledged.
      await waitSettled(acknowledging, 60_000);
      await waitConverged(clients.map((c) => c.doc), 60_000);
      t.diagnostic(`${mode}: healed after ${Date.now() - cutAt} ms, ${await assertLogMatches(direct, documentName, clients)} entries`);
    }
  } catch (error) {
    t.diagnostic(`failed with seed ${seed}: ${clients.map((c) => `${c.kind} ${c.describe()}`).join('; ')}`);
    for (const instance of instances) {
      t.diagnostic(`instance on ${instance.port}: exit ${instance.child.exitCode ?? instance.child.signalCode ?? 'running'}, last log ${JSON.stringify(instance.logs.slice(-3))}, stderr ${instance.stderr().slice(-2000)}`);
    }
    throw error;
  }
});
