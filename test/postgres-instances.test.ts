// Instances on several hosts: `palimpsest serve` processes that share no
// files, only one PostgreSQL (and one Redis for fan-out). Clients of both
// kinds edit one document at random through all of them; the documents
// converge and the log holds each change once. Then PostgreSQL goes away
// mid-edit: /readyz says so, nothing is acknowledged meanwhile, and once it
// is back every client converges with nothing lost and no further edit.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import { hocuspocusClient, waitConverged, waitSettled, yWebsocketClient, type TestClient } from './helpers/clients.js';
import { assertLogMatches, randomEdit, readiness, startInstances } from './helpers/redis-cluster.js';
import { startRedis } from './helpers/redis-process.js';
import { startPostgres } from './helpers/postgres-process.js';
import { startServerProcess } from './helpers/server-process.js';
import { waitFor } from './helpers/wait.js';

test('three instances on one PostgreSQL converge, log each change once, and ride out a PostgreSQL outage', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const postgres = await startPostgres(t);
  const data = await postgres.createDatabase();
  const redis = await startRedis(t);
  const instances = await startInstances(t, { data, redis: redis.url, names: ['east', 'west', 'north'] });
  await waitFor(async () => (await Promise.all(instances.map(readiness))).every((r) => r.status === 200), { message: 'instances ready' });

  const documentName = `shared-${seed}`;
  const clients: TestClient[] = [];
  for (let i = 0; i < 6; i++) {
    const url = instances[i % instances.length].url;
    clients.push(i % 3 === 2 ? yWebsocketClient(t, url, documentName) : hocuspocusClient(t, url, documentName));
  }
  const acknowledging = clients.filter((c) => c.kind === 'hocuspocus');
  try {
    await waitSettled(clients);
    for (let step = 0; step < 60; step++) {
      for (let k = prng.uint32(rng, 1, 3); k > 0; k--) {
        const i = prng.uint32(rng, 0, clients.length - 1);
        randomEdit(rng, clients[i].doc, `c${i}`, step * 10 + k);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitSettled(acknowledging);
    await waitConverged(clients.map((c) => c.doc));
    t.diagnostic(`${await assertLogMatches(data, documentName, clients)} entries before the outage`);

    // PostgreSQL goes away (a crash: no shutdown checkpoint).
    await postgres.stop('immediate');
    const outageStarted = Date.now();
    await waitFor(async () => (await Promise.all(instances.map(readiness))).every((r) =>
      r.status === 503 && r.body.problems.some((p) => p.check === 'database' && /PostgreSQL/.test(p.problem))), { message: 'readyz reports the outage' });
    t.diagnostic(`readyz: ${JSON.stringify((await readiness(instances[0])).body.problems)}`);
    for (let step = 0; step < 20; step++) {
      const i = prng.uint32(rng, 0, clients.length - 1);
      randomEdit(rng, clients[i].doc, `c${i}`, 1000 + step);
    }
    // Every acknowledging client edits at least once, so each has something that must stay unacknowledged.
    acknowledging.forEach((client, i) => randomEdit(rng, client.doc, `a${i}`, 2000 + i));
    // Kept down until the clients have tried for a while: their edits reached
    // no log, so none may have been acknowledged.
    await waitFor(() => Date.now() - outageStarted >= 10_000 && acknowledging.every((c) => !c.settled()),
      { timeoutMs: 30_000, intervalMs: 200, message: 'clients unacknowledged during the outage' });
    assert.ok((await Promise.all(instances.map(readiness))).every((r) => r.status === 503), 'still not ready');

    await postgres.start();
    await waitFor(async () => (await Promise.all(instances.map(readiness))).every((r) => r.status === 200),
      { timeoutMs: 60_000, message: 'instances ready again' });
    // No further edit: reconnecting clients resend what was not acknowledged.
    await waitSettled(acknowledging, 60_000);
    await waitConverged(clients.map((c) => c.doc), 60_000);
    t.diagnostic(`${await assertLogMatches(data, documentName, clients)} entries after the outage`);
  } catch (error) {
    t.diagnostic(`failed with seed ${seed}: ${clients.map((c) => `${c.kind} ${c.describe()}`).join('; ')}`);
    throw error;
  }
});

test('without Redis, instances on one PostgreSQL hear of each other\'s entries through LISTEN/NOTIFY, before the backstop poll', async (t) => {
  const postgres = await startPostgres(t);
  const data = await postgres.createDatabase();
  const [east, west] = await Promise.all(['east', 'west'].map((name) => startServerProcess(t, ['--data', data, '--instance-id', name])));
  await waitFor(async () => (await readiness(east)).status === 200 && (await readiness(west)).status === 200, { message: 'instances ready' });
  const writer = hocuspocusClient(t, east.url, 'notify');
  const reader = hocuspocusClient(t, west.url, 'notify');
  await waitSettled([writer, reader]);
  writer.doc.getText('text').insert(0, 'through the database');
  await waitSettled([writer]);
  const acknowledged = Date.now();
  // The backstop poll runs every 10 s; a notification arrives in milliseconds.
  await waitFor(() => reader.doc.getText('text').toString() === 'through the database', { timeoutMs: 5000, message: 'the reader on west got it' });
  t.diagnostic(`reached the other instance ${Date.now() - acknowledged} ms after the acknowledgement`);
});
