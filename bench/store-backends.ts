// Appends through the event store on each backend, on this machine: SQLite
// (synchronous full) and a PostgreSQL the bench starts itself (fsync on,
// synchronous_commit on, loopback TCP). A real editing trace, appended one at
// a time (each awaited: one commit per update) and in bursts of 25 (grouped
// into one transaction), then a history read. Run: npm run build:server &&
// node dist/bench/store-backends.js

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEventStore } from '../persistence/index.js';
import { startPostgres } from '../test/helpers/postgres-process.js';
import { loadTrace, traceUpdates } from '../test/helpers/traces.js';

const teardowns: Array<() => Promise<void>> = [];
const meta = { instanceId: 'bench', user: null };
const { updates } = traceUpdates(loadTrace('seph-blog1'), 3000);

async function measure(label: string, data: string): Promise<void> {
  const store = openEventStore({ data, compactAfterEntries: 0, compactAfterBytes: 0 });
  await store.opened();
  let started = performance.now();
  for (const update of updates.slice(0, 500)) await store.append('one-at-a-time', update, meta);
  const oneMs = (performance.now() - started) / 500;
  started = performance.now();
  for (let i = 0; i < updates.length; i += 25) {
    await Promise.all(updates.slice(i, i + 25).map((update) => store.append('bursts', update, meta)));
  }
  const perSecond = updates.length / ((performance.now() - started) / 1000);
  started = performance.now();
  await store.stateAt('bursts', 2000);
  const historyMs = performance.now() - started;
  await store.close();
  console.log(`${label}: one append at a time ${oneMs.toFixed(2)} ms each; bursts of 25 ${perSecond.toFixed(0)} appends/s; ` +
    `stateAt(2000) with no snapshot ${historyMs.toFixed(0)} ms`);
}

const dir = mkdtempSync(join(tmpdir(), 'palimpsest-bench-'));
try {
  await measure('sqlite (synchronous full)', join(dir, 'bench.db'));
  const postgres = await startPostgres({ after: (fn) => teardowns.push(fn) }, { fsync: true });
  await measure('postgresql (fsync on, synchronous_commit on, loopback)', await postgres.createDatabase());
} finally {
  for (const teardown of teardowns.reverse()) await teardown();
  rmSync(dir, { recursive: true, force: true });
}
