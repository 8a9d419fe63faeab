// The server's store (background: true) leaves WAL checkpoints to its worker
// thread, which cannot reset the WAL while appends keep coming; the store
// finishes each round itself. The WAL must stay small under steady load.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { tempDir } from './helpers/temp.js';

const meta = { instanceId: 'test', user: null };

/** One small real update per call, for `docs` documents typing in parallel. */
function typists(docs: number): () => Array<{ doc: string; update: Uint8Array }> {
  const ydocs = Array.from({ length: docs }, () => new Y.Doc());
  return () => ydocs.map((ydoc, i) => {
    let update: Uint8Array | null = null;
    ydoc.once('update', (u: Uint8Array) => { update = u; });
    ydoc.getText('t').insert(0, 'x');
    return { doc: `doc-${i}`, update: update! };
  });
}

test('with checkpoints on the worker, the WAL is still reset and stays small under a steady stream of appends', async (t) => {
  const path = join(tempDir(t), 'checkpoints.db');
  const store = openEventStore({ path, background: true, compactAfterEntries: 0, compactAfterBytes: 0 });
  t.after(() => store.close());
  const next = typists(10);
  await store.compactionsIdle(); // the worker is up
  // About 12 WAL pages per batch: 3,000 batches write some 36,000 pages
  // (140 MiB), so a WAL that is never reset would grow far past the bound.
  let largestWal = 0;
  for (let batch = 0; batch < 3000; batch++) {
    await Promise.all(next().map(({ doc, update }) => store.append(doc, update, meta)));
    if (batch % 100 === 99) largestWal = Math.max(largestWal, statSync(`${path}-wal`).size);
  }
  // Each round lets the WAL reach one to three thousand pages before it starts
  // over; without the rounds it would reach SQLite's backstop, 10,000 pages.
  const bound = 6000 * 4096;
  assert.ok(largestWal < bound, `the WAL grew to ${largestWal} bytes, more than ${bound}: it is not being reset`);
  assert.equal((await store.info('doc-0'))?.seq, 3000);
});

test('large updates count by their size: the WAL stays small when each append is tens of KiB', async (t) => {
  const path = join(tempDir(t), 'large.db');
  const store = openEventStore({ path, background: true, compactAfterEntries: 0, compactAfterBytes: 0 });
  t.after(() => store.close());
  const ydoc = new Y.Doc();
  await store.compactionsIdle(); // the worker is up
  let largestWal = 0;
  // 1,000 appends of 60 KiB: about 15,000 pages of log, past the backstop.
  for (let i = 0; i < 1000; i++) {
    let update: Uint8Array | null = null;
    ydoc.once('update', (u: Uint8Array) => { update = u; });
    ydoc.getText('t').insert(0, String(i % 10).repeat(60 * 1024));
    await store.append('large', update!, meta);
    if (i % 50 === 49) largestWal = Math.max(largestWal, statSync(`${path}-wal`).size);
  }
  // Counted as 3 pages each, they would let the WAL reach about 5,000 pages per round.
  const bound = 3000 * 4096;
  assert.ok(largestWal < bound, `the WAL grew to ${largestWal} bytes, more than ${bound}`);
});
