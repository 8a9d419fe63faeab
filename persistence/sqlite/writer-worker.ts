// Worker thread that commits the server's appends, so a commit and its fsync
// never hold the event loop that delivers every document's updates. The store
// on the main thread decides everything (which part of each update the log
// lacks, the seq of each entry) and sends one batch at a time; this thread
// writes it in one IMMEDIATE transaction on its own connection, after checking
// that each document's log still ends where the main thread thought (another
// process may have appended to the file meanwhile: then nothing is written and
// the main thread reads the file again and retries).
// It also writes the snapshots the compaction worker builds and runs the small
// checkpoint that lets the WAL start over, so the main thread never waits for
// the write lock of this connection.
// Messages in: { batch } | { snapshot, policy } | { checkpoint: true } | { close: true }.
// Messages out: { ready } once, then { batch: { docIds } | { conflict } | { error } } | { snapshot: { result } | { error } }.

import { parentPort, workerData } from 'node:worker_threads';
import type { BuiltSnapshot, CompactionPolicy } from '../compaction-policy.js';
import { writeSnapshot } from './compaction.js';
import { openDatabase, reason, type SynchronousMode } from './database.js';

export interface WriterWorkerData {
  path: string;
  synchronous: SynchronousMode;
  busyTimeoutMs: number;
  /** WAL pages past which SQLite checkpoints at commit (a backstop; checkpoints normally run on the compaction worker). */
  autocheckpointPages: number;
}

/** A document the batch appends to: its log ends at `seqBefore` now and at `lastSeq` after the batch. */
export interface WriterDocument {
  name: string;
  /** -1: the main thread found no row for it (the writer creates it). */
  docId: number;
  seqBefore: number;
  lastSeq: number;
}

export interface WriterRow {
  doc: string;
  seq: number;
  receivedAt: number;
  instanceId: string;
  user: string | null;
  size: number;
  update: Uint8Array;
  displayName: string | null;
}

export interface WriterBatch {
  documents: WriterDocument[];
  rows: WriterRow[];
}

export type WriterRequest =
  | { batch: WriterBatch }
  | { snapshot: BuiltSnapshot; policy: CompactionPolicy }
  | { checkpoint: true }
  | { close: true };

export type WriterReply =
  | { ready: true }
  | { batch: { docIds: Array<[string, number]> } | { conflict: string[] } | { error: string } }
  | { snapshot: { result: ReturnType<typeof writeSnapshot> } | { error: string } };

class Conflict extends Error {
  constructor(readonly documents: string[]) {
    super('another connection appended to these documents');
  }
}

const config = workerData as WriterWorkerData;
const open = openDatabase({ path: config.path, synchronous: config.synchronous, busyTimeoutMs: config.busyTimeoutMs });
open.db.pragma(`wal_autocheckpoint = ${config.autocheckpointPages}`);
const { statements } = open;

const writeBatch = open.db.transaction((batch: WriterBatch): Array<[string, number]> => {
  const ids = new Map<string, number>();
  const conflicts: string[] = [];
  for (const document of batch.documents) {
    let row = statements.documentByName.get(document.name);
    if (row === undefined && document.seqBefore === 0) {
      statements.insertDocument.run(document.name, Date.now());
      row = statements.documentByName.get(document.name);
    }
    if (row === undefined || row.last_seq !== document.seqBefore || (document.docId !== -1 && row.id !== document.docId)) {
      conflicts.push(document.name);
      continue;
    }
    ids.set(document.name, row.id);
  }
  if (conflicts.length > 0) throw new Conflict(conflicts);
  for (const row of batch.rows) {
    statements.insertUpdate.run(ids.get(row.doc)!, row.seq, row.receivedAt, row.instanceId, row.user, row.size, row.update, row.displayName);
  }
  const changeId = statements.lastChangeId.get()! + 1;
  for (const document of batch.documents) statements.setLastSeq.run(document.lastSeq, changeId, ids.get(document.name)!);
  return [...ids];
});

parentPort?.on('message', (message: WriterRequest) => {
  if ('close' in message) {
    open.db.close();
    parentPort?.close();
    return;
  }
  if ('checkpoint' in message) {
    try {
      open.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // Busy (another process is checkpointing): the next round tries again.
    }
    return;
  }
  if ('snapshot' in message) {
    try {
      parentPort?.postMessage({ snapshot: { result: writeSnapshot(open, message.snapshot, message.policy) } } satisfies WriterReply);
    } catch (error) {
      parentPort?.postMessage({ snapshot: { error: reason(error) } } satisfies WriterReply);
    }
    return;
  }
  try {
    parentPort?.postMessage({ batch: { docIds: writeBatch.immediate(message.batch) } } satisfies WriterReply);
  } catch (error) {
    const reply = error instanceof Conflict ? { conflict: error.documents } : { error: reason(error) };
    parentPort?.postMessage({ batch: reply } satisfies WriterReply);
  }
});

parentPort?.postMessage({ ready: true } satisfies WriterReply);
