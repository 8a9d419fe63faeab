// An instance SIGKILLed while its clients edit: every update it acknowledged
// is in the log at once, and once its clients reconnect to the surviving
// instance, the survivor, its clients and the log hold every update.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { hocuspocusClient, waitConverged, waitSettled } from './helpers/clients.js';
import { logEntries, replayLog, startInstances } from './helpers/redis-cluster.js';
import { startRedis } from './helpers/redis-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

interface Writer {
  name: string;
  doc: Y.Doc;
  client: ReturnType<typeof hocuspocusClient>;
  pushed: number;
  /** Every token up to here was acknowledged (seen with no unsynced changes). */
  acknowledged: number;
}

test('when an instance is SIGKILLed mid-edit, the survivor and the log hold every update it acknowledged', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const data = join(tempDir(t), 'shared.db');
  const redis = await startRedis(t);
  const [doomed, survivor] = await startInstances(t, { data, redis: redis.url, names: ['doomed', 'survivor'] });
  const documentName = `crash-${seed}`;

  const writers: Writer[] = ['d1', 'd2', 's1'].map((name) => {
    const doc = new Y.Doc();
    const client = hocuspocusClient(t, (name.startsWith('d') ? doomed : survivor).url, documentName, { doc });
    return { name, doc, client, pushed: 0, acknowledged: 0 };
  });
  await waitFor(() => writers.every((w) => w.client.provider.isSynced), { message: 'clients synced' });

  const push = (writer: Writer) => {
    writer.doc.getArray<string>('items').push([`${writer.name}:${writer.pushed}`]);
    writer.pushed++;
  };
  const noteAcks = () => {
    for (const writer of writers) if (writer.client.provider.unsyncedChanges === 0) writer.acknowledged = writer.pushed;
  };

  // Edit until the doomed instance has acknowledged a good number of updates,
  // then kill it in the middle of a burst.
  // A writer keeps at most a few updates in flight, so it regularly sees all
  // of them acknowledged.
  const deadline = Date.now() + 30_000;
  while (writers[0].acknowledged < 30 || writers[1].acknowledged < 30) {
    assert.ok(Date.now() < deadline, `edits acknowledged in time (${writers.map((w) => w.acknowledged).join('/')})`);
    for (let k = prng.uint32(rng, 1, 3); k > 0; k--) {
      const writer = prng.oneOf(rng, writers);
      if (writer.client.provider.unsyncedChanges < 3) push(writer);
    }
    await new Promise((resolve) => setTimeout(resolve, prng.uint32(rng, 0, 3)));
    noteAcks();
  }
  for (let k = 0; k < 5; k++) push(writers[k % 2]);
  noteAcks();
  const acknowledgedAtKill = writers.map((w) => w.acknowledged);
  await doomed.kill('SIGKILL');
  t.diagnostic(`killed with acknowledged ${acknowledgedAtKill.join('/')} of pushed ${writers.map((w) => w.pushed).join('/')}`);

  const expectAcknowledged = (items: string[], where: string) => {
    const present = new Set(items);
    writers.forEach((writer, i) => {
      for (let n = 0; n < acknowledgedAtKill[i]; n++) {
        assert.ok(present.has(`${writer.name}:${n}`), `${where} holds acknowledged ${writer.name}:${n}`);
      }
    });
  };
  expectAcknowledged(replayLog(await logEntries(data, documentName)).doc.getArray<string>('items').toArray(), 'the log right after the kill');

  // The doomed instance's clients are configured with the survivor's URL and carry on there.
  for (const writer of writers.slice(0, 2)) {
    writer.client.destroy();
    writer.client = hocuspocusClient(t, survivor.url, documentName, { doc: writer.doc });
  }
  for (let k = 0; k < 10; k++) push(writers[k % writers.length]);
  await waitSettled(writers.map((w) => w.client));
  await waitConverged(writers.map((w) => w.doc));

  const seenBySurvivorClient = writers[2].doc.getArray<string>('items').toArray();
  expectAcknowledged(seenBySurvivorClient, 'the survivor');
  const entries = await logEntries(data, documentName);
  const { doc: rebuilt, redundant } = replayLog(entries);
  assert.deepEqual(redundant, [], 'no log entry repeats another');
  assert.deepEqual(rebuilt.getArray<string>('items').toArray(), seenBySurvivorClient, 'the log rebuilds what every client sees');
  assert.equal(seenBySurvivorClient.length, writers.reduce((sum, w) => sum + w.pushed, 0), 'every update made it, acknowledged or not');
  const transactions = writers.reduce((sum, w) => sum + w.pushed, 0);
  assert.ok(entries.length <= transactions, `at most one entry per transaction (${entries.length} for ${transactions})`);
});
