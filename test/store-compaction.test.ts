// Background compaction on the worker thread: snapshots of a busy document
// are built from the previous compaction's state plus the new entries, and
// every one of them must still equal the log replayed from the start.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { tempDir } from './helpers/temp.js';
import { loadTrace, traceUpdates } from './helpers/traces.js';

test('snapshots written one after another in the background all agree with the log', async (t) => {
  const store = openEventStore({ path: join(tempDir(t), 'background.db'), compactAfterEntries: 200, keepSnapshotsEvery: 0, background: true });
  t.after(() => store.close());
  const { updates, texts } = traceUpdates(loadTrace('friendsforever_flat'), 4000);
  for (let i = 0; i < updates.length; i += 50) {
    await Promise.all(updates.slice(i, i + 50).map((u) => store.append('busy', u, { instanceId: 'test', user: null })));
    // Let the worker keep up now and then, so successive compactions build on each other.
    if (i % 1000 === 0) await store.compactionsIdle();
  }
  await store.compactionsIdle();
  const info = await store.info('busy');
  assert.ok((info?.snapshots.length ?? 0) >= 8, `expected many snapshots, got ${info?.snapshots.length}`);
  const report = await store.verify();
  assert.deepEqual(report.problems, []);
  for (const snapshot of info!.snapshots) {
    const doc = new Y.Doc();
    Y.applyUpdate(doc, (await store.stateAt('busy', snapshot.seq)).update);
    assert.equal(doc.getText('text').toString(), texts[snapshot.seq - 1], `snapshot at ${snapshot.seq}`);
  }
});
