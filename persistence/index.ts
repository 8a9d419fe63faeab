// The persistence package's one public entry: the server and the CLI import
// from here and nowhere else in persistence/.

export type {
  AlreadyDeleted, AppendMeta, AppendOptions, AppendResult, CompactionResult, DocumentInfo, DocumentState, EventStore, LoadedDocument, LogEntry,
  SnapshotInfo, VerifyProblem, VerifyReport,
} from './event-store.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export { MalformedUpdateError, checkUpdate, type DecodedUpdate } from './coverage.js';
export type { RetentionPolicy } from './compaction.js';
export type { SynchronousMode } from './sqlite-database.js';
export type { SqliteEventStoreOptions } from './sqlite-event-store.js';
export { computeRestoreUpdate } from './restore.js';

import { openSqliteEventStore, type SqliteEventStoreOptions } from './sqlite-event-store.js';
import type { EventStore } from './event-store.js';

/** Opens the event store behind `path` (a SQLite file). */
export function openEventStore(options: SqliteEventStoreOptions): EventStore & { readonly path: string; compactionsIdle(): Promise<void> } {
  return openSqliteEventStore(options);
}
