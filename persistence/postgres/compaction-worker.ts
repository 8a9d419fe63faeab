// Worker thread for the server's compactions on PostgreSQL: replaying a big
// document is slow, and the event loop that serves sockets must not wait for
// it. The worker has its own small pool and writes the snapshot itself (the
// advisory lock, not a single writer, keeps compactions of one document apart).
// Messages in: { doc } | { close: true }. Out: { ready } once, then { doc, result } | { doc, error }.

import { parentPort, workerData } from 'node:worker_threads';
import { CompactionCache, type CompactionPolicy } from '../compaction-policy.js';
import { compactDocument } from './compaction.js';
import { createPool, reason } from './connection.js';

export interface PostgresCompactionWorkerData {
  url: string;
  policy: CompactionPolicy;
  lockTimeoutMs: number;
}

export type PostgresWorkerRequest = { doc: string } | { close: true };

const config = workerData as PostgresCompactionWorkerData;
// A lost connection fails the compaction running on it (reported to the
// store), or surfaces on the next one: nothing more to do when it breaks.
const pool = createPool({
  url: config.url, max: 1, lockTimeoutMs: config.lockTimeoutMs, applicationName: 'palimpsest-compaction', onConnectionLost: () => undefined,
});
// Busy documents are compacted again and again: keep their last state here.
const cache = new CompactionCache(16 * 1024 * 1024);

parentPort?.on('message', (message: PostgresWorkerRequest) => {
  if ('close' in message) {
    void pool.end().finally(() => parentPort?.close());
    return;
  }
  compactDocument(pool, message.doc, config.policy, cache).then(
    (result) => parentPort?.postMessage({ doc: message.doc, result }),
    (error: unknown) => parentPort?.postMessage({ doc: message.doc, error: reason(error) }),
  );
});

parentPort?.postMessage({ ready: true });
