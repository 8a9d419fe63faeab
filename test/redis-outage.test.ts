// A Redis outage: every instance keeps serving and acknowledging its own
// clients from the log, /readyz and the log say the link is down, and once
// Redis is back every loaded document re-converges across instances on its
// own, without a further edit. Nothing acknowledged is lost.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { hocuspocusClient, waitConverged, waitSettled } from './helpers/clients.js';
import { hasLogLine, logEntries, readiness, replayLog, startInstances } from './helpers/redis-cluster.js';
import { startRedis } from './helpers/redis-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

test('while Redis is down every instance keeps acknowledging its clients, and after it returns all documents converge without a further edit', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const data = join(tempDir(t), 'shared.db');
  const redis = await startRedis(t);
  const [east, west] = await startInstances(t, { data, redis: redis.url, names: ['east', 'west'] });
  await waitFor(async () => (await readiness(east)).status === 200 && (await readiness(west)).status === 200, { message: 'instances ready' });

  const edit = (doc: Y.Doc, label: string) => {
    const text = doc.getText('text');
    text.insert(prng.uint32(rng, 0, text.length), `${label}${prng.word(rng, 2, 5)} `);
  };

  // One document open on both instances before the outage.
  const before = `before-${seed}`;
  const onEast = hocuspocusClient(t, east.url, before);
  const onWest = hocuspocusClient(t, west.url, before);
  for (let i = 0; i < 10; i++) edit(prng.bool(rng) ? onEast.doc : onWest.doc, `pre${i}`);
  await waitSettled([onEast, onWest]);
  await waitConverged([onEast.doc, onWest.doc]);

  await redis.kill();
  await waitFor(async () => (await readiness(east)).status === 503 && (await readiness(west)).status === 503, { message: 'readyz reports the outage' });
  const { body } = await readiness(east);
  assert.equal(body.problems[0]?.check, 'redis');
  await waitFor(() => hasLogLine(east, 'redis link lost') && hasLogLine(west, 'redis link lost'), { message: 'link-lost log lines' });

  // Edits continue on both sides and are acknowledged (unsyncedChanges back to 0).
  for (let i = 0; i < 20; i++) edit(i % 2 === 0 ? onEast.doc : onWest.doc, `out${i}`);
  // A document first loaded during the outage, on both instances, loads from the log.
  const during = `during-${seed}`;
  const lateEast = hocuspocusClient(t, east.url, during);
  const lateWest = hocuspocusClient(t, west.url, during);
  await waitFor(() => lateEast.provider.isSynced && lateWest.provider.isSynced, { message: 'documents load while Redis is down' });
  for (let i = 0; i < 10; i++) edit(i % 2 === 0 ? lateEast.doc : lateWest.doc, `late${i}`);
  await waitSettled([onEast, onWest, lateEast, lateWest]);
  assert.notEqual(onEast.doc.getText('text').toString(), onWest.doc.getText('text').toString(),
    'without Redis the instances do not see each other\'s edits');

  await redis.restart();
  await waitFor(async () => (await readiness(east)).status === 200 && (await readiness(west)).status === 200,
    { message: 'readyz reports the link back' });
  // The log line may reach us a moment after /readyz turns green: the log is written asynchronously.
  await waitFor(() => hasLogLine(east, 'redis link restored') && hasLogLine(west, 'redis link restored'), { message: 'link-restored log lines' });

  // No edit from here on: the instances re-announce their documents by themselves.
  await waitConverged([onEast.doc, onWest.doc], 10_000);
  await waitConverged([lateEast.doc, lateWest.doc], 10_000);

  for (const [name, peers] of [[before, [onEast, onWest]], [during, [lateEast, lateWest]]] as const) {
    const text = peers[0].doc.getText('text').toString();
    assert.equal(peers[1].doc.getText('text').toString(), text);
    const entries = await logEntries(data, name);
    const { doc: rebuilt, redundant } = replayLog(entries);
    assert.deepEqual(redundant, [], `${name}: no log entry repeats another`);
    assert.equal(rebuilt.getText('text').toString(), text, `${name}: the log holds everything the clients see`);
  }
  const expectedEntries = { [before]: 30, [during]: 10 };
  for (const [name, count] of Object.entries(expectedEntries)) {
    assert.equal((await logEntries(data, name)).length, count, `${name}: one entry per client transaction`);
  }
  // Presence is back across instances too.
  onEast.provider.setAwarenessField('user', { name: 'east-writer' });
  onWest.provider.setAwarenessField('user', { name: 'west-writer' });
  await waitFor(() => onEast.provider.awareness!.getStates().has(onWest.doc.clientID)
    && onWest.provider.awareness!.getStates().has(onEast.doc.clientID), { message: 'presence across instances after the outage' });
});
