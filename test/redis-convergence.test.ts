// Scale-out through Redis: clients spread over several instances that share
// one SQLite file see one document (content and presence), and every client
// transaction is logged once, by the instance that received it, however the
// clients move between instances.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { hocuspocusClient, waitConverged, waitSettled } from './helpers/clients.js';
import { logEntries, replayLog, startInstances } from './helpers/redis-cluster.js';
import { startRedis } from './helpers/redis-process.js';
import type { ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

type Client = ReturnType<typeof hocuspocusClient>;

interface Writer {
  name: string;
  documentName: string;
  doc: Y.Doc;
  instance: number;
  client: Client;
}

/**
 * One transaction that changes something on this client: insert, delete or
 * set. Returns its kind: a delete may overlap a concurrent delete of another
 * client that was logged first, and then brings nothing new to the log.
 */
function randomEdit(rng: prng.PRNG, writer: Writer, counter: number): 'insert' | 'delete' | 'set' {
  let kind: 'insert' | 'delete' | 'set' = 'insert';
  const text = writer.doc.getText('text');
  writer.doc.transact(() => {
    const roll = prng.uint32(rng, 0, 9);
    if (roll < 6 || text.length < 4) {
      text.insert(prng.uint32(rng, 0, text.length), `${writer.name}${counter}${prng.word(rng, 1, 4)} `);
    } else if (roll < 8) {
      kind = 'delete';
      const index = prng.uint32(rng, 0, text.length - 2);
      text.delete(index, prng.uint32(rng, 1, Math.min(5, text.length - index)));
    } else {
      kind = 'set';
      writer.doc.getMap('meta').set(writer.name, `${prng.word(rng, 1, 4)}-${counter}`);
    }
  });
  return kind;
}

test('clients spread over three instances converge in content and presence, and no change is logged twice', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const data = join(tempDir(t), 'shared.db');
  const redis = await startRedis(t);
  const instances: ServerProcess[] = await startInstances(t, { data, redis: redis.url, names: ['east', 'west', 'north'] });

  const documentNames = [`notes-${seed}`, `plan-${seed}`];
  const writers: Writer[] = [];
  for (let i = 0; i < 6; i++) {
    const documentName = documentNames[i % documentNames.length];
    const doc = new Y.Doc();
    const instance = prng.uint32(rng, 0, instances.length - 1);
    const client = hocuspocusClient(t, instances[instance].url, documentName, { doc });
    client.provider.setAwarenessField('user', { name: `writer-${i}` });
    writers.push({ name: `w${i}`, documentName, doc, instance, client });
  }
  const transactions = new Map<string, number>(documentNames.map((name) => [name, 0]));
  const deletes = new Map<string, number>(documentNames.map((name) => [name, 0]));

  try {
    await waitFor(() => writers.every((w) => w.client.provider.isSynced), { message: 'clients synced' });
    let moves = 0;
    for (let step = 0; step < 80; step++) {
      // A burst of concurrent edits by a few writers, sent without waiting for acks.
      const burst = prng.uint32(rng, 1, 4);
      for (let k = 0; k < burst; k++) {
        const writer = prng.oneOf(rng, writers);
        if (randomEdit(rng, writer, step * 10 + k) === 'delete') deletes.set(writer.documentName, deletes.get(writer.documentName)! + 1);
        transactions.set(writer.documentName, transactions.get(writer.documentName)! + 1);
      }
      if (prng.uint32(rng, 0, 9) === 0) {
        // A writer moves to another instance once the one it is on holds its
        // edits (edits made while it is away would reach the new instance as
        // one merged sync step 2, one entry for several transactions).
        const writer = prng.oneOf(rng, writers);
        await waitSettled([writer.client]);
        writer.client.destroy();
        // A new session has a new Yjs client id (as a reloaded page does): a
        // reused id would restart its presence clock below the one peers saw.
        const doc = new Y.Doc();
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(writer.doc));
        writer.doc = doc;
        writer.instance = (writer.instance + prng.uint32(rng, 1, instances.length - 1)) % instances.length;
        writer.client = hocuspocusClient(t, instances[writer.instance].url, writer.documentName, { doc: writer.doc });
        writer.client.provider.setAwarenessField('user', { name: writer.name });
        await waitFor(() => writer.client.provider.isSynced, { message: `${writer.name} synced after moving` });
        moves++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    t.diagnostic(`${moves} moves between instances`);

    await waitSettled(writers.map((w) => w.client));
    for (const documentName of documentNames) {
      const peers = writers.filter((w) => w.documentName === documentName);
      await waitConverged(peers.map((w) => w.doc));
      const text = peers[0].doc.getText('text').toString();
      for (const peer of peers) assert.equal(peer.doc.getText('text').toString(), text, `${peer.name} sees the same text`);

      // Presence crosses instances too: every writer sees every other writer of its document.
      await waitFor(() => peers.every((peer) => peers.every((other) =>
        peer.client.provider.awareness!.getStates().has(other.doc.clientID))), { message: `presence on ${documentName}` });

      const entries = await logEntries(data, documentName);
      const { doc: rebuilt, redundant } = replayLog(entries);
      assert.deepEqual(redundant, [], 'no log entry repeats what was already logged');
      // One entry per transaction that brought something new: at most one per
      // transaction, and only deletes that overlapped an earlier one may have none.
      const made = transactions.get(documentName)!;
      assert.ok(entries.length <= made && entries.length >= made - deletes.get(documentName)!,
        `${entries.length} log entries for ${made} transactions of which ${deletes.get(documentName)} deletes`);
      assert.equal(rebuilt.getText('text').toString(), text, 'the log rebuilds what the clients see');
      assert.deepEqual(rebuilt.getMap('meta').toJSON(), peers[0].doc.getMap('meta').toJSON());
      const loggedBy = new Set(entries.map((entry) => entry.instanceId));
      t.diagnostic(`${documentName}: ${entries.length} entries logged by ${[...loggedBy].sort().join(', ')}`);
    }
  } catch (error) {
    t.diagnostic(`failed with seed ${seed}`);
    throw error;
  }
});
