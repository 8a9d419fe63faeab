// Opening the SQLite file: pragmas, migrations and the statements every user
// of the file (the store on the main thread and the compaction worker)
// prepares once.
//
// WAL lets readers (history, export, several instances) work beside the one
// writer. `synchronous` decides what a commit survives; see the README:
//   FULL   - the WAL is fsynced at every commit: an acknowledged update
//            survives a process crash and a power cut. (default)
//   NORMAL - fsync only at checkpoints: survives a process crash (SIGKILL),
//            a power cut can lose the last commits.
//   OFF    - no fsync: survives a process crash only.

import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { migrate, SCHEMA_VERSION } from './schema.js';

export type SynchronousMode = 'off' | 'normal' | 'full' | 'extra';

export interface OpenOptions {
  path: string;
  synchronous?: SynchronousMode;
  readonly?: boolean;
  busyTimeoutMs?: number;
}

export interface Statements {
  /** Changes whenever another connection commits (see the SQLite docs of PRAGMA data_version). */
  dataVersion: Statement<[], number>;
  insertDocument: Statement<[string, number]>;
  documentByName: Statement<[string], { id: number; last_seq: number } | undefined>;
  setLastSeq: Statement<[number, number, number]>;
  lastChangeId: Statement<[], number>;
  changedSince: Statement<[number], { name: string; last_seq: number; change_id: number }>;
  insertUpdate: Statement<[
    number, number, number, string, string | null, number, Uint8Array, string | null,
    number, number, Uint8Array, number | null, string | null, string | null, number | null, number | null,
  ]>;
  groupLink: Statement<[number, number], {
    seq: number; received_at: number; group_start: number | null; group_user: string | null; group_name: string | null;
    group_added: number | null; group_removed: number | null;
  } | undefined>;
  updatesAfter: Statement<[number, number], { seq: number; update_bytes: Uint8Array }>;
  updatesBetween: Statement<[number, number, number], { seq: number; update_bytes: Uint8Array }>;
  entriesAfter: Statement<[number, number, number], {
    seq: number; received_at: number; instance_id: string; user: string | null; display_name: string | null; size: number; update_bytes: Uint8Array;
  }>;
  seqAtTime: Statement<[number, number], { seq: number | null }>;
  upsertVersionName: Statement<[number, number, string, string | null, number, number | null, string | null]>;
  versionNames: Statement<[number], {
    seq: number; name: string; user: string | null; created_at: number; restored_from: number | null; display_name: string | null;
  }>;
  latestSnapshotAtOrBefore: Statement<[number, number], { seq: number; state: Uint8Array; coverage: Uint8Array } | undefined>;
  insertSnapshot: Statement<[number, number, number, Uint8Array, Uint8Array]>;
  snapshotsOf: Statement<[number], { seq: number; created_at: number; size: number }>;
  snapshotBefore: Statement<[number, number], { seq: number } | undefined>;
  snapshotInSpanBefore: Statement<[number, number, number], { seq: number } | undefined>;
  deleteSnapshot: Statement<[number, number]>;
  snapshotRows: Statement<[number], { seq: number; created_at: number; state: Uint8Array; coverage: Uint8Array }>;
  insertSnapshotAt: Statement<[number, number, number, Uint8Array, Uint8Array]>;
  pruneUpdatesUpTo: Statement<[number, number]>;
  countAfter: Statement<[number, number], { n: number; bytes: number | null }>;
  firstRetained: Statement<[number], { seq: number | null }>;
  lastReceived: Statement<[number], { at: number | null }>;
  documentNames: Statement<[], { name: string }>;
}

export interface OpenDatabase {
  db: SqliteDatabase;
  statements: Statements;
  path: string;
}

/**
 * Creates the missing folders of `folder` one level at a time. Node's
 * recursive mkdirSync never returns under some pseudo-filesystems (/proc), so
 * each level is checked here: an existing non-folder, or a level that cannot
 * be created, fails at once with the path.
 */
function createFolders(folder: string): void {
  let stat;
  try {
    stat = statSync(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const parent = dirname(folder);
    if (parent !== folder) createFolders(parent);
    mkdirSync(folder);
    return;
  }
  if (!stat.isDirectory()) throw new Error(`${folder} exists and is not a folder`);
}

export function openDatabase(options: OpenOptions): OpenDatabase {
  const { path } = options;
  let db: SqliteDatabase;
  try {
    if (!options.readonly && path !== ':memory:') createFolders(dirname(resolve(path)));
    db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  } catch (error) {
    throw new StoreError('STORE_OPEN_FAILED', `cannot open the database ${path}: ${reason(error)}`, { cause: error });
  }
  try {
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    if (!options.readonly) {
      const setUp = db;
      retryWhileBusy(() => {
        setUp.pragma('journal_mode = WAL');
        migrate(setUp, path);
      }, busyTimeoutMs);
    }
    if (options.readonly) {
      // Read-only handles cannot migrate, and the statements below need the current schema.
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version < SCHEMA_VERSION) {
        throw new StoreError('STORE_OPEN_FAILED',
          `${path} has schema version ${version}; open it read-write once (palimpsest serve, compact or verify) to upgrade it to ${SCHEMA_VERSION}`);
      }
    }
    db.pragma(`synchronous = ${(options.synchronous ?? 'full').toUpperCase()}`);
    db.pragma('foreign_keys = ON');
    return { db, statements: prepareStatements(db), path };
  } catch (error) {
    db.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('STORE_OPEN_FAILED',
      `cannot use the database ${path}: ${reason(error)} (is it a Palimpsest database, writable, and not corrupt?)`,
      { cause: error });
  }
}

function prepareStatements(db: SqliteDatabase): Statements {
  return {
    dataVersion: db.prepare('PRAGMA data_version').pluck(),
    insertDocument: db.prepare('INSERT OR IGNORE INTO documents (name, created_at) VALUES (?, ?)'),
    documentByName: db.prepare('SELECT id, last_seq FROM documents WHERE name = ?'),
    setLastSeq: db.prepare('UPDATE documents SET last_seq = ?, change_id = ? WHERE id = ?'),
    lastChangeId: db.prepare('SELECT coalesce(max(change_id), 0) FROM documents').pluck(),
    changedSince: db.prepare('SELECT name, last_seq, change_id FROM documents WHERE change_id > ? ORDER BY change_id'),
    insertUpdate: db.prepare(
      `INSERT INTO updates (doc_id, seq, received_at, instance_id, user, size, update_bytes, display_name,
         added, removed, created, group_start, group_user, group_name, group_added, group_removed)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    groupLink: db.prepare(
      `SELECT seq, received_at, group_start, group_user, group_name, group_added, group_removed FROM updates
       WHERE doc_id = ? AND seq = ?`),
    updatesAfter: db.prepare('SELECT seq, update_bytes FROM updates WHERE doc_id = ? AND seq > ? ORDER BY seq'),
    updatesBetween: db.prepare(
      'SELECT seq, update_bytes FROM updates WHERE doc_id = ? AND seq > ? AND seq <= ? ORDER BY seq'),
    entriesAfter: db.prepare(
      `SELECT seq, received_at, instance_id, user, display_name, size, update_bytes FROM updates
       WHERE doc_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
    seqAtTime: db.prepare('SELECT max(seq) AS seq FROM updates WHERE doc_id = ? AND received_at <= ?'),
    upsertVersionName: db.prepare(
      `INSERT INTO version_names (doc_id, seq, name, user, created_at, restored_from, display_name) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (doc_id, seq) DO UPDATE SET name = excluded.name, user = excluded.user, created_at = excluded.created_at,
         display_name = excluded.display_name,
         restored_from = coalesce(excluded.restored_from, version_names.restored_from)`),
    versionNames: db.prepare('SELECT seq, name, user, created_at, restored_from, display_name FROM version_names WHERE doc_id = ? ORDER BY seq'),
    latestSnapshotAtOrBefore: db.prepare(
      'SELECT seq, state, coverage FROM snapshots WHERE doc_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1'),
    insertSnapshot: db.prepare(
      'INSERT OR IGNORE INTO snapshots (doc_id, seq, created_at, state, coverage) VALUES (?, ?, ?, ?, ?)'),
    snapshotsOf: db.prepare(
      'SELECT seq, created_at, length(state) AS size FROM snapshots WHERE doc_id = ? ORDER BY seq'),
    snapshotRows: db.prepare('SELECT seq, created_at, state, coverage FROM snapshots WHERE doc_id = ? ORDER BY seq'),
    insertSnapshotAt: db.prepare(
      'INSERT OR IGNORE INTO snapshots (doc_id, seq, created_at, state, coverage) VALUES (?, ?, ?, ?, ?)'),
    snapshotBefore: db.prepare('SELECT seq FROM snapshots WHERE doc_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1'),
    snapshotInSpanBefore: db.prepare('SELECT seq FROM snapshots WHERE doc_id = ? AND seq >= ? AND seq < ? LIMIT 1'),
    deleteSnapshot: db.prepare('DELETE FROM snapshots WHERE doc_id = ? AND seq = ?'),
    pruneUpdatesUpTo: db.prepare('DELETE FROM updates WHERE doc_id = ? AND seq <= ?'),
    countAfter: db.prepare('SELECT count(*) AS n, sum(size) AS bytes FROM updates WHERE doc_id = ? AND seq > ?'),
    firstRetained: db.prepare('SELECT min(seq) AS seq FROM updates WHERE doc_id = ?'),
    // The last entry's time (entries get their times in seq order) from the primary key, not a scan of the log.
    lastReceived: db.prepare('SELECT received_at AS at FROM updates WHERE doc_id = ? ORDER BY seq DESC LIMIT 1'),
    documentNames: db.prepare('SELECT name FROM documents ORDER BY name'),
  } as Statements;
}

/**
 * Switching a new file to WAL takes an exclusive lock for which SQLite does
 * not wait, so instances starting together on a new file retry it here (for
 * at most the busy timeout). Start-up only: blocking briefly is fine.
 */
function retryWhileBusy(step: () => void, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      step();
      return;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if ((code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') || Date.now() > deadline) throw error;
      Atomics.wait(pause, 0, 0, 10 + Math.random() * 40);
    }
  }
}

export function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
