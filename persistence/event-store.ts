// The event store contract: an append-only, per-document update log plus
// snapshots that cache its state. The server depends only on this interface,
// so another backend (PostgreSQL for instances on several hosts) can stand in
// for SQLite; test/store-contract.test.ts runs the same suite over a backend.
//
// Every method is async so that a networked backend fits the same shape.

import type { StoredGroup } from './entry-facts.js';

export interface AppendMeta {
  instanceId: string;
  user: string | null;
  /** The name the writing connection announced (token `name` claim, else its awareness `user.name`). */
  displayName?: string | null;
}

/** A name someone gave to the version of a document at `seq`. */
export interface VersionName {
  seq: number;
  name: string;
  /** Who named it (user id), null without authentication. */
  user: string | null;
  /** The name they go by (their token's name claim, else what their editor announced); null when neither was given. */
  displayName?: string | null;
  createdAt: Date;
  /** Set when a restore logged this entry: the seq whose state it brought back. */
  restoredFrom: number | null;
}

/**
 * Says whether the clock range [start, end) of a Yjs client is already
 * deleted in a copy of the document that holds only logged updates (the
 * server's live document). Such deletions need no entry: they either came in
 * logged updates or follow from logged structs (Yjs deletes the losing value
 * of two concurrent Y.Map sets locally, without a delete set entry).
 */
export type AlreadyDeleted = (client: number, start: number, end: number) => boolean;

export interface AppendOptions {
  alreadyDeleted?: AlreadyDeleted;
}

export interface AppendResult {
  /** The seq the entry got, or null when the log already held all of it. */
  seq: number | null;
  /** Bytes actually logged (0 when nothing was new). */
  size: number;
}

export interface LogEntry {
  seq: number;
  receivedAt: Date;
  instanceId: string;
  user: string | null;
  /** The display name recorded with the entry; null when none was announced (or logged before it was recorded). */
  displayName: string | null;
  size: number;
  update: Uint8Array;
}

/** A log entry as the history reads need it: its metadata and what entry-facts.ts stores with it, without the update. */
export interface EntrySummary {
  seq: number;
  receivedAt: Date;
  user: string | null;
  displayName: string | null;
  added: number;
  removed: number;
  /** The Yjs item ids it created (entry-facts.ts createdRanges); only when asked for (withCreated). */
  created: Uint8Array | null;
  /** Its version group at the default pause; null for entries logged before groups were stored. */
  group: StoredGroup | null;
}

/** Facts of the entries fromSeq..toSeq, packed by the server (server/authorship-index.ts). */
export interface AuthorshipBlockRecord {
  fromSeq: number;
  toSeq: number;
  data: Uint8Array;
}

export interface SummaryQuery {
  /** Seqs from fromSeq to toSeq, both included (default: the whole log). */
  fromSeq?: number;
  toSeq?: number;
  /** Only these seqs (instead of a range). */
  seqs?: number[];
  /** Newest first. */
  descending?: boolean;
  limit?: number;
  /** Only entries with a user or a display name. */
  authored?: boolean;
  withCreated?: boolean;
}

export interface DocumentState {
  doc: string;
  /** Highest seq folded into `update` (0 for an empty or unknown document). */
  seq: number;
  /** The state as one Yjs update. */
  update: Uint8Array;
}

/** What the server loads: the latest snapshot plus the log after it. */
export interface LoadedDocument {
  doc: string;
  seq: number;
  snapshot: { seq: number; state: Uint8Array } | null;
  tail: Uint8Array[];
}

export interface SnapshotInfo {
  seq: number;
  createdAt: Date;
  size: number;
}

export interface DocumentInfo {
  doc: string;
  seq: number;
  updatedAt: Date | null;
  snapshots: SnapshotInfo[];
  /** Lowest seq still in the log (retention may have dropped older entries). */
  firstRetainedSeq: number | null;
}

export interface CompactionResult {
  doc: string;
  seq: number;
  size: number;
  /** Log entries removed under the retention policy. */
  pruned: number;
}

export interface VerifyProblem {
  doc: string;
  seq: number | null;
  problem: string;
}

export interface VerifyReport {
  documents: number;
  entries: number;
  snapshots: number;
  problems: VerifyProblem[];
}

/** A document whose log grew, with its last seq then. */
export interface DocumentChange {
  doc: string;
  seq: number;
}

export interface ChangesSince {
  /** Pass to the next call. Opaque: its form depends on the backend. */
  cursor: string;
  changes: DocumentChange[];
}

/** A log entry as the all-documents feed gives it: with its document and its place in the feed. */
export interface FeedEntry extends LogEntry {
  doc: string;
  /** Pass as `after` to read on from just after this entry. Opaque: its form depends on the backend. */
  cursor: string;
}

export interface FeedPage {
  entries: FeedEntry[];
  /** Where the next read starts: the last entry's cursor, or the `after` given when there was none. */
  cursor: string | null;
}

export interface StateRecord {
  key: string;
  value: string;
}

export interface EventStore {
  /**
   * Appends a client update. Resolves once it is committed (the caller may
   * then acknowledge the client); rejects when it could not be written, in
   * which case nothing was logged and the client must resend. Concurrent
   * calls are grouped into one transaction.
   */
  append(doc: string, update: Uint8Array, meta: AppendMeta, options?: AppendOptions): Promise<AppendResult>;
  load(doc: string): Promise<LoadedDocument>;
  /** The state after `seq` (default: the latest). */
  stateAt(doc: string, seq?: number): Promise<DocumentState>;
  entries(doc: string, options?: { afterSeq?: number; limit?: number }): Promise<LogEntry[]>;
  /** Entries without their updates, with the facts stored beside them (for versions and authorship). */
  summaries(doc: string, query: SummaryQuery): Promise<EntrySummary[]>;
  /** Packed blocks of the authorship index whose fromSeq is at most `upToSeq`, by fromSeq (a cache the server fills). */
  authorshipBlocks(doc: string, upToSeq: number): Promise<AuthorshipBlockRecord[]>;
  /** Keeps a block unless one with its fromSeq exists already. */
  saveAuthorshipBlock(doc: string, block: AuthorshipBlockRecord): Promise<void>;
  /** Seqs from fromSeq to toSeq (both included) where a stored version group starts, newest first. */
  groupStarts(doc: string, query: { fromSeq: number; toSeq: number; limit: number }): Promise<number[]>;
  documents(): Promise<string[]>;
  /** The last seq whose entry was received at or before `at` (0 when none). */
  seqAtTime(doc: string, at: Date): Promise<number>;
  /** Names the version at `seq` (replacing an earlier name of that seq); UNKNOWN_SEQ when the document has no such seq. */
  nameVersion(doc: string, version: VersionName): Promise<void>;
  /** The document's named versions, by seq. */
  versionNames(doc: string): Promise<VersionName[]>;
  /**
   * The documents whose log grew after `cursor` (a value an earlier call
   * returned), in one query however many documents there are. With null:
   * no changes, only the cursor to start from. A document may be reported
   * more than once; callers compare seqs.
   */
  changesSince(cursor: string | null): Promise<ChangesSince>;
  /**
   * Every document's entries logged after `after` (null: from the first), in
   * feed order: an entry is never handed out behind a cursor already handed
   * out, however the transactions that wrote them interleave, so a reader that
   * resumes from the last cursor it saw misses nothing and sees nothing twice.
   * Entries retention pruned before they were read are not given.
   */
  feed(after: string | null, options?: { limit?: number }): Promise<FeedPage>;
  /**
   * Null when `cursor` may be one this store's feed handed out; otherwise why
   * it cannot be, in words that say what this backend's cursors look like:
   * not of their form, or past the end of the feed (a cursor of another or a
   * rebuilt store). feed() itself reads from the first entry after anything
   * it does not recognise; callers that take cursors from outside ask this
   * first.
   */
  feedCursorProblem(cursor: string): Promise<string | null>;
  /**
   * Small records the server keeps beside the log (webhook delivery
   * positions), as text under keys; those whose key starts with `prefix`.
   */
  readState(prefix: string): Promise<StateRecord[]>;
  /** Writes (value null: deletes) the records in one transaction: all or none. */
  writeState(changes: Array<{ key: string; value: string | null }>): Promise<void>;
  /**
   * Takes or renews the lease `name` for `holder` for `ttlMs`: true when
   * `holder` holds it now (it was free, expired, or already its own). One
   * holder at a time across every process on the store.
   */
  takeLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /**
   * Where the backend can tell (PostgreSQL's LISTEN/NOTIFY): calls `listener`
   * soon after another process has committed entries, and after a lost
   * notification channel is back. Returns the unsubscribe. Absent: poll
   * changesSince.
   */
  watchChanges?(listener: () => void): () => void;
  info(doc: string): Promise<DocumentInfo | null>;
  /** Writes a snapshot at the latest seq if it has none; null when there is nothing to do. */
  compact(doc: string): Promise<CompactionResult | null>;
  verify(options?: { onProgress?: (doc: string, index: number, total: number) => void }): Promise<VerifyReport>;
  /** False after a failed write or a lost connection, until a write or a probe succeeds. */
  healthy(): boolean;
  /** Why healthy() is false, in words for /readyz; null when healthy. */
  healthProblem?(): string | null;
  close(): Promise<void>;
}

/** A snapshot row as stored, for copying a store. */
export interface SnapshotRecord {
  seq: number;
  createdAt: Date;
  state: Uint8Array;
  coverage: Uint8Array;
}

/**
 * Rows as they are, without the coverage check: what `palimpsest copy` needs
 * to move a store to another backend with seqs, times, users and instances
 * intact. Not for the server: appends go through EventStore.append.
 */
export interface LogTransfer {
  snapshotRecords(doc: string): Promise<SnapshotRecord[]>;
  /** Writes the snapshot unless one at its seq exists. */
  importSnapshot(doc: string, snapshot: SnapshotRecord): Promise<void>;
  /**
   * In one transaction: logs the entries beyond the document's last seq (those
   * at or below it are taken as already copied) and raises its last seq to
   * `lastSeq`. Entries must follow on from the last seq without a gap, unless
   * the document's log is empty (the source's retention pruned its start).
   */
  importEntries(doc: string, entries: LogEntry[], lastSeq: number): Promise<void>;
}
