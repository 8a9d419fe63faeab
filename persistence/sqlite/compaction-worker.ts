// Worker thread for the server's background work on the file, with its own
// read connection, so neither stalls the event loop that serves sockets:
//   - building snapshots (replaying a big document is slow): it only reads,
//     and the store writes the result on its own connection, so the worker
//     never holds the write lock an append would wait for;
//   - checkpoints (copying the WAL into the database file, with its fsyncs),
//     which SQLite would otherwise run inside an append's commit.
// Messages in: { doc } | { checkpoint: true } | { close: true }.
// Messages out: { ready } once, then { doc, snapshot } | { doc, error } | { checkpoint: { busy, log, checkpointed } | { error } }.

import { parentPort, workerData } from 'node:worker_threads';
import { CompactionCache } from '../compaction-policy.js';
import { buildSnapshot } from './compaction.js';
import { openDatabase, reason, type SynchronousMode } from './database.js';

export interface CompactionWorkerData {
  path: string;
  synchronous: SynchronousMode;
}

export type WorkerRequest = { doc: string } | { checkpoint: true } | { close: true };

const config = workerData as CompactionWorkerData;
const open = openDatabase({ path: config.path, synchronous: config.synchronous });
// Busy documents are compacted again and again: keep their last state here.
const cache = new CompactionCache(16 * 1024 * 1024);

parentPort?.on('message', (message: WorkerRequest) => {
  if ('close' in message) {
    open.db.close();
    parentPort?.close();
    return;
  }
  if ('checkpoint' in message) {
    try {
      // PASSIVE: copies what it can without waiting for (or blocking) the writer.
      const [result] = open.db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
      parentPort?.postMessage({ checkpoint: result });
    } catch (error) {
      parentPort?.postMessage({ checkpoint: { error: reason(error) } });
    }
    return;
  }
  try {
    parentPort?.postMessage({ doc: message.doc, snapshot: buildSnapshot(open, message.doc, cache) });
  } catch (error) {
    parentPort?.postMessage({ doc: message.doc, error: reason(error) });
  }
});

parentPort?.postMessage({ ready: true });
