// Convergence: many @hocuspocus/provider and y-websocket clients on several
// documents make random edits, disconnect and reconnect at random, while the
// server restarts and compacts at random points; at the end every client, and
// the document rebuilt from the log, are identical. Seeded: a failure prints
// the seed (replay with PALIMPSEST_SEED=<seed>).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { freePort, runCli } from './helpers/cli.js';
import { hocuspocusClient, waitSettled, yWebsocketClient, type TestClient } from './helpers/clients.js';
import { startServerProcess, type ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

function randomEdit(rng: prng.PRNG, client: TestClient): void {
  const text = client.doc.getText('text');
  const choice = prng.uint32(rng, 0, 9);
  if (choice < 5 || text.length < 5) {
    text.insert(prng.uint32(rng, 0, text.length), prng.word(rng, 1, 8));
  } else if (choice < 8) {
    const at = prng.uint32(rng, 0, text.length - 2);
    text.delete(at, prng.uint32(rng, 1, Math.min(5, text.length - at)));
  } else {
    client.doc.getMap('meta').set(prng.word(rng, 1, 2), prng.uint32(rng, 0, 1000));
  }
}

function contentOf(doc: Y.Doc): string {
  // Map keys sorted: their iteration order depends on the order updates arrived in.
  const meta = Object.entries(doc.getMap('meta').toJSON()).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify({ text: doc.getText('text').toString(), meta });
}

test('random edits, disconnects, server restarts and compactions: every client and the log end identical', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const data = join(tempDir(t), 'converge.db');
  const port = await freePort();
  const args = ['--port', String(port), '--data', data, '--compact-after-entries', '40'];
  let server: ServerProcess = await startServerProcess(t, args);
  const documents = ['notes/one', 'notes/two', 'three'];
  const clients: TestClient[] = [];
  for (const doc of documents) {
    for (let i = 0; i < 3; i++) clients.push(hocuspocusClient(t, server.url, doc));
    for (let i = 0; i < 2; i++) clients.push(yWebsocketClient(t, server.url, doc));
  }
  const offline = new Set<TestClient>();

  const steps = 600;
  for (let step = 0; step < steps; step++) {
    const client = prng.oneOf(rng, clients);
    const action = prng.uint32(rng, 0, 99);
    if (action < 80) randomEdit(rng, client);
    else if (action < 92) {
      if (offline.has(client)) {
        client.connect();
        offline.delete(client);
      } else {
        client.disconnect();
        offline.add(client);
      }
    } else if (action < 94) {
      await server.kill(prng.bool(rng) ? 'SIGKILL' : 'SIGTERM');
      if (prng.bool(rng)) {
        const compacted = await runCli(['compact', '--data', data]);
        assert.equal(compacted.code, 0, `compact failed (seed ${seed}): ${compacted.stderr}`);
      }
      server = await startServerProcess(t, args);
    }
    // Let the network breathe now and then, so edits interleave with syncs.
    if (step % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  for (const client of offline) client.connect();

  for (const doc of documents) {
    const peers = clients.filter((c) => c.documentName === doc);
    await waitFor(() => peers.every((c) => c.settled()) &&
      peers.every((c) => contentOf(c.doc) === contentOf(peers[0].doc)) &&
      peers.every((c) => Y.encodeStateVector(c.doc).toString() === Y.encodeStateVector(peers[0].doc).toString()),
    { timeoutMs: 30_000, message: `clients of ${doc} converged (seed ${seed})` }).catch((error: Error) => {
      const states = peers.map((c) => `${c.kind} settled=${c.settled()} ${c.describe()} sv=${Y.encodeStateVector(c.doc).join('.')} text=${c.doc.getText('text').length}`);
      throw new Error(`${error.message}\n${states.join('\n')}`);
    });
    // y-websocket clients have no ack: wait until the log holds what the clients show.
    await waitFor(async () => {
      const store = openEventStore({ path: data, compactAfterEntries: 0 });
      try {
        const rebuilt = new Y.Doc();
        Y.applyUpdate(rebuilt, (await store.stateAt(doc)).update);
        return contentOf(rebuilt) === contentOf(peers[0].doc);
      } finally {
        await store.close();
      }
    }, { timeoutMs: 15_000, message: `log of ${doc} rebuilds the clients' document (seed ${seed})` });
    assert.ok(peers[0].doc.getText('text').length > 0, `${doc} was edited`);
  }
  const verify = await runCli(['verify', '--data', data]);
  assert.equal(verify.code, 0, `verify (seed ${seed}): ${verify.stdout}${verify.stderr}`);
});

test('changes the server makes itself (Yjs tidying concurrent formatting) are logged: the log rebuilds the exact document', async (t) => {
  const data = join(tempDir(t), 'formatting.db');
  const server = await startServerProcess(t, ['--data', data]);
  const ada = hocuspocusClient(t, server.url, 'formatted');
  const bob = hocuspocusClient(t, server.url, 'formatted');
  const paragraph = new Y.XmlElement('paragraph');
  paragraph.insert(0, [new Y.XmlText('hello bold world')]);
  ada.doc.getXmlFragment('default').insert(0, [paragraph]);
  const textOf = (client: TestClient) => (client.doc.getXmlFragment('default').get(0) as Y.XmlElement | undefined)?.firstChild as Y.XmlText | null | undefined;
  await waitFor(() => ada.settled() && bob.settled() && textOf(bob)?.length === 16, { message: 'both have the paragraph' });
  bob.disconnect();
  // Both bold the same word at once (rich-text marks are Yjs formatting);
  // whoever merges both, the server included, removes the redundant marks itself.
  textOf(ada)!.format(6, 4, { bold: {} });
  textOf(bob)!.format(6, 4, { bold: {} });
  await waitSettled([ada]);
  bob.connect();
  await waitFor(() => ada.settled() && bob.settled() &&
    Y.equalSnapshots(Y.snapshot(ada.doc), Y.snapshot(bob.doc)), { message: 'clients converged' });
  const rebuilt = await waitFor(async () => {
    const store = openEventStore({ path: data, compactAfterEntries: 0 });
    try {
      const doc = new Y.Doc();
      const state = (await store.stateAt('formatted')).update;
      // Applied inside a local transaction, so this copy does not tidy the marks itself.
      Y.transact(doc, () => Y.applyUpdate(doc, state));
      return Y.equalSnapshots(Y.snapshot(doc), Y.snapshot(ada.doc)) ? doc : null;
    } finally {
      await store.close();
    }
  }, { message: 'the log rebuilds the same state vector and delete set as the clients' });
  assert.equal(rebuilt.getXmlFragment('default').toString(), ada.doc.getXmlFragment('default').toString());
});
