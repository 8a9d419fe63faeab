// The persistence package's one public entry: the server and the CLI import
// from here and nowhere else in persistence/. openEventStore picks the backend
// from where the data lives: a file path is SQLite (sqlite/), a postgres:// or
// postgresql:// URL is PostgreSQL (postgres/); both keep the EventStore contract.

export type {
  AlreadyDeleted, AppendMeta, AuthorshipBlockRecord, AppendOptions, AppendResult, ChangesSince, CompactionResult, DocumentChange, DocumentInfo, DocumentState,
  FeedEntry, FeedPage, StateRecord,
  EntrySummary, EventStore, LoadedDocument, SummaryQuery, LogEntry, LogTransfer, SnapshotInfo, SnapshotRecord, VerifyProblem, VerifyReport, VersionName,
} from './event-store.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export { MalformedUpdateError, checkUpdate, type DecodedUpdate } from './coverage.js';
export type { RetentionPolicy } from './compaction-policy.js';
export type { SynchronousMode } from './sqlite/database.js';
export type { SqliteEventStoreOptions } from './sqlite/event-store.js';
export type { PostgresEventStoreOptions } from './postgres/event-store.js';
export { STORED_GROUP_PAUSE_MS, authorKey, createdRanges, type StoredGroup } from './entry-facts.js';
export { computeRestoreUpdate } from './restore.js';
export { copyStore, type CopyProgress, type CopyReport } from './copy.js';
export { isPostgresUrl, parsePostgresUrl } from './postgres/url.js';

import type { EventStore, LogTransfer } from './event-store.js';
import { openPostgresEventStore, type PostgresEventStoreOptions } from './postgres/event-store.js';
import { isPostgresUrl } from './postgres/url.js';
import { openSqliteEventStore, type SqliteEventStoreOptions } from './sqlite/event-store.js';

/** An open store, as openEventStore returns it. */
export interface OpenedEventStore extends EventStore, LogTransfer {
  readonly backend: 'sqlite' | 'postgres';
  /** Where the data lives: the file path, or the URL without its password. */
  readonly path: string;
  /**
   * Resolves once the store can be used (connected, schema migrated); rejects
   * with a StoreError STORE_OPEN_FAILED naming the file or host and the cause.
   * A SQLite store is ready when it is returned.
   */
  opened(): Promise<void>;
  /** Resolves once no background compaction is queued or running. */
  compactionsIdle(): Promise<void>;
}

/** Options of either backend; those that do not apply to the chosen one are ignored. */
export type EventStoreOptions = Omit<SqliteEventStoreOptions, 'path'> & Omit<PostgresEventStoreOptions, 'url'> & (
  /** A SQLite path or a PostgreSQL URL (the --data value). */
  | { data: string; path?: never }
  /** A SQLite path. */
  | { path: string; data?: never }
);

/**
 * Opens the event store behind `data` (or `path`): a postgres:// or
 * postgresql:// URL opens PostgreSQL, anything else is a SQLite file. Opening
 * SQLite throws a StoreError at once when the file cannot be used; PostgreSQL
 * connects in the background: await opened() to learn whether it could.
 */
export function openEventStore(options: EventStoreOptions): OpenedEventStore {
  const data = options.data ?? options.path;
  const rest = { ...options, data: undefined, path: undefined };
  if (isPostgresUrl(data)) return openPostgresEventStore({ ...rest, url: data });
  return openSqliteEventStore({ ...rest, path: data });
}
