// Webhook delivery state is written one write after another: a write asked
// for while another is in flight waits for it, so an older write can never
// commit after a newer one (which would leave a document's record behind a
// newer cursor). A real SQLite store whose writeState the test can hold open.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { createWebhooks } from '../server/webhooks.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

function update(text: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('text').insert(0, text);
  return Y.encodeStateAsUpdate(doc);
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test('a webhook state write asked for while another is in flight starts only once that one has settled', async (t) => {
  const store = openEventStore({ data: join(tempDir(t), 'writes.db') });
  t.after(() => store.close());

  // Every state write is counted; `hold` keeps the next one open until released.
  let inFlight = 0;
  let mostInFlight = 0;
  let started = 0;
  let hold: { release: () => void; held: boolean } | null = null;
  const writeState = store.writeState.bind(store);
  store.writeState = async (changes) => {
    started++;
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    try {
      if (hold !== null && !hold.held) {
        const gate = hold;
        await new Promise<void>((resolve) => {
          gate.release = resolve;
          gate.held = true;
        });
      }
      await writeState(changes);
    } finally {
      inFlight--;
    }
  };
  // The event for a document is built from its entries: this says when that read is done.
  const read = new Set<string>();
  const entries = store.entries.bind(store);
  store.entries = async (doc, options) => {
    const result = await entries(doc, options);
    read.add(doc);
    return result;
  };

  const accepted: string[] = [];
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      accepted.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { doc: string } }).data.doc);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    receiver.closeAllConnections();
    receiver.close(() => resolve());
  }));

  const webhooks = createWebhooks({
    store,
    config: {
      urls: [`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`], secret: randomBytes(32),
      coalesceMs: 0, timeoutMs: 5000, retryBaseMs: 20, retryCapMs: 200, retryTotalMs: 60_000,
    },
    instanceId: 'one',
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
  });
  t.after(() => webhooks.close());
  webhooks.start();

  await store.append('writes/a', update('a'), { instanceId: 'one', user: null });
  webhooks.wake(new Set(['writes/a']));
  await waitFor(() => accepted.includes('writes/a'), { message: 'the event for writes/a accepted' });

  // The confirmation of that event is written lazily: that write is held open.
  const gate = { release: () => undefined, held: false };
  hold = gate;
  await waitFor(() => gate.held, { message: 'the confirmation write started (and is held)' });
  const beforeB = started;

  // A change to another document: its event is built, and written before it is sent.
  await store.append('writes/b', update('b'), { instanceId: 'one', user: null });
  webhooks.wake(new Set(['writes/b']));
  await waitFor(() => read.has('writes/b'), { message: 'the event for writes/b built' });
  // The write asked for then would start within these turns.
  for (let i = 0; i < 5; i++) await nextTurn();
  assert.equal(mostInFlight, 1, 'no state write started while another was in flight');
  assert.equal(started, beforeB, 'the write for writes/b waits for the held one');

  gate.release();
  await waitFor(() => accepted.includes('writes/b'), { message: 'the event for writes/b accepted once the held write settled' });
  assert.ok(started > beforeB, 'the write asked for meanwhile was made');
  assert.equal(mostInFlight, 1, 'no state write started while another was in flight');
  await webhooks.close();

  // What the store holds after close: both documents confirmed.
  const records = await store.readState('webhook/');
  const delivered = records.filter((r) => r.key.includes('/doc/')).map((r) => (JSON.parse(r.value) as { delivered: number }).delivered);
  assert.deepEqual(delivered, [1, 1], 'both confirmations are in the store');
});
