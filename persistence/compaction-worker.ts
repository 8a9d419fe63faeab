// Worker thread that runs compactions for the server with its own database
// connection, so replaying a big document never blocks the event loop that
// serves sockets. Messages in: { doc }. Messages out: { doc, result } or
// { doc, error }.

import { parentPort, workerData } from 'node:worker_threads';
import { CompactionCache, compactDocument, type RetentionPolicy } from './compaction.js';
import { openDatabase, reason, type SynchronousMode } from './sqlite-database.js';

export interface CompactionWorkerData {
  path: string;
  synchronous: SynchronousMode;
  retention: RetentionPolicy;
}

const config = workerData as CompactionWorkerData;
const open = openDatabase({ path: config.path, synchronous: config.synchronous });
// Busy documents are compacted again and again: keep their last state here.
const cache = new CompactionCache(16 * 1024 * 1024);

parentPort?.on('message', (message: { doc: string } | { close: true }) => {
  if ('close' in message) {
    open.db.close();
    parentPort?.close();
    return;
  }
  try {
    parentPort?.postMessage({ doc: message.doc, result: compactDocument(open, message.doc, config.retention, cache) });
  } catch (error) {
    parentPort?.postMessage({ doc: message.doc, error: reason(error) });
  }
});
