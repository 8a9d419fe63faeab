// The EventStore on one SQLite file (better-sqlite3). Several processes on one
// host may share the file: inside its write transaction, every batch reads
// PRAGMA data_version, and where another connection has committed since, reads
// what other processes logged, so each update is logged once.
//
// Appends are grouped: every append that arrives in one event-loop turn (and
// the next, see scheduleFlush) is written by one IMMEDIATE transaction, and
// each caller's promise settles when that transaction has committed and is on
// disk. In the server (background) under `full`, the fsync runs on the thread
// pool, not in the commit (wal-sync.ts): one fsync covers every commit made
// while the one before ran.

import { Worker } from 'node:worker_threads';
import type { Statement } from 'better-sqlite3';
import * as Y from 'yjs';
import type { BuiltSnapshot, CompactionPolicy, RetentionPolicy } from '../compaction-policy.js';
import {
  decodeCoverage, decodeUpdate, emptyCoverage, foldInto, MalformedUpdateError, uncoveredPart, type Coverage, type DecodedUpdate,
} from '../coverage.js';
import { StoreError } from '../errors.js';
import type {
  AlreadyDeleted, AppendMeta, AppendOptions, AuthorshipBlockRecord, AppendResult, ChangesSince, CompactionResult, DocumentInfo, DocumentState, EventStore,
  EntrySummary, FeedEntry, FeedPage, LoadedDocument, SummaryQuery, LogEntry, LogTransfer, SnapshotRecord, StateRecord, VerifyProblem, VerifyReport, VersionName,
} from '../event-store.js';
import { factsOf, nextGroup } from '../entry-facts.js';
import { replay } from '../replay.js';
import { LogVerifier } from '../verify.js';
import { compactDocument, writeSnapshot } from './compaction.js';
import type { CompactionWorkerData, WorkerRequest } from './compaction-worker.js';
import { openDatabase, reason, type OpenDatabase, type SynchronousMode } from './database.js';
import { WalSync } from './wal-sync.js';

interface FeedRow {
  pos: number; name: string; seq: number; received_at: number; instance_id: string; user: string | null; display_name: string | null;
  size: number; update_bytes: Uint8Array;
}

export interface SqliteEventStoreOptions {
  path: string;
  synchronous?: SynchronousMode;
  retention?: RetentionPolicy;
  /** Compact a document once this many entries follow its latest snapshot. 0 = never automatically. */
  compactAfterEntries?: number;
  /** … or once the entries after its latest snapshot reach this many bytes. */
  compactAfterBytes?: number;
  /** Older snapshots kept: the first in each span of this many seqs, besides the latest (0 = all). */
  keepSnapshotsEvery?: number;
  /**
   * Keep slow work off the event loop (the server): compactions and WAL
   * checkpoints run on a worker thread. Otherwise they run inline (CLI, tests).
   */
  background?: boolean;
  readonly?: boolean;
  /** How long a write waits for another process' write lock before failing. */
  busyTimeoutMs?: number;
  /**
   * Called once if an fsync of the WAL fails (background stores under `full`
   * or `extra`). The store fails every later append; its owner should stop:
   * what the kernel wrote of the file is unknown, and nothing unsynced was
   * acknowledged.
   */
  onSyncFailure?: (error: Error) => void;
  /** The WAL fsync the store calls (default fs.fdatasync); tests put delays and failures here. */
  syncFile?: (fd: number, done: (error: Error | null) => void) => void;
  /** Called when an automatic compaction ends or fails; for logs and metrics. */
  onCompaction?: (event: { doc: string; result?: CompactionResult | null; error?: string; durationMs: number }) => void;
}

/** What a WAL sync covers: taken when it begins. */
interface SyncMark {
  order: number;
  dataVersion: number;
  ownCommits: number;
}

interface PendingAppend {
  doc: string;
  update: DecodedUpdate;
  meta: AppendMeta;
  alreadyDeleted: AlreadyDeleted | undefined;
  resolve: (result: AppendResult) => void;
  reject: (error: Error) => void;
}

/**
 * What this process knows about a document's log. Trusted inside a write
 * while the file's data_version is still `checkedAt` (no other connection has
 * committed since); otherwise checked against the document row first.
 */
interface LogCursor {
  docId: number;
  lastSeq: number;
  coverage: Coverage;
  entriesSinceSnapshot: number;
  bytesSinceSnapshot: number;
  checkedAt: number;
}

/** A document touched by the batch being written, and its last seq before the batch. */
interface BatchCursor {
  cursor: LogCursor;
  seqBefore: number;
}

const CURSOR_CACHE_LIMIT = 2048;
/** Syncs of commits of appends the server's store runs at once (see flush). */
const MAX_SYNCS_RUNNING = 1;
/** SQLite's default page size, which the store keeps; for estimating WAL growth. */
const PAGE_SIZE = 4096;
/** Estimated WAL pages after which the worker checkpoints. */
const CHECKPOINT_AFTER_PAGES = 1000;
/** A WAL of this many frames, once the worker has copied it, is finished and reset from the store's connection. */
const RESET_WAL_AFTER_FRAMES = 1000;
/** With checkpoints on the worker, SQLite still checkpoints at commit past this many pages, should the worker fail. */
const INLINE_CHECKPOINT_BACKSTOP_PAGES = 10000;

type WorkerReply =
  | { ready: true }
  | { doc: string; snapshot?: BuiltSnapshot | null; error?: string }
  | { checkpoint: { busy: number; log: number; checkpointed: number } | { error: string } };

/** A summaries row: seq, received_at, user, display_name, added, removed, created, group columns, then update_bytes where a fact is missing. */
type SummaryRow = [
  number, number, string | null, string | null, number | null, number | null, Uint8Array | null,
  number | null, string | null, string | null, number | null, number | null, Uint8Array | null,
];

/** The feed position a feed cursor names (a whole number from 1, as the feed hands them out), or null when it is none. */
function feedPosition(cursor: string): number | null {
  if (!/^[1-9]\d*$/.test(cursor)) return null;
  const position = Number(cursor);
  return Number.isSafeInteger(position) ? position : null;
}

function summaryShape(query: SummaryQuery): string {
  return [query.seqs !== undefined, query.descending === true, query.authored === true, query.withCreated === true].join();
}

function summarySql(query: SummaryQuery): string {
  const created = query.withCreated === true ? 'created' : 'NULL';
  const missing = query.withCreated === true ? 'added IS NULL OR created IS NULL' : 'added IS NULL';
  return `SELECT seq, received_at, user, display_name, added, removed, ${created},
            group_start, group_user, group_name, group_added, group_removed, CASE WHEN ${missing} THEN update_bytes END
          FROM updates WHERE doc_id = ?
          ${query.seqs !== undefined ? 'AND seq IN (SELECT value FROM json_each(?))' : 'AND seq >= ? AND seq <= ?'}
          ${query.authored === true ? 'AND (user IS NOT NULL OR display_name IS NOT NULL)' : ''}
          ORDER BY seq ${query.descending === true ? 'DESC' : 'ASC'} LIMIT ?`;
}

function summaryOf(r: SummaryRow, withCreated: boolean): EntrySummary {
  const facts = r[12] === null ? null : factsOf(r[12]);
  return {
    seq: r[0], receivedAt: new Date(r[1]), user: r[2], displayName: r[3],
    added: r[4] ?? facts!.added, removed: r[5] ?? facts!.removed,
    created: withCreated ? r[6] ?? facts!.created : null,
    group: r[7] === null ? null : { start: r[7], user: r[8], displayName: r[9], added: r[10] ?? 0, removed: r[11] ?? 0 },
  };
}

export function openSqliteEventStore(options: SqliteEventStoreOptions): SqliteEventStore {
  return new SqliteEventStore(options);
}

export class SqliteEventStore implements EventStore, LogTransfer {
  readonly backend = 'sqlite' as const;
  private readonly open: OpenDatabase;
  private readonly options: Required<Omit<SqliteEventStoreOptions, 'onCompaction' | 'onSyncFailure' | 'syncFile'>> &
    Pick<SqliteEventStoreOptions, 'onCompaction' | 'onSyncFailure' | 'syncFile'>;
  /** Syncs the WAL off the event loop after commits (background stores under full or extra); null: SQLite syncs in the commit. */
  private readonly walSync: WalSync | null = null;
  /** Syncs running; at MAX_SYNCS_RUNNING, appends gather for the next commit. */
  private syncsRunning = 0;
  /** Settles when the latest sync, and every one before it, has ended. */
  private lastSync: Promise<void> = Promise.resolve();
  /** Commits this connection made (appends and every other write); data_version does not count them. */
  private ownCommits = 0;
  /**
   * What the newest sync covers, taken when it began: PRAGMA data_version
   * (which other connections' commits change) and ownCommits. `synced` is
   * the newest that has ended well: while both still match, everything
   * committed is on disk. `latest` is the newest begun, which a read that
   * finds nothing new since it began awaits rather than starting its own.
   */
  private synced: SyncMark | null = null;
  private latest: (SyncMark & { done: Promise<void> }) | null = null;
  private syncsBegun = 0;
  private readonly cursors = new Map<string, LogCursor>();
  private feedStatement: Statement<[number, number], FeedRow> | null = null;
  private lastFeedPositionStatement: Statement<[], { last: number | null }> | null = null;
  private readonly summaryStatements = new Map<string, Statement>();
  private blockStatements: {
    read: Statement<[number, number], { from_seq: number; to_seq: number; data: Uint8Array }>;
    save: Statement<[number, number, number, Uint8Array]>;
  } | null = null;
  private groupStartsStatement: Statement<[number, number, number, number], number> | null = null;
  private stateStatements: ReturnType<SqliteEventStore['prepareStateStatements']> | null = null;
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;
  private lastWriteFailed = false;
  private lastProbeAt = 0;
  private readonly writeBatch: (batch: PendingAppend[], touched: Map<string, BatchCursor>) => Array<AppendResult | MalformedUpdateError>;
  private worker: Worker | null = null;
  private readonly compactionQueue = new Set<string>();
  private compactionRunning: string | null = null;
  private compactionStartedAt = 0;
  private compactionIdleWaiters: Array<() => void> = [];
  /** Whether the worker has opened the file and takes requests. */
  private workerReady = false;
  private checkpointRunning = false;
  /** Estimated WAL pages written since the last checkpoint request. */
  private walPagesSinceCheckpoint = 0;

  constructor(options: SqliteEventStoreOptions) {
    this.options = {
      synchronous: 'full',
      retention: 'all',
      compactAfterEntries: 500,
      compactAfterBytes: 1024 * 1024,
      keepSnapshotsEvery: 2_000,
      background: false,
      readonly: false,
      busyTimeoutMs: 5000,
      // Options given as undefined keep their defaults.
      ...(Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as SqliteEventStoreOptions),
    };
    const { synchronous, background, readonly } = this.options;
    const syncOffLoop = background && !readonly && options.path !== ':memory:' && (synchronous === 'full' || synchronous === 'extra');
    this.open = openDatabase({
      path: options.path, synchronous: syncOffLoop ? 'normal' : synchronous, readonly, busyTimeoutMs: this.options.busyTimeoutMs,
    });
    if (syncOffLoop) {
      // SQLite's own name for the file (symbolic links resolved), as it names the WAL.
      const main = (this.open.db.pragma('database_list') as Array<{ name: string; file: string }>).find((d) => d.name === 'main');
      this.walSync = new WalSync(`${main?.file || this.open.path}-wal`, (error) => {
        this.lastWriteFailed = true;
        this.options.onSyncFailure?.(error);
      }, options.syncFile);
    }
    if (background && !readonly) {
      this.open.db.pragma(`wal_autocheckpoint = ${INLINE_CHECKPOINT_BACKSTOP_PAGES}`);
      // Started now: it takes a few hundred milliseconds to boot, and the WAL must not wait for that under load.
      this.compactionWorker();
    }
    const write = this.open.db.transaction((batch: PendingAppend[], touched: Map<string, BatchCursor>) => this.writeInTransaction(batch, touched));
    this.writeBatch = (batch, touched) => write.immediate(batch, touched);
  }

  private policy(): CompactionPolicy {
    return { retention: this.options.retention, keepSnapshotsEvery: this.options.keepSnapshotsEvery };
  }

  get path(): string {
    return this.open.path;
  }

  /** Opening the file happened in the constructor (which throws when it cannot be used). */
  async opened(): Promise<void> {
    return undefined;
  }

  /**
   * False after a failed write. A probe (take the write lock and release it,
   * at most once a second) lets the store report itself healthy again without
   * waiting for a client's write, which a server out of rotation never gets.
   */
  healthy(): boolean {
    if (this.closed || this.walSync?.failed) return false;
    if (this.lastWriteFailed && Date.now() - this.lastProbeAt >= 1000) {
      this.lastProbeAt = Date.now();
      this.probeWriteLock();
    }
    return !this.lastWriteFailed;
  }

  private probeWriteLock(): void {
    const { db } = this.open;
    const busyTimeout = db.pragma('busy_timeout', { simple: true }) as number;
    try {
      db.pragma('busy_timeout = 0');
      db.exec('BEGIN IMMEDIATE');
      db.exec('ROLLBACK');
      this.lastWriteFailed = false;
    } catch {
      this.lastWriteFailed = true; // still cannot write
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.pragma(`busy_timeout = ${busyTimeout}`);
    }
  }

  append(doc: string, update: Uint8Array, meta: AppendMeta, options: AppendOptions = {}): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'the event store is closed'));
    if (this.walSync?.failed) return Promise.reject(this.syncFailure(this.walSync.failed));
    let decoded: DecodedUpdate;
    try {
      decoded = decodeUpdate(update);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ doc, update: decoded, meta, alreadyDeleted: options.alreadyDeleted, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    // While a commit's sync runs, its end schedules the next flush.
    if (this.flushScheduled || this.syncsRunning >= MAX_SYNCS_RUNNING) return;
    this.flushScheduled = true;
    // At the next turn's end, not this one's: the appends of a turn are made
    // before Hocuspocus applies their updates, so a flush at this turn's end
    // would run its inserts before Hocuspocus' broadcast of those updates
    // (also at this turn's end) and every delivery would wait for them. The
    // acks wait one turn more, and that turn's appends join the batch
    // (bench/README.md: "Deliveries before the commit's inserts").
    setImmediate(() => setImmediate(() => this.flush()));
  }

  /** Writes every pending append in one transaction. */
  private flush(): void {
    this.flushScheduled = false;
    // While a commit's sync runs, appends wait for it and then go in one
    // commit and one sync (group commit): every commit costs its own locks,
    // WAL frames (the same leaf pages written again) and fsync. A second sync
    // beside the first (tried) let an append that came during a sync be
    // acknowledged a little sooner, but one fast connection's updates then
    // went in commits of 3 or 4 and it got about a fifth fewer through.
    if (this.syncsRunning >= MAX_SYNCS_RUNNING && !this.closed) return;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    if (this.walSync?.failed) {
      const failure = this.syncFailure(this.walSync.failed);
      for (const item of batch) item.reject(failure);
      return;
    }
    const touched = new Map<string, BatchCursor>();
    let results: Array<AppendResult | MalformedUpdateError>;
    try {
      results = this.writeBatch(batch, touched);
    } catch (error) {
      // The cursors of touched documents were advanced in place: forget them,
      // so the next write rebuilds them from the file as it is.
      for (const doc of touched.keys()) this.cursors.delete(doc);
      this.lastWriteFailed = true;
      const failure = new StoreError('STORE_WRITE_FAILED', `could not write to ${this.open.path}: ${reason(error)}`, { cause: error });
      for (const item of batch) item.reject(failure);
      return;
    }
    this.lastWriteFailed = false;
    this.ownCommits += 1;
    // Each document's log ends in its own index page; plus the table, the documents row and the bytes themselves.
    let bytes = 0;
    for (const result of results) if (!(result instanceof MalformedUpdateError)) bytes += result.size;
    this.wrotePages(touched.size + 2 + Math.ceil(bytes / PAGE_SIZE));
    for (const [doc, { cursor }] of touched) this.remember(doc, cursor);
    const settle = () => batch.forEach((item, i) => {
      const result = results[i];
      if (result instanceof MalformedUpdateError) item.reject(result);
      else item.resolve(result);
    });
    if (this.walSync === null) settle();
    else {
      this.syncsRunning += 1;
      // The next batch is scheduled before this one's callers run.
      const synced = () => {
        this.syncsRunning -= 1;
        if (this.pending.length > 0) this.scheduleFlush();
      };
      // Batches settle in commit order (syncWal settles syncs in the order they began).
      this.syncWal().then(() => {
        synced();
        settle();
      }, (error: Error) => {
        synced();
        const failure = this.syncFailure(error);
        for (const item of batch) item.reject(failure);
      });
    }
    const { compactAfterEntries, compactAfterBytes } = this.options;
    for (const [doc, { cursor }] of touched) {
      if ((compactAfterEntries > 0 && cursor.entriesSinceSnapshot >= compactAfterEntries) ||
          (compactAfterBytes > 0 && cursor.bytesSinceSnapshot >= compactAfterBytes)) {
        this.scheduleCompaction(doc);
      }
    }
  }

  /** Starts a sync of the WAL (walSync must be set); remembers what it covers. */
  private syncWal(): Promise<void> {
    const mark: SyncMark = {
      order: ++this.syncsBegun, dataVersion: this.open.statements.dataVersion.get() as number, ownCommits: this.ownCommits,
    };
    const own = this.walSync!.sync();
    // Syncs settle in the order they began: one that ends first waits for
    // those before it, and fails if any of them failed, for a failed fsync may
    // have taken pages of later commits with it (Linux reports a lost
    // write-back to one fsync only). What a sync covers counts as on disk only then.
    const done = this.lastSync.then(() => own).then(() => {
      if (this.walSync!.failed) throw this.walSync!.failed;
      if (this.synced === null || this.synced.order < mark.order) this.synced = mark;
    });
    this.lastSync = done.then(() => undefined, () => undefined);
    this.latest = { ...mark, done };
    return done;
  }

  /**
   * Resolves once what this connection can read now is on disk: before a
   * read hands entries on (a feed reader, a webhook, another instance's
   * catch-up), and before a write other than an append resolves (`wrote`:
   * it counts as one of this connection's commits). Free when nothing was
   * committed since the last sync began; shares a running sync that began
   * after the last commit.
   */
  private async onDisk(wrote = false): Promise<void> {
    if (this.walSync === null) return;
    if (this.walSync.failed) throw this.syncFailure(this.walSync.failed);
    this.assertOpen();
    if (wrote) this.ownCommits += 1;
    const dataVersion = this.open.statements.dataVersion.get() as number;
    const covers = (mark: SyncMark | null) => mark !== null && mark.dataVersion === dataVersion && mark.ownCommits === this.ownCommits;
    if (covers(this.synced)) return;
    try {
      await (covers(this.latest) ? this.latest!.done : this.syncWal());
    } catch (error) {
      throw this.syncFailure(error as Error);
    }
  }

  /** Writes other than appends: none once close() began (it may still be waiting for the worker). */
  private assertOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the event store is closed');
  }

  private syncFailure(error: Error): StoreError {
    return new StoreError('STORE_WRITE_FAILED', `could not make ${this.open.path} durable: ${error.message}`, { cause: error });
  }

  /** The body of the batch's IMMEDIATE transaction: no other connection can write meanwhile. */
  private writeInTransaction(batch: PendingAppend[], touched: Map<string, BatchCursor>): Array<AppendResult | MalformedUpdateError> {
    const { statements } = this.open;
    // Changes only when another connection (another process) has committed
    // since this connection last looked.
    const dataVersion = statements.dataVersion.get() as number;
    const results = batch.map((item) => {
      let entry = touched.get(item.doc);
      if (entry === undefined) {
        const cursor = this.cursorForWrite(item.doc, dataVersion);
        entry = { cursor, seqBefore: cursor.lastSeq };
        touched.set(item.doc, entry);
      }
      return this.appendOne(item, entry.cursor);
    });
    let changeId: number | null = null;
    for (const { cursor, seqBefore } of touched.values()) {
      if (cursor.lastSeq === seqBefore) continue;
      changeId ??= statements.lastChangeId.get()! + 1;
      statements.setLastSeq.run(cursor.lastSeq, changeId, cursor.docId);
    }
    return results;
  }

  private appendOne(item: PendingAppend, cursor: LogCursor): AppendResult | MalformedUpdateError {
    let part: Uint8Array | null;
    try {
      part = uncoveredPart(cursor.coverage, item.update, item.alreadyDeleted);
    } catch (error) {
      // An update Yjs decoded but cannot diff fails alone, not the whole batch.
      return new MalformedUpdateError(error);
    }
    if (part === null) return { seq: null, size: 0 };
    const seq = cursor.lastSeq + 1;
    this.insertEntry(cursor.docId, {
      seq, receivedAt: Date.now(), instanceId: item.meta.instanceId, user: item.meta.user, displayName: item.meta.displayName ?? null, update: part,
    });
    cursor.lastSeq = seq;
    foldInto(cursor.coverage, item.update);
    cursor.entriesSinceSnapshot += 1;
    cursor.bytesSinceSnapshot += part.length;
    return { seq, size: part.length };
  }

  /** Logs one entry with its facts (entry-facts.ts); inside a write transaction. */
  private insertEntry(docId: number, entry: {
    seq: number; receivedAt: number; instanceId: string; user: string | null; displayName: string | null; update: Uint8Array;
  }): void {
    const { statements } = this.open;
    const facts = factsOf(entry.update);
    const previous = statements.groupLink.get(docId, entry.seq - 1);
    const group = nextGroup(previous === undefined ? null : {
      seq: previous.seq, receivedAt: previous.received_at,
      group: previous.group_start === null ? null : {
        start: previous.group_start, user: previous.group_user, displayName: previous.group_name,
        added: previous.group_added ?? 0, removed: previous.group_removed ?? 0,
      },
    }, { ...entry, added: facts.added, removed: facts.removed });
    statements.insertUpdate.run(
      docId, entry.seq, entry.receivedAt, entry.instanceId, entry.user, entry.update.length, entry.update, entry.displayName,
      facts.added, facts.removed, facts.created,
      group?.start ?? null, group?.user ?? null, group?.displayName ?? null, group?.added ?? null, group?.removed ?? null);
  }

  /**
   * The document's cursor, brought up to date with the file; runs inside the
   * write transaction. The cached cursor is returned as is when no other
   * connection has committed since it was last checked; else only its row is
   * read, and the log only when another process appended to this document.
   */
  private cursorForWrite(doc: string, dataVersion: number): LogCursor {
    const { statements } = this.open;
    const cached = this.cursors.get(doc);
    if (cached !== undefined && cached.checkedAt === dataVersion) return cached;
    // Out of the cache while it is brought up to date: should anything below
    // throw, the next write starts again from the file.
    this.cursors.delete(doc);
    let row = statements.documentByName.get(doc);
    if (row === undefined) {
      statements.insertDocument.run(doc, Date.now());
      row = statements.documentByName.get(doc);
      if (row === undefined) throw new Error(`document row for ${doc} missing after insert`);
    }
    if (cached !== undefined && cached.docId === row.id && cached.lastSeq <= row.last_seq) {
      // Entries other processes appended since we last looked. A gap means a
      // compaction pruned some of them (retention 'snapshot'): rebuild instead.
      if (cached.lastSeq < row.last_seq) {
        for (const entry of statements.updatesAfter.iterate(row.id, cached.lastSeq)) {
          if (entry.seq !== cached.lastSeq + 1) break;
          foldInto(cached.coverage, decodeUpdate(entry.update_bytes, false));
          cached.lastSeq = entry.seq;
          cached.entriesSinceSnapshot += 1;
          cached.bytesSinceSnapshot += entry.update_bytes.length;
        }
      }
      if (cached.lastSeq === row.last_seq) {
        cached.checkedAt = dataVersion;
        return cached;
      }
    }
    return this.buildCursor(row.id, row.last_seq, dataVersion);
  }

  /** Coverage from the latest snapshot plus every entry after it. */
  private buildCursor(docId: number, lastSeq: number, dataVersion: number): LogCursor {
    const { statements } = this.open;
    const snapshot = statements.latestSnapshotAtOrBefore.get(docId, lastSeq);
    const cursor: LogCursor = {
      docId, lastSeq: snapshot?.seq ?? 0,
      coverage: snapshot === undefined ? emptyCoverage() : decodeCoverage(snapshot.coverage),
      entriesSinceSnapshot: 0, bytesSinceSnapshot: 0, checkedAt: dataVersion,
    };
    for (const entry of statements.updatesAfter.iterate(docId, cursor.lastSeq)) {
      foldInto(cursor.coverage, decodeUpdate(entry.update_bytes, false));
      cursor.lastSeq = entry.seq;
      cursor.entriesSinceSnapshot += 1;
      cursor.bytesSinceSnapshot += entry.update_bytes.length;
    }
    return cursor;
  }

  private remember(doc: string, cursor: LogCursor): void {
    this.cursors.delete(doc);
    this.cursors.set(doc, cursor);
    if (this.cursors.size > CURSOR_CACHE_LIMIT) {
      const oldest = this.cursors.keys().next().value;
      if (oldest !== undefined) this.cursors.delete(oldest);
    }
  }

  async load(doc: string): Promise<LoadedDocument> {
    const { db, statements } = this.open;
    return db.transaction(() => {
      const row = statements.documentByName.get(doc);
      if (row === undefined) return { doc, seq: 0, snapshot: null, tail: [] };
      const snapshot = statements.latestSnapshotAtOrBefore.get(row.id, row.last_seq);
      const tail = statements.updatesAfter.all(row.id, snapshot?.seq ?? 0).map((r) => r.update_bytes);
      return {
        doc, seq: row.last_seq,
        snapshot: snapshot === undefined ? null : { seq: snapshot.seq, state: snapshot.state },
        tail,
      };
    })();
  }

  async stateAt(doc: string, seq?: number): Promise<DocumentState> {
    const { db, statements } = this.open;
    const plan = db.transaction(() => {
      const row = statements.documentByName.get(doc);
      const lastSeq = row?.last_seq ?? 0;
      const target = seq ?? lastSeq;
      if (!Number.isSafeInteger(target) || target < 0 || target > lastSeq) {
        throw new StoreError('UNKNOWN_SEQ', `${doc} has no seq ${target} (its log ends at ${lastSeq})`);
      }
      if (row === undefined || target === 0) return { target, base: null, tail: [] as Uint8Array[] };
      const snapshot = statements.latestSnapshotAtOrBefore.get(row.id, target);
      const from = snapshot?.seq ?? 0;
      const tail = statements.updatesBetween.all(row.id, from, target);
      if (tail.length !== target - from) {
        throw new StoreError('HISTORY_PRUNED',
          `${doc} at seq ${target} is no longer available: the retention policy dropped those log entries`);
      }
      return { target, base: snapshot?.state ?? null, tail: tail.map((r) => r.update_bytes) };
    })();
    const ydoc = replay(plan.base, plan.tail);
    const update = Y.encodeStateAsUpdate(ydoc);
    ydoc.destroy();
    return { doc, seq: plan.target, update };
  }

  async entries(doc: string, options: { afterSeq?: number; limit?: number } = {}): Promise<LogEntry[]> {
    this.assertOpen();
    const { statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return [];
    const rows = statements.entriesAfter.all(row.id, options.afterSeq ?? 0, options.limit ?? -1);
    // What was read is handed on only once it is on disk: a power cut cannot take it back afterwards.
    if (rows.length > 0) await this.onDisk();
    return rows.map((r) => ({
      seq: r.seq,
      receivedAt: new Date(r.received_at),
      instanceId: r.instance_id,
      user: r.user,
      displayName: r.display_name,
      size: r.size,
      update: r.update_bytes,
    }));
  }

  async summaries(doc: string, query: SummaryQuery): Promise<EntrySummary[]> {
    const { db, statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return [];
    const shape = summaryShape(query);
    let statement = this.summaryStatements.get(shape);
    if (statement === undefined) {
      statement = db.prepare(summarySql(query)).raw();
      this.summaryStatements.set(shape, statement);
    }
    const parameters: unknown[] = [row.id];
    if (query.seqs !== undefined) parameters.push(JSON.stringify(query.seqs));
    else parameters.push(query.fromSeq ?? 0, query.toSeq ?? Number.MAX_SAFE_INTEGER);
    parameters.push(query.limit ?? -1);
    return (statement.all(...parameters) as SummaryRow[]).map((r) => summaryOf(r, query.withCreated === true));
  }

  async authorshipBlocks(doc: string, upToSeq: number): Promise<AuthorshipBlockRecord[]> {
    const { db, statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return [];
    this.blockStatements ??= {
      read: db.prepare<[number, number], { from_seq: number; to_seq: number; data: Uint8Array }>(
        'SELECT from_seq, to_seq, data FROM authorship_blocks WHERE doc_id = ? AND from_seq <= ? ORDER BY from_seq'),
      save: db.prepare<[number, number, number, Uint8Array]>(
        'INSERT OR IGNORE INTO authorship_blocks (doc_id, from_seq, to_seq, data) VALUES (?, ?, ?, ?)'),
    };
    return this.blockStatements.read.all(row.id, upToSeq).map((r) => ({ fromSeq: r.from_seq, toSeq: r.to_seq, data: r.data }));
  }

  async saveAuthorshipBlock(doc: string, block: AuthorshipBlockRecord): Promise<void> {
    this.assertOpen();
    const { db, statements } = this.open;
    await this.authorshipBlocks(doc, 0);
    this.assertOpen();
    db.transaction(() => {
      const row = statements.documentByName.get(doc);
      if (row === undefined) return;
      this.blockStatements!.save.run(row.id, block.fromSeq, block.toSeq, block.data);
    }).immediate();
    await this.onDisk(true);
  }

  async groupStarts(doc: string, query: { fromSeq: number; toSeq: number; limit: number }): Promise<number[]> {
    const { db, statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return [];
    this.groupStartsStatement ??= db.prepare<[number, number, number, number], number>(
      `SELECT seq FROM updates WHERE doc_id = ? AND group_start = seq AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT ?`).pluck();
    return this.groupStartsStatement.all(row.id, query.fromSeq, query.toSeq, query.limit);
  }

  async seqAtTime(doc: string, at: Date): Promise<number> {
    const { statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return 0;
    return statements.seqAtTime.get(row.id, at.getTime())?.seq ?? 0;
  }

  async nameVersion(doc: string, version: VersionName): Promise<void> {
    this.assertOpen();
    const { db, statements } = this.open;
    db.transaction(() => {
      const row = statements.documentByName.get(doc);
      if (row === undefined || version.seq < 1 || version.seq > row.last_seq) {
        throw new StoreError('UNKNOWN_SEQ', `${doc} has no seq ${version.seq} (its last seq is ${row?.last_seq ?? 0})`);
      }
      statements.upsertVersionName.run(row.id, version.seq, version.name, version.user, version.createdAt.getTime(), version.restoredFrom, version.displayName ?? null);
    }).immediate();
    await this.onDisk(true);
  }

  async versionNames(doc: string): Promise<VersionName[]> {
    const { statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return [];
    return statements.versionNames.all(row.id).map((r) => ({
      seq: r.seq, name: r.name, user: r.user, displayName: r.display_name, createdAt: new Date(r.created_at), restoredFrom: r.restored_from,
    }));
  }

  async feed(after: string | null, options: { limit?: number } = {}): Promise<FeedPage> {
    this.assertOpen();
    // The cursor is the feed position (schema.ts, migration 4); anything else starts from the first entry.
    const from = (after === null ? null : feedPosition(after)) ?? 0;
    this.feedStatement ??= this.open.db.prepare<[number, number], FeedRow>(
      `SELECT f.pos, d.name, u.seq, u.received_at, u.instance_id, u.user, u.display_name, u.size, u.update_bytes
       FROM feed f JOIN updates u ON u.doc_id = f.doc_id AND u.seq = f.seq JOIN documents d ON d.id = f.doc_id
       WHERE f.pos > ? ORDER BY f.pos LIMIT ?`);
    const rows = this.feedStatement.all(from, options.limit ?? -1);
    if (rows.length > 0) await this.onDisk();
    const entries: FeedEntry[] = rows.map((r) => ({
      doc: r.name, cursor: String(r.pos), seq: r.seq, receivedAt: new Date(r.received_at), instanceId: r.instance_id,
      user: r.user, displayName: r.display_name, size: r.size, update: r.update_bytes,
    }));
    return { entries, cursor: entries.length > 0 ? entries[entries.length - 1].cursor : after };
  }

  async feedCursorProblem(cursor: string): Promise<string | null> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the event store is closed');
    this.lastFeedPositionStatement ??= this.open.db.prepare<[], { last: number | null }>('SELECT max(pos) AS last FROM feed');
    const last = this.lastFeedPositionStatement.get()?.last ?? 0;
    const end = last === 0 ? 'its feed is still empty' : `its feed ends at position ${last}`;
    const position = feedPosition(cursor);
    if (position === null) return `the feed cursors of this SQLite store are whole numbers from 1 (feed positions); ${end}`;
    if (position > last) return `${position} is past the end of this SQLite store's feed: ${end} (a cursor of another or a rebuilt database?)`;
    return null;
  }

  async readState(prefix: string): Promise<StateRecord[]> {
    this.stateStatements ??= this.prepareStateStatements();
    return this.stateStatements.read.all(prefix.length, prefix).map((r) => ({ key: r.key, value: r.value }));
  }

  async writeState(changes: Array<{ key: string; value: string | null }>): Promise<void> {
    this.assertOpen();
    const { db } = this.open;
    this.stateStatements ??= this.prepareStateStatements();
    const { put, remove } = this.stateStatements;
    db.transaction(() => {
      for (const { key, value } of changes) {
        if (value === null) remove.run(key);
        else put.run(key, value);
      }
    }).immediate();
    await this.onDisk(true);
  }

  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    const now = Date.now();
    this.stateStatements ??= this.prepareStateStatements();
    const held = this.stateStatements.lease.run(name, holder, now + ttlMs, now).changes === 1;
    if (held) await this.onDisk(true);
    return held;
  }

  private prepareStateStatements() {
    const { db } = this.open;
    return {
      // substr rather than LIKE: a prefix may hold % and _.
      read: db.prepare<[number, string], StateRecord>('SELECT key, value FROM service_state WHERE substr(key, 1, ?) = ? ORDER BY key'),
      put: db.prepare<[string, string]>('INSERT INTO service_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      remove: db.prepare<[string]>('DELETE FROM service_state WHERE key = ?'),
      lease: db.prepare<[string, string, number, number]>(
        `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at < ?`),
    };
  }

  async changesSince(cursor: string | null): Promise<ChangesSince> {
    const { db, statements } = this.open;
    return db.transaction(() => {
      const last = statements.lastChangeId.get()!;
      if (cursor === null) return { cursor: String(last), changes: [] };
      const after = Number(cursor);
      // A cursor from before a rebuilt or different file: everything counts as changed.
      const from = Number.isSafeInteger(after) && after <= last ? after : 0;
      const rows = statements.changedSince.all(from);
      return { cursor: String(last), changes: rows.map((r) => ({ doc: r.name, seq: r.last_seq })) };
    })();
  }

  async snapshotRecords(doc: string): Promise<SnapshotRecord[]> {
    const { statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return [];
    return statements.snapshotRows.all(row.id).map((r) => ({ seq: r.seq, createdAt: new Date(r.created_at), state: r.state, coverage: r.coverage }));
  }

  async importSnapshot(doc: string, snapshot: SnapshotRecord): Promise<void> {
    this.assertOpen();
    const { db, statements } = this.open;
    db.transaction(() => {
      const docId = this.documentId(doc);
      statements.insertSnapshotAt.run(docId, snapshot.seq, snapshot.createdAt.getTime(), snapshot.state, snapshot.coverage);
    }).immediate();
    await this.onDisk(true);
  }

  async importEntries(doc: string, entries: LogEntry[], lastSeq: number): Promise<void> {
    this.assertOpen();
    const { db, statements } = this.open;
    // The cached cursor does not know of these entries.
    this.cursors.delete(doc);
    db.transaction(() => {
      const docId = this.documentId(doc);
      const row = statements.documentByName.get(doc)!;
      let seq = row.last_seq;
      const logEmpty = statements.firstRetained.get(docId)?.seq === null;
      for (const entry of entries) {
        if (entry.seq <= seq) continue;
        if (entry.seq !== seq + 1 && !(logEmpty && seq === row.last_seq)) {
          throw new StoreError('STORE_WRITE_FAILED', `${doc}: entry ${entry.seq} does not follow seq ${seq}`);
        }
        this.insertEntry(docId, {
          seq: entry.seq, receivedAt: entry.receivedAt.getTime(), instanceId: entry.instanceId, user: entry.user,
          displayName: entry.displayName ?? null, update: entry.update,
        });
        seq = entry.seq;
      }
      const target = Math.max(seq, lastSeq);
      if (target !== row.last_seq) statements.setLastSeq.run(target, statements.lastChangeId.get()! + 1, docId);
    }).immediate();
    await this.onDisk(true);
  }

  private documentId(doc: string): number {
    const { statements } = this.open;
    statements.insertDocument.run(doc, Date.now());
    return statements.documentByName.get(doc)!.id;
  }

  async documents(): Promise<string[]> {
    return this.open.statements.documentNames.all().map((r) => r.name);
  }

  async info(doc: string): Promise<DocumentInfo | null> {
    const { statements } = this.open;
    const row = statements.documentByName.get(doc);
    if (row === undefined) return null;
    const updatedAt = statements.lastReceived.get(row.id)?.at ?? null;
    return {
      doc,
      seq: row.last_seq,
      updatedAt: updatedAt === null ? null : new Date(updatedAt),
      snapshots: statements.snapshotsOf.all(row.id).map((s) => ({ seq: s.seq, createdAt: new Date(s.created_at), size: s.size })),
      firstRetainedSeq: statements.firstRetained.get(row.id)?.seq ?? null,
    };
  }

  async compact(doc: string): Promise<CompactionResult | null> {
    const result = compactDocument(this.open, doc, this.policy());
    if (result !== null) this.afterCompaction(doc, result);
    return result;
  }

  private afterCompaction(doc: string, result: CompactionResult): void {
    const cursor = this.cursors.get(doc);
    if (cursor === undefined) return;
    // Counts restart from the new snapshot; entries logged meanwhile stay counted.
    const after = this.open.statements.countAfter.get(cursor.docId, result.seq);
    cursor.entriesSinceSnapshot = after?.n ?? 0;
    cursor.bytesSinceSnapshot = after?.bytes ?? 0;
  }

  private scheduleCompaction(doc: string): void {
    if (!this.options.background) {
      const started = performance.now();
      try {
        const result = compactDocument(this.open, doc, this.policy());
        if (result !== null) this.afterCompaction(doc, result);
        this.options.onCompaction?.({ doc, result, durationMs: performance.now() - started });
      } catch (error) {
        this.options.onCompaction?.({ doc, error: reason(error), durationMs: performance.now() - started });
      }
      return;
    }
    if (this.compactionRunning === doc) {
      this.compactionQueue.add(doc);
      return;
    }
    this.compactionQueue.add(doc);
    this.runNextCompaction();
  }

  private runNextCompaction(): void {
    if (this.compactionRunning !== null || this.closed) return;
    const next = this.compactionQueue.values().next();
    if (next.done === true) {
      this.wakeIdleWaiters();
      return;
    }
    const doc = next.value;
    this.compactionQueue.delete(doc);
    this.compactionRunning = doc;
    this.compactionStartedAt = performance.now();
    this.postToWorker({ doc });
  }

  private compactionWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const workerData: CompactionWorkerData = { path: this.open.path, synchronous: this.options.synchronous };
    const worker = new Worker(new URL('./compaction-worker.js', import.meta.url), { workerData });
    worker.on('message', (message: WorkerReply) => {
      if ('ready' in message) {
        this.workerReady = true;
        this.wakeIdleWaiters();
        return;
      }
      if ('checkpoint' in message) {
        this.afterCheckpoint(message.checkpoint);
        return;
      }
      this.finishCompaction(message);
    });
    worker.on('error', (error) => {
      const doc = this.compactionRunning ?? '';
      if (doc !== '') this.options.onCompaction?.({ doc, error: reason(error), durationMs: performance.now() - this.compactionStartedAt });
      this.compactionRunning = null;
      this.checkpointRunning = false;
      this.worker = null;
      this.workerReady = false;
      this.runNextCompaction();
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private postToWorker(request: WorkerRequest): void {
    this.compactionWorker().postMessage(request);
  }

  /** The worker built a snapshot: write it here, on the one connection that writes. */
  private finishCompaction(message: { doc: string; snapshot?: BuiltSnapshot | null; error?: string }): void {
    let result: CompactionResult | null = null;
    let error = message.error;
    if (message.snapshot && !this.closed) {
      try {
        result = writeSnapshot(this.open, message.snapshot, this.policy());
        this.ownCommits += 1;
        this.wrotePages(Math.ceil((message.snapshot.state.length + message.snapshot.coverage.length) / PAGE_SIZE) + 2);
        this.afterCompaction(message.doc, result);
      } catch (writeError) {
        error = reason(writeError);
      }
    }
    const durationMs = performance.now() - this.compactionStartedAt;
    this.options.onCompaction?.(error === undefined ? { doc: message.doc, result, durationMs } : { doc: message.doc, error, durationMs });
    this.compactionRunning = null;
    this.runNextCompaction();
  }

  /**
   * In the server, the worker copies the WAL into the database file (with its
   * fsyncs) every CHECKPOINT_AFTER_PAGES or so, instead of SQLite doing it
   * inside an append's commit.
   */
  private wrotePages(pages: number): void {
    if (!this.options.background) return;
    this.walPagesSinceCheckpoint += pages;
    if (this.walPagesSinceCheckpoint < CHECKPOINT_AFTER_PAGES || this.checkpointRunning || this.closed) return;
    this.walPagesSinceCheckpoint = 0;
    this.checkpointRunning = true;
    this.postToWorker({ checkpoint: true });
  }

  /**
   * The worker's checkpoint cannot reset the WAL while appends keep coming:
   * SQLite starts the WAL over only when every frame has been copied. So once
   * the WAL is long, this connection copies the few frames appended since
   * (a small checkpoint), and its next commit starts the WAL from the top.
   */
  private afterCheckpoint(result: { log: number; checkpointed: number } | { error: string }): void {
    this.checkpointRunning = false;
    if ('error' in result || result.log < RESET_WAL_AFTER_FRAMES || this.closed) return;
    try {
      this.open.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // Busy (another process is checkpointing): the next round tries again.
    }
  }

  /** Resolves once the worker (if any) is up and no background compaction is queued or running. */
  compactionsIdle(): Promise<void> {
    if (this.backgroundIdle()) return Promise.resolve();
    // Someone waits for the worker: it keeps the process alive until then.
    this.worker?.ref();
    return new Promise((resolve) => this.compactionIdleWaiters.push(resolve));
  }

  private backgroundIdle(): boolean {
    return this.compactionRunning === null && this.compactionQueue.size === 0 && (this.worker === null || this.workerReady);
  }

  private wakeIdleWaiters(): void {
    if (!this.backgroundIdle() && !this.closed) return;
    if (!this.closed) this.worker?.unref();
    for (const wake of this.compactionIdleWaiters.splice(0)) wake();
  }

  async verify(options: { onProgress?: (doc: string, index: number, total: number) => void } = {}): Promise<VerifyReport> {
    const { statements } = this.open;
    const names = statements.documentNames.all().map((r) => r.name);
    const report: VerifyReport = { documents: names.length, entries: 0, snapshots: 0, problems: [] };
    names.forEach((doc, index) => {
      options.onProgress?.(doc, index, names.length);
      const problems = this.verifyDocument(doc);
      report.entries += problems.entries;
      report.snapshots += problems.snapshots;
      report.problems.push(...problems.problems);
    });
    return report;
  }

  private verifyDocument(doc: string): { entries: number; snapshots: number; problems: VerifyProblem[] } {
    const { db, statements } = this.open;
    return db.transaction(() => {
      const row = statements.documentByName.get(doc);
      if (row === undefined) return { entries: 0, snapshots: 0, problems: [] };
      const snapshots = statements.snapshotRows.all(row.id);
      const verifier = new LogVerifier(doc, row.last_seq, snapshots, statements.firstRetained.get(row.id)?.seq ?? null);
      if (verifier.afterSeq !== null) {
        for (const entry of statements.updatesAfter.iterate(row.id, verifier.afterSeq)) verifier.entry(entry.seq, entry.update_bytes);
      }
      const problems = verifier.finish();
      return { entries: verifier.entries, snapshots: snapshots.length, problems };
    })();
  }

  /** Finishes pending writes and background work, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pending.length > 0) this.flush();
    this.compactionQueue.clear();
    if (this.worker !== null) {
      const worker = this.worker;
      this.worker = null;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      // Keep the process alive until the worker has closed its connection.
      worker.ref();
      worker.postMessage({ close: true });
      await exited;
    }
    for (const wake of this.compactionIdleWaiters.splice(0)) wake();
    await this.walSync?.close();
    this.open.db.close();
  }
}
