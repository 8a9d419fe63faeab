// Durability: an acknowledged update survives the server being SIGKILLed the
// moment the ack arrived, over many kill/restart rounds with compactions in
// between. The property is checked per update: every update a client saw
// acknowledged is contained in the state rebuilt from the log.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { freePort, runCli } from './helpers/cli.js';
import { hocuspocusClient, waitConverged, waitSettled } from './helpers/clients.js';
import { connectRaw } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

async function stateInLog(path: string, doc: string): Promise<Y.Doc> {
  const store = openEventStore({ path, compactAfterEntries: 0 });
  try {
    const ydoc = new Y.Doc();
    Y.applyUpdate(ydoc, (await store.stateAt(doc)).update);
    return ydoc;
  } finally {
    await store.close();
  }
}

test('every update acknowledged before a SIGKILL is there after restart, over many rounds with compactions', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const data = join(tempDir(t), 'durable.db');
  const port = await freePort();
  const args = ['--port', String(port), '--data', data, '--compact-after-entries', '15'];
  const rounds = 12;
  const acknowledged: Array<{ doc: string; update: Uint8Array }> = [];
  const writers = ['alpha', 'beta'].map((doc) => {
    const ydoc = new Y.Doc();
    const updates: Uint8Array[] = [];
    ydoc.on('update', (u: Uint8Array) => updates.push(u));
    return { doc, ydoc, updates, text: ydoc.getText('text'), unacknowledged: new Set<Uint8Array>() };
  });

  for (let round = 0; round < rounds; round++) {
    const server = await startServerProcess(t, args);
    const clients = await Promise.all(writers.map((w) => connectRaw(server.url, w.doc)));
    // Each writer sends a burst of edits without waiting; the kill comes right
    // after the first ack of the last burst, while the rest are in flight.
    const inFlight: Array<Promise<void>> = [];
    let firstAckOfRound: () => void = () => undefined;
    const firstAck = new Promise<void>((resolve) => { firstAckOfRound = resolve; });
    writers.forEach((writer, i) => {
      const send = (update: Uint8Array) => {
        writer.unacknowledged.add(update);
        inFlight.push(clients[i].sendUpdate(update).then((applied) => {
          if (!applied) return;
          writer.unacknowledged.delete(update);
          acknowledged.push({ doc: writer.doc, update });
          firstAckOfRound();
        }));
      };
      // What the previous server never acknowledged is sent again first, as a provider does.
      for (const update of [...writer.unacknowledged]) send(update);
      const burst = prng.uint32(rng, 3, 12);
      for (let k = 0; k < burst; k++) {
        const pos = prng.uint32(rng, 0, writer.text.length);
        if (writer.text.length > 10 && prng.bool(rng)) writer.text.delete(pos % (writer.text.length - 3), 3);
        else writer.text.insert(pos, prng.word(rng, 1, 6));
        send(writer.updates[writer.updates.length - 1]);
      }
    });
    await firstAck;
    await server.kill('SIGKILL');
    await Promise.all(inFlight);
    for (const client of clients) await client.closed;
    if (round % 4 === 3) {
      const compacted = await runCli(['compact', '--data', data, '--json']);
      assert.equal(compacted.code, 0, compacted.stderr);
    }
  }

  assert.ok(acknowledged.length >= rounds, `only ${acknowledged.length} acknowledged updates over ${rounds} rounds`);
  for (const writer of writers) {
    const logged = await stateInLog(data, writer.doc);
    const snapshot = Y.snapshot(logged);
    const missing = acknowledged.filter((a) => a.doc === writer.doc && !Y.snapshotContainsUpdate(snapshot, a.update));
    assert.equal(missing.length, 0, `${missing.length} acknowledged updates of ${writer.doc} missing after SIGKILL (seed ${seed})`);
  }
  const verify = await runCli(['verify', '--data', data, '--json']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.ok((JSON.parse(verify.stdout) as { snapshots: number }).snapshots > 0, 'compactions happened in between');
});

test('provider clients reconnect by themselves after a SIGKILL and their edits all reach the log', async (t) => {
  const data = join(tempDir(t), 'providers.db');
  const port = await freePort();
  const args = ['--port', String(port), '--data', data];
  let server = await startServerProcess(t, args);
  const a = hocuspocusClient(t, server.url, 'together');
  const b = hocuspocusClient(t, server.url, 'together');
  await waitSettled([a, b]);
  for (let round = 0; round < 3; round++) {
    a.doc.getText('text').insert(0, `a${round} `);
    b.doc.getText('text').insert(0, `b${round} `);
    await waitSettled([a, b]);
    await server.kill('SIGKILL');
    // Typed while the server is down: kept by the providers and sent on reconnect.
    a.doc.getText('text').insert(0, `offline-a${round} `);
    server = await startServerProcess(t, args);
    await waitSettled([a, b], 30_000);
    await waitConverged([a.doc, b.doc]);
  }
  const logged = await waitFor(async () => {
    const doc = await stateInLog(data, 'together');
    return doc.getText('text').toString() === a.doc.getText('text').toString() ? doc : null;
  }, { message: 'log holds what the clients show' });
  for (const round of [0, 1, 2]) {
    for (const word of [`a${round} `, `b${round} `, `offline-a${round} `]) {
      assert.ok(logged.getText('text').toString().includes(word), `"${word}" is in the log`);
    }
  }
});
