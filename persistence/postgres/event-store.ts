// The EventStore on PostgreSQL (node-postgres), for instances on several
// hosts. The guarantees are SQLite's, across hosts:
//   - an append resolves only after its transaction has committed;
//   - exactly once: inside the append transaction the document's row is
//     locked (SELECT … FOR UPDATE), and the coverage check (../coverage.ts)
//     runs against the log as it is then, including the entries other hosts
//     appended since this instance last looked;
//   - one round trip when it can: a batch whose documents this instance
//     wrote last is one statement that locks the rows, checks their last
//     seqs against its cursors and only then inserts and notifies
//     (writeInOneStatement); otherwise, the locking transaction above;
//   - group commit: the appends that arrive while a transaction is in flight
//     go together in the next one; every call is asynchronous, so a slow
//     commit never blocks the event loop.
// Other instances learn of new entries through LISTEN/NOTIFY
// (change-listener.ts) and changesSince; compaction runs on a worker thread
// (compaction-worker.ts) under an advisory lock (compaction.ts).

import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import * as Y from 'yjs';
import type { CompactionPolicy, RetentionPolicy } from '../compaction-policy.js';
import {
  cloneCoverage, decodeCoverage, decodeUpdate, emptyCoverage, foldInto, MalformedUpdateError, uncoveredPart, type Coverage, type DecodedUpdate,
} from '../coverage.js';
import { StoreError } from '../errors.js';
import type {
  AlreadyDeleted, AppendMeta, AppendOptions, AuthorshipBlockRecord, AppendResult, ChangesSince, CompactionResult, DocumentInfo, DocumentState, EventStore,
  EntrySummary, FeedEntry, FeedPage, LoadedDocument, SummaryQuery, LogEntry, LogTransfer, SnapshotRecord, StateRecord, VerifyProblem, VerifyReport, VersionName,
} from '../event-store.js';
import { factsOf, nextGroup, type GroupLink } from '../entry-facts.js';
import { replay } from '../replay.js';
import { LogVerifier } from '../verify.js';
import { CHANGES_CHANNEL, ChangeListener } from './change-listener.js';
import { compactDocument } from './compaction.js';
import type { PostgresCompactionWorkerData, PostgresWorkerRequest } from './compaction-worker.js';
import { createPool, describeConnectError, isConnectionError, reason } from './connection.js';
import { migrate } from './schema.js';
import { parsePostgresUrl, type PostgresUrl } from './url.js';

export interface PostgresEventStoreOptions {
  /** postgres://user:password@host:port/database (also postgresql://, ?sslmode= passed through). */
  url: string;
  retention?: RetentionPolicy;
  /** Compact a document once this many entries follow its latest snapshot. 0 = never automatically. */
  compactAfterEntries?: number;
  /** … or once the entries after its latest snapshot reach this many bytes. */
  compactAfterBytes?: number;
  /** Older snapshots kept: the first in each span of this many seqs, besides the latest (0 = all). */
  keepSnapshotsEvery?: number;
  /** Compactions on a worker thread (the server); otherwise inline (CLI, tests). */
  background?: boolean;
  /** Only read: no migration, no writes. */
  readonly?: boolean;
  /** How long a write waits for a lock another session holds before failing (PostgreSQL lock_timeout). */
  busyTimeoutMs?: number;
  /** Connections in the pool. */
  poolSize?: number;
  /** How long load() waits for an unreachable PostgreSQL to come back before failing. */
  loadWaitMs?: number;
  onCompaction?: (event: { doc: string; result?: CompactionResult | null; error?: string; durationMs: number }) => void;
}

interface PendingAppend {
  doc: string;
  update: DecodedUpdate;
  meta: AppendMeta;
  alreadyDeleted: AlreadyDeleted | undefined;
  resolve: (result: AppendResult) => void;
  reject: (error: Error) => void;
}

/** What this instance knows about a document's log; checked against the locked row in every write. */
interface LogCursor {
  lastSeq: number;
  coverage: Coverage;
  entriesSinceSnapshot: number;
  bytesSinceSnapshot: number;
  /** The entry at lastSeq as grouping needs it, when this instance wrote it (undefined: read it from the log). */
  link?: GroupLink;
  /** Until then, writes to the document take the locking transaction: another instance was found writing to it. */
  contendedUntil?: number;
}

interface NewEntry {
  doc: string;
  seq: number;
  receivedAt: string;
  instanceId: string;
  user: string | null;
  displayName: string | null;
  bytes: Uint8Array;
}

/** What entry-facts.ts stores beside an entry, as query parameters. */
interface FactColumns {
  added: number[]; removed: number[]; created: Buffer[];
  groupStart: Array<number | null>; groupUser: Array<string | null>; groupName: Array<string | null>;
  groupAdded: Array<number | null>; groupRemoved: Array<number | null>;
}

/**
 * The facts of entries about to be logged (in seq order per document, inside
 * the writing transaction): each one's group follows from the entry before
 * it, read from the log for the first of each document unless `known` has
 * it (the link a cursor kept from this instance's last write). Also returns
 * the link of each document's last new entry.
 */
async function factColumns(client: pg.PoolClient, rows: Array<{
  doc: string; seq: number; receivedAt: number; user: string | null; displayName: string | null; bytes: Uint8Array;
}>, known: ReadonlyMap<string, GroupLink | null> = new Map()): Promise<{ columns: FactColumns; links: Map<string, GroupLink> }> {
  const columns: FactColumns = { added: [], removed: [], created: [], groupStart: [], groupUser: [], groupName: [], groupAdded: [], groupRemoved: [] };
  const previous = new Map<string, GroupLink | null>();
  const firsts = new Map<string, number>();
  for (const row of rows) {
    if (previous.has(row.doc) || firsts.has(row.doc)) continue;
    const link = known.get(row.doc);
    if (link !== undefined && (link === null || link.seq === row.seq - 1)) previous.set(row.doc, link);
    else firsts.set(row.doc, row.seq - 1);
  }
  if (firsts.size > 0) {
    const { rows: links } = await client.query<{
      doc: string; seq: string; received_at: Date; group_start: string | null; group_user: string | null; group_name: string | null;
      group_added: string | null; group_removed: string | null;
    }>(
      `SELECT u.doc, u.seq, u.received_at, u.group_start, u.group_user, u.group_name, u.group_added, u.group_removed
       FROM updates u JOIN unnest($1::text[], $2::bigint[]) AS wanted (doc, seq) ON u.doc = wanted.doc AND u.seq = wanted.seq`,
      [[...firsts.keys()], [...firsts.values()]]);
    for (const l of links) {
      previous.set(l.doc, {
        seq: Number(l.seq), receivedAt: l.received_at.getTime(),
        group: l.group_start === null ? null : {
          start: Number(l.group_start), user: l.group_user, displayName: l.group_name, added: Number(l.group_added ?? 0), removed: Number(l.group_removed ?? 0),
        },
      });
    }
  }
  const last = new Map<string, GroupLink>();
  for (const row of rows) {
    const facts = factsOf(row.bytes);
    const group = nextGroup(previous.get(row.doc) ?? null, { ...row, added: facts.added, removed: facts.removed });
    const link = { seq: row.seq, receivedAt: row.receivedAt, group };
    previous.set(row.doc, link);
    last.set(row.doc, link);
    columns.added.push(facts.added);
    columns.removed.push(facts.removed);
    columns.created.push(Buffer.from(facts.created.buffer, facts.created.byteOffset, facts.created.byteLength));
    columns.groupStart.push(group?.start ?? null);
    columns.groupUser.push(group?.user ?? null);
    columns.groupName.push(group?.displayName ?? null);
    columns.groupAdded.push(group?.added ?? null);
    columns.groupRemoved.push(group?.removed ?? null);
  }
  return { columns, links: last };
}

const FACT_ARRAYS = '::integer[], $A::integer[], $A::bytea[], $A::bigint[], $A::text[], $A::text[], $A::bigint[], $A::bigint[]';

/** unnest parameters $from … $from+7 for the fact columns, in factValues order. */
function factParameters(from: number): string {
  let n = from;
  return `$${n++}${FACT_ARRAYS.replace(/\$A/g, () => `$${n++}`)}`;
}

function factValues(columns: FactColumns): unknown[] {
  return [columns.added, columns.removed, columns.created, columns.groupStart, columns.groupUser, columns.groupName, columns.groupAdded, columns.groupRemoved];
}

const FACT_COLUMN_NAMES = 'added, removed, created, group_start, group_user, group_name, group_added, group_removed';

const CURSOR_CACHE_LIMIT = 2048;
/** How long a document stays on the locking path after another instance's entries were found in its log. */
const CONTENDED_MS = 5_000;
/**
 * An append transaction unanswered for this long (or twice the lock wait, if
 * longer) makes the store unhealthy while it waits: a silent network path
 * fails no statement until the query timeout, and /readyz must not say ready
 * meanwhile.
 */
const SILENT_WRITE_MS = 10_000;
const VERIFY_PAGE = 2000;

type WorkerReply = { ready: true } | { doc: string; result?: CompactionResult | null; error?: string };

export function openPostgresEventStore(options: PostgresEventStoreOptions): PostgresEventStore {
  return new PostgresEventStore(options);
}

export class PostgresEventStore implements EventStore, LogTransfer {
  readonly backend = 'postgres' as const;
  private readonly where: PostgresUrl;
  private readonly options: Required<Omit<PostgresEventStoreOptions, 'onCompaction'>> & Pick<PostgresEventStoreOptions, 'onCompaction'>;
  private readonly pool: pg.Pool;
  private readonly ready: Promise<void>;
  /** Sent with every NOTIFY, so this store ignores its own. */
  private readonly storeId = randomBytes(8).toString('hex');
  private readonly cursors = new Map<string, LogCursor>();
  private pending: PendingAppend[] = [];
  private writing: Promise<void> | null = null;
  private closed = false;
  private lastWriteFailed = false;
  private connectionLost = false;
  private probing = false;
  private lastProbeAt = 0;
  /** When the append transaction in flight started; null when none is. */
  private writeStartedAt: number | null = null;
  private readonly changeListener: ChangeListener;
  private worker: Worker | null = null;
  private workerReady = false;
  private readonly compactionQueue = new Set<string>();
  private compactionRunning: string | null = null;
  private compactionStartedAt = 0;
  private compactionIdleWaiters: Array<() => void> = [];

  constructor(options: PostgresEventStoreOptions) {
    this.options = {
      retention: 'all',
      compactAfterEntries: 500,
      compactAfterBytes: 1024 * 1024,
      keepSnapshotsEvery: 2_000,
      background: false,
      readonly: false,
      busyTimeoutMs: 5000,
      poolSize: 8,
      loadWaitMs: 30_000,
      // Options given as undefined keep their defaults.
      ...(Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as PostgresEventStoreOptions),
    };
    try {
      this.where = parsePostgresUrl(options.url);
    } catch (error) {
      throw new StoreError('STORE_OPEN_FAILED', `--data: ${reason(error)}`, { cause: error });
    }
    // A connection that breaks (PostgreSQL restarted, network cut) is dropped
    // by the pool; the store reports itself unhealthy until a probe gets
    // through again.
    try {
      this.pool = createPool({
        url: options.url, max: this.options.poolSize, lockTimeoutMs: this.options.busyTimeoutMs, applicationName: 'palimpsest',
        onConnectionLost: () => {
          this.connectionLost = true;
        },
      });
    } catch (error) {
      // A certificate file named by sslrootcert, sslcert or sslkey that cannot be read.
      throw new StoreError('STORE_OPEN_FAILED', `--data: ${reason(error)}`, { cause: error });
    }
    this.changeListener = new ChangeListener(options.url, this.storeId);
    this.ready = this.openSchema();
    // Whoever uses the store sees the failure; an unobserved one must not crash the process.
    this.ready.catch(() => undefined);
  }

  /** The URL without its password. */
  get path(): string {
    return this.where.display;
  }

  private async openSchema(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw new StoreError('STORE_OPEN_FAILED', describeConnectError(error, this.where), { cause: error });
    }
    try {
      await migrate(client, `PostgreSQL database ${this.where.database} at ${this.where.host}`, { readonly: this.options.readonly });
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError('STORE_OPEN_FAILED',
        `cannot use PostgreSQL database ${this.where.database} at ${this.where.host}: ${reason(error)}`, { cause: error });
    } finally {
      client.release();
    }
    if (this.options.background && !this.options.readonly) this.compactionWorker();
  }

  opened(): Promise<void> {
    return this.ready;
  }

  private policy(): CompactionPolicy {
    return { retention: this.options.retention, keepSnapshotsEvery: this.options.keepSnapshotsEvery };
  }

  /**
   * False after a failed write or once a connection broke. A probe (at most
   * once a second) takes the locks an append takes, without waiting, and
   * lets the store report itself healthy again without a client's write.
   */
  healthy(): boolean {
    if (this.closed) return false;
    const unhealthy = this.lastWriteFailed || this.connectionLost || this.changeListener.lost || this.writeSilentMs() !== null;
    if (unhealthy && !this.probing && Date.now() - this.lastProbeAt >= 1000) {
      this.lastProbeAt = Date.now();
      void this.probe();
    }
    return !unhealthy;
  }

  healthProblem(): string | null {
    if (this.closed) return 'the event store is closed';
    if (!this.healthy()) {
      if (this.connectionLost || this.changeListener.lost) return `lost the connection to PostgreSQL at ${this.where.host}`;
      const silentMs = this.writeSilentMs();
      if (silentMs !== null) return `no answer from PostgreSQL at ${this.where.host} to a write for ${Math.round(silentMs / 1000)} s`;
      return `the last write to PostgreSQL at ${this.where.host} failed`;
    }
    return null;
  }

  private writeSilentMs(): number | null {
    if (this.writeStartedAt === null) return null;
    const waited = Date.now() - this.writeStartedAt;
    return waited >= Math.max(SILENT_WRITE_MS, 2 * this.options.busyTimeoutMs) ? waited : null;
  }

  private async probe(): Promise<void> {
    this.probing = true;
    let client: pg.PoolClient | null = null;
    let failure: Error | undefined;
    try {
      client = await this.pool.connect();
      if (this.options.readonly) await client.query('SELECT 1');
      else {
        await client.query('BEGIN');
        // The locks an append takes; NOWAIT: a blocked writer is still unhealthy.
        await client.query('LOCK TABLE documents, updates IN ROW EXCLUSIVE MODE NOWAIT');
        await client.query('ROLLBACK');
      }
      this.lastWriteFailed = false;
      this.connectionLost = false;
    } catch (error) {
      failure = error as Error;
      if (client !== null) await client.query('ROLLBACK').catch(() => undefined);
    } finally {
      client?.release(failure);
      this.probing = false;
    }
  }

  append(doc: string, update: Uint8Array, meta: AppendMeta, options: AppendOptions = {}): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'the event store is closed'));
    if (this.options.readonly) return Promise.reject(new StoreError('STORE_WRITE_FAILED', `${this.path} is open read-only`));
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

  /**
   * One transaction in flight at a time; what arrives meanwhile waits for
   * the next one, so the busier the store, the larger its batches.
   */
  private scheduleFlush(): void {
    if (this.writing !== null) return;
    this.writing = new Promise((resolve) => setImmediate(resolve)).then(() => this.flush()).finally(() => {
      this.writing = null;
      if (this.pending.length > 0) this.scheduleFlush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const touched = new Map<string, LogCursor>();
    let results: Array<AppendResult | MalformedUpdateError>;
    try {
      await this.ready;
      results = await this.writeBatch(batch, touched);
    } catch (error) {
      // Cursors were advanced in place: forget them, so the next write rebuilds them from the database.
      for (const doc of touched.keys()) this.cursors.delete(doc);
      this.lastWriteFailed = true;
      if (isConnectionError(error)) this.connectionLost = true;
      const failure = error instanceof StoreError ? error
        : new StoreError('STORE_WRITE_FAILED', `could not write to PostgreSQL at ${this.where.host}: ${reason(error)}`, { cause: error });
      for (const item of batch) item.reject(failure);
      return;
    }
    this.lastWriteFailed = false;
    for (const [doc, cursor] of touched) this.remember(doc, cursor);
    const { compactAfterEntries, compactAfterBytes } = this.options;
    const due = [...touched].filter(([, cursor]) =>
      (compactAfterEntries > 0 && cursor.entriesSinceSnapshot >= compactAfterEntries) ||
      (compactAfterBytes > 0 && cursor.bytesSinceSnapshot >= compactAfterBytes)).map(([doc]) => doc);
    // Without a worker (CLI, tests), compactions are done before the appends
    // that made them due resolve, as on SQLite: what callers read next is compacted.
    if (!this.options.background) for (const doc of due) await this.compactInline(doc);
    batch.forEach((item, i) => {
      const result = results[i];
      if (result instanceof MalformedUpdateError) item.reject(result);
      else item.resolve(result);
    });
    if (this.options.background) for (const doc of due) this.scheduleCompaction(doc);
  }

  private async compactInline(doc: string): Promise<void> {
    const started = performance.now();
    try {
      const result = await compactDocument(this.pool, doc, this.policy());
      if (result !== null) this.afterCompaction(doc, result);
      this.options.onCompaction?.({ doc, result, durationMs: performance.now() - started });
    } catch (error) {
      this.options.onCompaction?.({ doc, error: reason(error), durationMs: performance.now() - started });
    }
  }

  private async writeBatch(batch: PendingAppend[], touched: Map<string, LogCursor>): Promise<Array<AppendResult | MalformedUpdateError>> {
    // Rows are locked in one order (byte order, as the "C" collation sorts)
    // by every instance, so two batches touching the same documents cannot deadlock.
    const docs = [...new Set(batch.map((item) => item.doc))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.writeStartedAt = Date.now();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      this.writeStartedAt = null;
      throw error;
    }
    let failure: Error | undefined;
    try {
      if (this.fastPathFits(docs)) {
        const written = await this.writeInOneStatement(client, batch, touched);
        if (written !== null) return written;
        // Another instance appended or pruned meanwhile: nothing was written; the locking transaction catches up.
        touched.clear();
      }
      await client.query('BEGIN');
      const unknown = docs.filter((doc) => !this.cursors.has(doc));
      if (unknown.length > 0) {
        await client.query('INSERT INTO documents (doc) SELECT unnest($1::text[]) ON CONFLICT (doc) DO NOTHING', [unknown]);
      }
      const locked = await client.query<{ doc: string; last_seq: number }>(
        'SELECT doc, last_seq FROM documents WHERE doc = ANY($1::text[]) ORDER BY doc FOR UPDATE', [docs]);
      const lastSeqs = new Map(locked.rows.map((row) => [row.doc, row.last_seq]));
      for (const doc of docs) {
        const lastSeq = lastSeqs.get(doc);
        if (lastSeq === undefined) throw new Error(`the row of document ${doc} is missing`);
        touched.set(doc, await this.cursorForWrite(client, doc, lastSeq));
      }
      const seqBefore = new Map([...touched].map(([doc, cursor]) => [doc, cursor.lastSeq]));

      const receivedAt = new Date().toISOString();
      const rows: NewEntry[] = [];
      const results = batch.map((item): AppendResult | MalformedUpdateError => {
        const cursor = touched.get(item.doc)!;
        let part: Uint8Array | null;
        try {
          part = uncoveredPart(cursor.coverage, item.update, item.alreadyDeleted);
        } catch (error) {
          // An update Yjs decoded but cannot diff fails alone, not the whole batch.
          return new MalformedUpdateError(error);
        }
        if (part === null) return { seq: null, size: 0 };
        const seq = cursor.lastSeq + 1;
        rows.push({ doc: item.doc, seq, receivedAt, instanceId: item.meta.instanceId, user: item.meta.user, displayName: item.meta.displayName ?? null, bytes: part });
        cursor.lastSeq = seq;
        foldInto(cursor.coverage, item.update);
        cursor.entriesSinceSnapshot += 1;
        cursor.bytesSinceSnapshot += part.length;
        return { seq, size: part.length };
      });
      if (rows.length > 0) {
        const changed = docs.filter((doc) => touched.get(doc)!.lastSeq !== seqBefore.get(doc));
        // The links are read from the log here: another instance's compaction
        // may have pruned the entry a cached link describes (its last seq unchanged).
        const { columns: facts, links } = await factColumns(client, rows.map((r) => ({ ...r, receivedAt: Date.parse(r.receivedAt) })));
        for (const [doc, link] of links) touched.get(doc)!.link = link;
        // One statement: the entries, the documents' last seqs, and the
        // notification other instances receive once this commits.
        await client.query(
          `WITH logged AS (
             INSERT INTO updates (doc, seq, received_at, instance_id, "user", size, update_bytes, display_name, ${FACT_COLUMN_NAMES})
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::integer[], $7::bytea[], $12::text[],
               ${factParameters(13)})
           ), moved AS (
             UPDATE documents SET last_seq = moved.seq, changed_xid = pg_current_xact_id()
             FROM unnest($8::text[], $9::bigint[]) AS moved (doc, seq) WHERE documents.doc = moved.doc
           )
           SELECT pg_notify($10, $11)`,
          [
            rows.map((r) => r.doc), rows.map((r) => r.seq), rows.map((r) => r.receivedAt), rows.map((r) => r.instanceId),
            rows.map((r) => r.user), rows.map((r) => r.bytes.length), rows.map((r) => Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength)),
            changed, changed.map((doc) => touched.get(doc)!.lastSeq), CHANGES_CHANNEL, this.storeId, rows.map((r) => r.displayName),
            ...factValues(facts),
          ]);
      }
      await client.query('COMMIT');
      return results;
    } catch (error) {
      failure = error as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      this.writeStartedAt = null;
      // A connection that failed mid-transaction is not reused.
      client.release(failure);
    }
  }

  /** Whether every document of a batch has a cursor this instance trusts to be current (see writeInOneStatement). */
  private fastPathFits(docs: string[]): boolean {
    const now = Date.now();
    return docs.every((doc) => {
      const cursor = this.cursors.get(doc);
      return cursor !== undefined && cursor.link !== undefined && (cursor.contendedUntil ?? 0) <= now;
    });
  }

  /**
   * A batch written in one statement, one round trip, committed on its own
   * (no BEGIN/COMMIT): the statement locks the documents' rows (in the
   * order every writer locks them), checks that their last seqs are the ones
   * the cached cursors were built from, and only then inserts the entries,
   * moves the last seqs and notifies. The coverage check ran against those
   * cursors, so it saw the log as it is under the lock, as on the locking
   * path. Returns null, having written nothing, when a last seq differs
   * (another instance appended) or the entry a cursor's group link
   * describes is gone (another instance's compaction pruned it): the
   * cursors are left as they were.
   */
  private async writeInOneStatement(client: pg.PoolClient, batch: PendingAppend[], touched: Map<string, LogCursor>):
  Promise<Array<AppendResult | MalformedUpdateError> | null> {
    const perDoc = new Map<string, number>();
    for (const item of batch) perDoc.set(item.doc, (perDoc.get(item.doc) ?? 0) + 1);
    // Working copies: a document with several appends in the batch gets a copy of its coverage to fold them into;
    // one with a single append is folded into after the commit. The cached cursors change only once it committed.
    const originals = new Map<string, LogCursor>();
    const working = new Map<string, { from: number; lastSeq: number; coverage: Coverage; entries: number; bytes: number }>();
    for (const [doc, count] of perDoc) {
      const cursor = this.cursors.get(doc)!;
      originals.set(doc, cursor);
      working.set(doc, { from: cursor.lastSeq, lastSeq: cursor.lastSeq, coverage: count > 1 ? cloneCoverage(cursor.coverage) : cursor.coverage, entries: 0, bytes: 0 });
    }
    const foldAfter: Array<{ coverage: Coverage; update: DecodedUpdate }> = [];
    const receivedAt = new Date().toISOString();
    const rows: NewEntry[] = [];
    const results = batch.map((item): AppendResult | MalformedUpdateError => {
      const cursor = working.get(item.doc)!;
      let part: Uint8Array | null;
      try {
        part = uncoveredPart(cursor.coverage, item.update, item.alreadyDeleted);
      } catch (error) {
        return new MalformedUpdateError(error);
      }
      if (part === null) return { seq: null, size: 0 };
      const seq = cursor.lastSeq + 1;
      rows.push({ doc: item.doc, seq, receivedAt, instanceId: item.meta.instanceId, user: item.meta.user, displayName: item.meta.displayName ?? null, bytes: part });
      cursor.lastSeq = seq;
      if (perDoc.get(item.doc)! > 1) foldInto(cursor.coverage, item.update);
      else foldAfter.push({ coverage: cursor.coverage, update: item.update });
      cursor.entries += 1;
      cursor.bytes += part.length;
      return { seq, size: part.length };
    });
    // Nothing new: coverage only grows, so what it covers now stays covered whatever others append.
    if (rows.length === 0) return results;
    const changed = [...working.keys()].filter((doc) => working.get(doc)!.entries > 0)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const { columns: facts, links } = await factColumns(client, rows.map((r) => ({ ...r, receivedAt: Date.parse(r.receivedAt) })), knownLinks(originals));
    // Should the statement fail, these cursors are forgotten (flush), in case it committed unanswered.
    for (const doc of changed) touched.set(doc, originals.get(doc)!);
    const { rows: [answer] } = await client.query<{ ok: boolean }>(
      `WITH locked AS MATERIALIZED (
         SELECT doc, last_seq FROM documents WHERE doc = ANY($8::text[]) ORDER BY doc FOR UPDATE
       ), checked AS MATERIALIZED (
         SELECT count(*) = cardinality($8::text[]) AND coalesce(bool_and(locked.last_seq = wanted.seq), false)
           -- The entry each cached group link describes is still there (a compaction elsewhere may have pruned it).
           AND NOT EXISTS (SELECT 1 FROM unnest($8::text[], $13::bigint[]) AS kept (doc, seq)
                           WHERE kept.seq > 0 AND NOT EXISTS (SELECT 1 FROM updates u WHERE u.doc = kept.doc AND u.seq = kept.seq)) AS ok
         FROM locked JOIN unnest($8::text[], $13::bigint[]) AS wanted (doc, seq) ON locked.doc = wanted.doc
       ), logged AS (
         INSERT INTO updates (doc, seq, received_at, instance_id, "user", size, update_bytes, display_name, ${FACT_COLUMN_NAMES})
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::integer[], $7::bytea[], $12::text[],
           ${factParameters(14)}) WHERE (SELECT ok FROM checked)
       ), moved AS (
         UPDATE documents SET last_seq = moved.seq, changed_xid = pg_current_xact_id()
         FROM unnest($8::text[], $9::bigint[]) AS moved (doc, seq) WHERE documents.doc = moved.doc AND (SELECT ok FROM checked)
       )
       SELECT ok, CASE WHEN ok THEN pg_notify($10, $11) END AS notified FROM checked`,
      [
        rows.map((r) => r.doc), rows.map((r) => r.seq), rows.map((r) => r.receivedAt), rows.map((r) => r.instanceId),
        rows.map((r) => r.user), rows.map((r) => r.bytes.length), rows.map((r) => Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength)),
        changed, changed.map((doc) => working.get(doc)!.lastSeq), CHANGES_CHANNEL, this.storeId, rows.map((r) => r.displayName),
        changed.map((doc) => working.get(doc)!.from), ...factValues(facts),
      ]);
    if (answer?.ok !== true) return null;
    for (const { coverage, update } of foldAfter) foldInto(coverage, update);
    touched.clear();
    for (const [doc, done] of working) {
      const cursor = originals.get(doc)!;
      cursor.lastSeq = done.lastSeq;
      cursor.coverage = done.coverage;
      cursor.entriesSinceSnapshot += done.entries;
      cursor.bytesSinceSnapshot += done.bytes;
      const link = links.get(doc);
      if (link !== undefined) cursor.link = link;
      touched.set(doc, cursor);
    }
    return results;
  }

  /**
   * The document's cursor brought up to `lastSeq`, the seq of its locked
   * row: the cached one as is when nobody else appended, else with the
   * entries others appended folded in; rebuilt from the latest snapshot when
   * not cached or when those entries have a gap (a compaction pruned them).
   */
  private async cursorForWrite(client: pg.PoolClient, doc: string, lastSeq: number): Promise<LogCursor> {
    const cached = this.cursors.get(doc);
    // Out of the cache while it is brought up to date: should anything fail, the next write starts from the database.
    this.cursors.delete(doc);
    if (cached !== undefined && cached.lastSeq <= lastSeq) {
      if (cached.lastSeq < lastSeq) {
        cached.link = undefined;
        cached.contendedUntil = Date.now() + CONTENDED_MS;
        const { rows } = await client.query<{ seq: number; update_bytes: Buffer }>(
          'SELECT seq, update_bytes FROM updates WHERE doc = $1 AND seq > $2 ORDER BY seq', [doc, cached.lastSeq]);
        for (const entry of rows) {
          if (entry.seq !== cached.lastSeq + 1) break;
          foldInto(cached.coverage, decodeUpdate(entry.update_bytes, false));
          cached.lastSeq = entry.seq;
          cached.entriesSinceSnapshot += 1;
          cached.bytesSinceSnapshot += entry.update_bytes.length;
        }
      }
      if (cached.lastSeq === lastSeq) return cached;
    }
    const snapshot = (await client.query<{ seq: number; coverage: Buffer }>(
      'SELECT seq, coverage FROM snapshots WHERE doc = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1', [doc, lastSeq])).rows[0];
    const cursor: LogCursor = {
      lastSeq: snapshot?.seq ?? 0,
      coverage: snapshot === undefined ? emptyCoverage() : decodeCoverage(snapshot.coverage),
      entriesSinceSnapshot: 0, bytesSinceSnapshot: 0,
    };
    const { rows } = await client.query<{ seq: number; update_bytes: Buffer }>(
      'SELECT seq, update_bytes FROM updates WHERE doc = $1 AND seq > $2 AND seq <= $3 ORDER BY seq', [doc, cursor.lastSeq, lastSeq]);
    for (const entry of rows) {
      foldInto(cursor.coverage, decodeUpdate(entry.update_bytes, false));
      cursor.lastSeq = entry.seq;
      cursor.entriesSinceSnapshot += 1;
      cursor.bytesSinceSnapshot += entry.update_bytes.length;
    }
    if (cursor.lastSeq !== lastSeq) throw new Error(`the log of ${doc} ends at seq ${cursor.lastSeq}, its row says ${lastSeq}`);
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

  /**
   * Runs `read` in one consistent view of the database (REPEATABLE READ, read
   * only). A `read` of one statement passes `oneStatement`: a statement sees
   * one snapshot anyway, and the BEGIN and COMMIT round trips are saved (they
   * are on the path by which an entry logged elsewhere reaches this
   * instance's clients).
   */
  private async reading<T>(read: (client: pg.PoolClient) => Promise<T>, options: { oneStatement?: boolean } = {}): Promise<T> {
    const transaction = options.oneStatement !== true;
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the event store is closed');
    await this.ready;
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      this.connectionLost = true;
      throw new StoreError('STORE_UNAVAILABLE', describeConnectError(error, this.where), { cause: error });
    }
    let failure: Error | undefined;
    try {
      if (transaction) await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const result = await read(client);
      if (transaction) await client.query('COMMIT');
      return result;
    } catch (error) {
      failure = error as Error;
      if (transaction) await client.query('ROLLBACK').catch(() => undefined);
      if (error instanceof StoreError) throw error;
      if (isConnectionError(error)) this.connectionLost = true;
      throw new StoreError('STORE_UNAVAILABLE', `could not read from PostgreSQL at ${this.where.host}: ${reason(error)}`, { cause: error });
    } finally {
      client.release(failure instanceof StoreError ? undefined : failure);
    }
  }

  /**
   * While PostgreSQL cannot be reached, a load waits for it (up to
   * loadWaitMs) instead of failing at once: the client that opened the
   * document then simply waits, rather than being refused a document whose
   * refusal clients take as final (Hocuspocus answers a failed load with
   * PermissionDenied).
   */
  async load(doc: string): Promise<LoadedDocument> {
    const deadline = Date.now() + this.options.loadWaitMs;
    for (;;) {
      try {
        return await this.loadOnce(doc);
      } catch (error) {
        const unavailable = error instanceof StoreError && error.code === 'STORE_UNAVAILABLE';
        if (!unavailable || this.closed || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async loadOnce(doc: string): Promise<LoadedDocument> {
    return this.reading(async (client) => {
      const row = await lastSeqOf(client, doc);
      if (row === null) return { doc, seq: 0, snapshot: null, tail: [] };
      const snapshot = (await client.query<{ seq: number; state: Buffer }>(
        'SELECT seq, state FROM snapshots WHERE doc = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1', [doc, row])).rows[0];
      const tail = (await client.query<{ update_bytes: Buffer }>(
        'SELECT update_bytes FROM updates WHERE doc = $1 AND seq > $2 AND seq <= $3 ORDER BY seq', [doc, snapshot?.seq ?? 0, row])).rows;
      return {
        doc, seq: row,
        snapshot: snapshot === undefined ? null : { seq: snapshot.seq, state: snapshot.state },
        tail: tail.map((r) => r.update_bytes),
      };
    });
  }

  async stateAt(doc: string, seq?: number): Promise<DocumentState> {
    const plan = await this.reading(async (client) => {
      const lastSeq = (await lastSeqOf(client, doc)) ?? 0;
      const target = seq ?? lastSeq;
      if (!Number.isSafeInteger(target) || target < 0 || target > lastSeq) {
        throw new StoreError('UNKNOWN_SEQ', `${doc} has no seq ${target} (its log ends at ${lastSeq})`);
      }
      if (target === 0) return { target, base: null, tail: [] as Uint8Array[] };
      const snapshot = (await client.query<{ seq: number; state: Buffer }>(
        'SELECT seq, state FROM snapshots WHERE doc = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1', [doc, target])).rows[0];
      const from = snapshot?.seq ?? 0;
      const tail = (await client.query<{ update_bytes: Buffer }>(
        'SELECT update_bytes FROM updates WHERE doc = $1 AND seq > $2 AND seq <= $3 ORDER BY seq', [doc, from, target])).rows;
      if (tail.length !== target - from) {
        throw new StoreError('HISTORY_PRUNED',
          `${doc} at seq ${target} is no longer available: the retention policy dropped those log entries`);
      }
      return { target, base: snapshot?.state ?? null, tail: tail.map((r) => r.update_bytes) };
    });
    const ydoc = replay(plan.base, plan.tail);
    const update = Y.encodeStateAsUpdate(ydoc);
    ydoc.destroy();
    return { doc, seq: plan.target, update };
  }

  async entries(doc: string, options: { afterSeq?: number; limit?: number } = {}): Promise<LogEntry[]> {
    return this.reading(async (client) => {
      const { rows } = await client.query<{
        seq: number; received_at: Date; instance_id: string; user: string | null; display_name: string | null; size: number; update_bytes: Buffer;
      }>(
        `SELECT seq, received_at, instance_id, "user", display_name, size, update_bytes FROM updates
         WHERE doc = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [doc, options.afterSeq ?? 0, options.limit ?? null]);
      return rows.map((r) => ({
        seq: r.seq, receivedAt: r.received_at, instanceId: r.instance_id, user: r.user, displayName: r.display_name, size: r.size, update: r.update_bytes,
      }));
    }, { oneStatement: true });
  }

  async summaries(doc: string, query: SummaryQuery): Promise<EntrySummary[]> {
    const withCreated = query.withCreated === true;
    const parameters: unknown[] = [doc];
    let where: string;
    if (query.seqs !== undefined) {
      parameters.push(query.seqs);
      where = 'seq = ANY($2::bigint[])';
    } else {
      parameters.push(query.fromSeq ?? 0, query.toSeq ?? Number.MAX_SAFE_INTEGER);
      where = 'seq >= $2 AND seq <= $3';
    }
    parameters.push(query.limit ?? null);
    const missing = withCreated ? 'added IS NULL OR created IS NULL' : 'added IS NULL';
    return this.reading(async (client) => {
      const { rows } = await client.query<{
        seq: string; received_at: Date; user: string | null; display_name: string | null; added: number | null; removed: number | null;
        created: Buffer | null; group_start: string | null; group_user: string | null; group_name: string | null;
        group_added: string | null; group_removed: string | null; update_bytes: Buffer | null;
      }>(
        `SELECT seq, received_at, "user", display_name, added, removed, ${withCreated ? 'created' : 'NULL::bytea AS created'},
           group_start, group_user, group_name, group_added, group_removed, CASE WHEN ${missing} THEN update_bytes END AS update_bytes
         FROM updates WHERE doc = $1 AND ${where}
         ${query.authored === true ? 'AND ("user" IS NOT NULL OR display_name IS NOT NULL)' : ''}
         ORDER BY seq ${query.descending === true ? 'DESC' : 'ASC'} LIMIT $${parameters.length}`, parameters);
      return rows.map((r): EntrySummary => {
        const facts = r.update_bytes === null ? null : factsOf(r.update_bytes);
        return {
          seq: Number(r.seq), receivedAt: r.received_at, user: r.user, displayName: r.display_name,
          added: r.added ?? facts!.added, removed: r.removed ?? facts!.removed,
          created: withCreated ? r.created ?? facts!.created : null,
          group: r.group_start === null ? null : {
            start: Number(r.group_start), user: r.group_user, displayName: r.group_name,
            added: Number(r.group_added ?? 0), removed: Number(r.group_removed ?? 0),
          },
        };
      });
    });
  }

  async authorshipBlocks(doc: string, upToSeq: number): Promise<AuthorshipBlockRecord[]> {
    return this.reading(async (client) => (await client.query<{ from_seq: string; to_seq: string; data: Buffer }>(
      'SELECT from_seq, to_seq, data FROM authorship_blocks WHERE doc = $1 AND from_seq <= $2 ORDER BY from_seq', [doc, upToSeq])).rows
      .map((r) => ({ fromSeq: Number(r.from_seq), toSeq: Number(r.to_seq), data: r.data })));
  }

  async saveAuthorshipBlock(doc: string, block: AuthorshipBlockRecord): Promise<void> {
    await this.inTransaction(async (client) => {
      await client.query(
        `INSERT INTO authorship_blocks (doc, from_seq, to_seq, data) SELECT $1, $2, $3, $4
         WHERE EXISTS (SELECT 1 FROM documents WHERE doc = $1) ON CONFLICT DO NOTHING`,
        [doc, block.fromSeq, block.toSeq, Buffer.from(block.data.buffer, block.data.byteOffset, block.data.byteLength)]);
    });
  }

  async groupStarts(doc: string, query: { fromSeq: number; toSeq: number; limit: number }): Promise<number[]> {
    return this.reading(async (client) => (await client.query<{ seq: string }>(
      `SELECT seq FROM updates WHERE doc = $1 AND group_start = seq AND seq >= $2 AND seq <= $3 ORDER BY seq DESC LIMIT $4`,
      [doc, query.fromSeq, query.toSeq, query.limit])).rows.map((r) => Number(r.seq)));
  }

  async seqAtTime(doc: string, at: Date): Promise<number> {
    return this.reading(async (client) => {
      const { rows } = await client.query<{ seq: number | null }>(
        'SELECT max(seq) AS seq FROM updates WHERE doc = $1 AND received_at <= $2', [doc, at.toISOString()]);
      return rows[0]?.seq === null || rows[0]?.seq === undefined ? 0 : Number(rows[0].seq);
    });
  }

  async nameVersion(doc: string, version: VersionName): Promise<void> {
    await this.inTransaction(async (client) => {
      const lastSeq = (await client.query<{ last_seq: number }>('SELECT last_seq FROM documents WHERE doc = $1', [doc])).rows[0]?.last_seq ?? 0;
      if (version.seq < 1 || version.seq > Number(lastSeq)) {
        throw new StoreError('UNKNOWN_SEQ', `${doc} has no seq ${version.seq} (its last seq is ${lastSeq})`);
      }
      await client.query(
        `INSERT INTO version_names (doc, seq, name, "user", created_at, restored_from, display_name) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (doc, seq) DO UPDATE SET name = excluded.name, "user" = excluded."user", created_at = excluded.created_at,
           display_name = excluded.display_name,
           restored_from = coalesce(excluded.restored_from, version_names.restored_from)`,
        [doc, version.seq, version.name, version.user, version.createdAt.toISOString(), version.restoredFrom, version.displayName ?? null]);
    });
  }

  async versionNames(doc: string): Promise<VersionName[]> {
    return this.reading(async (client) => (await client.query<{
      seq: number; name: string; user: string | null; created_at: Date; restored_from: number | null; display_name: string | null;
    }>('SELECT seq, name, "user", created_at, restored_from, display_name FROM version_names WHERE doc = $1 ORDER BY seq', [doc])).rows
      .map((r) => ({
        seq: Number(r.seq), name: r.name, user: r.user, displayName: r.display_name, createdAt: r.created_at, restoredFrom: r.restored_from === null ? null : Number(r.restored_from),
      })));
  }

  async snapshotRecords(doc: string): Promise<SnapshotRecord[]> {
    return this.reading(async (client) => (await client.query<{ seq: number; created_at: Date; state: Buffer; coverage: Buffer }>(
      'SELECT seq, created_at, state, coverage FROM snapshots WHERE doc = $1 ORDER BY seq', [doc])).rows
      .map((r) => ({ seq: r.seq, createdAt: r.created_at, state: r.state, coverage: r.coverage })));
  }

  async importSnapshot(doc: string, snapshot: SnapshotRecord): Promise<void> {
    await this.inTransaction(async (client) => {
      await client.query('INSERT INTO documents (doc) VALUES ($1) ON CONFLICT (doc) DO NOTHING', [doc]);
      await client.query('INSERT INTO snapshots (doc, seq, created_at, state, coverage) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
        [doc, snapshot.seq, snapshot.createdAt.toISOString(), Buffer.from(snapshot.state), Buffer.from(snapshot.coverage)]);
    });
  }

  async importEntries(doc: string, entries: LogEntry[], lastSeq: number): Promise<void> {
    // The cached cursor does not know of these entries.
    this.cursors.delete(doc);
    await this.inTransaction(async (client) => {
      await client.query('INSERT INTO documents (doc) VALUES ($1) ON CONFLICT (doc) DO NOTHING', [doc]);
      const rowSeq = (await client.query<{ last_seq: number }>('SELECT last_seq FROM documents WHERE doc = $1 FOR UPDATE', [doc])).rows[0].last_seq;
      const logEmpty = (await client.query<{ seq: number | null }>('SELECT min(seq) AS seq FROM updates WHERE doc = $1', [doc])).rows[0].seq === null;
      let seq = rowSeq;
      const fresh: LogEntry[] = [];
      for (const entry of entries) {
        if (entry.seq <= seq) continue;
        if (entry.seq !== seq + 1 && !(logEmpty && seq === rowSeq)) {
          throw new StoreError('STORE_WRITE_FAILED', `${doc}: entry ${entry.seq} does not follow seq ${seq}`);
        }
        fresh.push(entry);
        seq = entry.seq;
      }
      if (fresh.length > 0) {
        const facts = (await factColumns(client, fresh.map((e) => ({
          doc, seq: e.seq, receivedAt: e.receivedAt.getTime(), user: e.user, displayName: e.displayName ?? null, bytes: e.update,
        })))).columns;
        await client.query(
          `INSERT INTO updates (doc, seq, received_at, instance_id, "user", size, update_bytes, display_name, ${FACT_COLUMN_NAMES})
           SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::integer[], $7::bytea[], $8::text[],
             ${factParameters(9)})`,
          [doc, fresh.map((e) => e.seq), fresh.map((e) => e.receivedAt.toISOString()), fresh.map((e) => e.instanceId),
            fresh.map((e) => e.user), fresh.map((e) => e.size), fresh.map((e) => Buffer.from(e.update.buffer, e.update.byteOffset, e.update.byteLength)),
            fresh.map((e) => e.displayName ?? null), ...factValues(facts)]);
      }
      const target = Math.max(seq, lastSeq);
      if (target !== rowSeq) {
        await client.query('UPDATE documents SET last_seq = $2, changed_xid = pg_current_xact_id() WHERE doc = $1', [doc, target]);
        await client.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, this.storeId]);
      }
    });
  }

  /** Runs `write` in one transaction (for copying; appends have their own batching). */
  private async inTransaction(write: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the event store is closed');
    await this.ready;
    const client = await this.pool.connect();
    let failure: Error | undefined;
    try {
      await client.query('BEGIN');
      await write(client);
      await client.query('COMMIT');
    } catch (error) {
      failure = error as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      if (error instanceof StoreError) throw error;
      throw new StoreError('STORE_WRITE_FAILED', `could not write to PostgreSQL at ${this.where.host}: ${reason(error)}`, { cause: error });
    } finally {
      client.release(failure instanceof StoreError ? undefined : failure);
    }
  }

  async documents(): Promise<string[]> {
    return this.reading(async (client) => (await client.query<{ doc: string }>('SELECT doc FROM documents ORDER BY doc')).rows.map((r) => r.doc));
  }

  /**
   * The cursor is a transaction id: the oldest one still running when the
   * query ran (pg_snapshot_xmin). Every transaction below it had finished, so
   * what it changed was seen; any later one stamped its documents with an id
   * at or above the cursor, so the next call sees them, committed by then or not.
   */
  async changesSince(cursor: string | null): Promise<ChangesSince> {
    const known = cursor !== null && /^\d+$/.test(cursor);
    return this.reading(async (client) => {
      if (cursor === null || !/^\d+$/.test(cursor)) {
        const now = await client.query<{ cursor: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS cursor');
        return { cursor: now.rows[0].cursor, changes: cursor === null ? [] : await this.allDocuments(client) };
      }
      const { rows } = await client.query<{ cursor: string; doc: string | null; last_seq: number | null }>(
        `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS cursor, d.doc, d.last_seq
         FROM (SELECT 1) AS one LEFT JOIN documents d ON d.changed_xid >= $1::xid8 AND d.last_seq > 0`, [cursor]);
      return {
        cursor: rows[0].cursor,
        changes: rows.filter((r) => r.doc !== null).map((r) => ({ doc: r.doc!, seq: r.last_seq! })),
      };
    }, { oneStatement: known });
  }

  async feed(after: string | null, options: { limit?: number } = {}): Promise<FeedPage> {
    // The cursor is "<xid>.<seq>.<base64url of the document name>" (schema.ts, migration 3);
    // anything else starts from the first entry.
    const { xid, seq, doc } = (after === null ? null : parseFeedCursor(after)) ?? { xid: '0', seq: 0, doc: '' };
    return this.reading(async (client) => {
      // One statement, one snapshot: its xmin bounds what is read.
      const { rows } = await client.query<{
        xid: string; doc: string; seq: number; received_at: Date; instance_id: string; user: string | null; display_name: string | null;
        size: number; update_bytes: Buffer;
      }>(
        `SELECT xid::text AS xid, doc, seq, received_at, instance_id, "user", display_name, size, update_bytes FROM updates
         WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) AND (xid, doc, seq) > ($1::xid8, $2::text COLLATE "C", $3::bigint)
         ORDER BY xid, doc, seq LIMIT $4`, [xid, doc, seq, options.limit ?? null]);
      const entries: FeedEntry[] = rows.map((r) => ({
        doc: r.doc, cursor: feedCursor(r.xid, r.seq, r.doc),
        seq: r.seq, receivedAt: r.received_at, instanceId: r.instance_id, user: r.user, displayName: r.display_name, size: r.size, update: r.update_bytes,
      }));
      return { entries, cursor: entries.length > 0 ? entries[entries.length - 1].cursor : after };
    });
  }

  async feedCursorProblem(cursor: string): Promise<string | null> {
    const parsed = parseFeedCursor(cursor);
    if (parsed === null) {
      return 'the feed cursors of this PostgreSQL store are <transaction id>.<seq>.<document name in base64url> ' +
        `(for example ${feedCursor('1234', 5, 'notes/today')})`;
    }
    // Every transaction id handed out so far is below the snapshot's xmax: the feed cannot have given a later one.
    const { rows } = await this.reading((client) => client.query<{ assigned: boolean }>(
      'SELECT $1::xid8 < pg_snapshot_xmax(pg_current_snapshot()) AS assigned', [parsed.xid]), { oneStatement: true });
    if (!rows[0].assigned) {
      return `transaction id ${parsed.xid} is past the end of this PostgreSQL store's feed: the database has not reached it ` +
        '(a cursor of another or a rebuilt database?)';
    }
    return null;
  }

  async readState(prefix: string): Promise<StateRecord[]> {
    return this.reading(async (client) => (await client.query<StateRecord>(
      'SELECT key, value FROM service_state WHERE left(key, $1) = $2 ORDER BY key', [prefix.length, prefix])).rows
      .map((r) => ({ key: r.key, value: r.value })));
  }

  async writeState(changes: Array<{ key: string; value: string | null }>): Promise<void> {
    await this.inTransaction(async (client) => {
      const puts = changes.filter((c) => c.value !== null);
      const deletes = changes.filter((c) => c.value === null).map((c) => c.key);
      if (deletes.length > 0) await client.query('DELETE FROM service_state WHERE key = ANY($1::text[])', [deletes]);
      if (puts.length > 0) {
        // The last value given for a key wins, as it would written one by one.
        const last = new Map(puts.map((c) => [c.key, c.value!]));
        await client.query(
          `INSERT INTO service_state (key, value) SELECT * FROM unnest($1::text[], $2::text[])
           ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [[...last.keys()], [...last.values()]]);
      }
    });
  }

  async takeLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    let taken = false;
    await this.inTransaction(async (client) => {
      // The database's clock, so that instances whose clocks differ agree on when a lease expires.
      const { rowCount } = await client.query(
        `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at < clock_timestamp()`, [name, holder, ttlMs]);
      taken = rowCount === 1;
    });
    return taken;
  }

  private async allDocuments(client: pg.PoolClient): Promise<Array<{ doc: string; seq: number }>> {
    const { rows } = await client.query<{ doc: string; last_seq: number }>('SELECT doc, last_seq FROM documents WHERE last_seq > 0');
    return rows.map((r) => ({ doc: r.doc, seq: r.last_seq }));
  }

  /** LISTEN/NOTIFY: see change-listener.ts. */
  watchChanges(listener: () => void): () => void {
    return this.changeListener.watch(listener);
  }

  async info(doc: string): Promise<DocumentInfo | null> {
    return this.reading(async (client) => {
      const lastSeq = await lastSeqOf(client, doc);
      if (lastSeq === null) return null;
      const log = (await client.query<{ updated_at: Date | null; first: number | null }>(
        // The last entry's time (entries get their times in seq order) from the primary key, not a scan of the log.
        `SELECT (SELECT received_at FROM updates WHERE doc = $1 ORDER BY seq DESC LIMIT 1) AS updated_at,
                (SELECT min(seq) FROM updates WHERE doc = $1) AS first`, [doc])).rows[0];
      const snapshots = (await client.query<{ seq: number; created_at: Date; size: number }>(
        'SELECT seq, created_at, octet_length(state) AS size FROM snapshots WHERE doc = $1 ORDER BY seq', [doc])).rows;
      return {
        doc, seq: lastSeq, updatedAt: log.updated_at,
        snapshots: snapshots.map((s) => ({ seq: s.seq, createdAt: s.created_at, size: s.size })),
        firstRetainedSeq: log.first,
      };
    });
  }

  async compact(doc: string): Promise<CompactionResult | null> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the event store is closed');
    await this.ready;
    const result = await compactDocument(this.pool, doc, this.policy());
    if (result !== null) this.afterCompaction(doc, result);
    return result;
  }

  private afterCompaction(doc: string, result: CompactionResult): void {
    const cursor = this.cursors.get(doc);
    if (cursor === undefined) return;
    // Retention may have pruned the entry the link describes; the next write reads it from the log.
    cursor.link = undefined;
    // Counts restart from the new snapshot; entries logged meanwhile stay counted (their bytes are not known here).
    cursor.entriesSinceSnapshot = Math.max(0, cursor.lastSeq - result.seq);
    if (cursor.entriesSinceSnapshot === 0) cursor.bytesSinceSnapshot = 0;
  }

  private scheduleCompaction(doc: string): void {
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
    this.compactionWorker().postMessage({ doc } satisfies PostgresWorkerRequest);
  }

  private finishCompaction(message: { doc: string; result?: CompactionResult | null; error?: string }): void {
    const durationMs = performance.now() - this.compactionStartedAt;
    if (message.result) this.afterCompaction(message.doc, message.result);
    this.options.onCompaction?.(message.error === undefined
      ? { doc: message.doc, result: message.result ?? null, durationMs }
      : { doc: message.doc, error: message.error, durationMs });
    this.compactionRunning = null;
    this.runNextCompaction();
  }

  private compactionWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const workerData: PostgresCompactionWorkerData = { url: this.options.url, policy: this.policy(), lockTimeoutMs: this.options.busyTimeoutMs };
    const worker = new Worker(new URL('./compaction-worker.js', import.meta.url), { workerData });
    worker.on('message', (message: WorkerReply) => {
      if ('ready' in message) {
        this.workerReady = true;
        this.wakeIdleWaiters();
        return;
      }
      this.finishCompaction(message);
    });
    worker.on('error', (error) => {
      const doc = this.compactionRunning;
      this.worker = null;
      this.workerReady = false;
      if (doc !== null) this.finishCompaction({ doc, error: reason(error) });
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** Resolves once the worker (if any) is up and no compaction is queued or running. */
  compactionsIdle(): Promise<void> {
    if (this.backgroundIdle()) return Promise.resolve();
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
    const names = await this.documents();
    const report: VerifyReport = { documents: names.length, entries: 0, snapshots: 0, problems: [] };
    for (const [index, doc] of names.entries()) {
      options.onProgress?.(doc, index, names.length);
      const checked = await this.verifyDocument(doc);
      report.entries += checked.entries;
      report.snapshots += checked.snapshots;
      report.problems.push(...checked.problems);
    }
    return report;
  }

  private verifyDocument(doc: string): Promise<{ entries: number; snapshots: number; problems: VerifyProblem[] }> {
    return this.reading(async (client) => {
      const lastSeq = await lastSeqOf(client, doc);
      if (lastSeq === null) return { entries: 0, snapshots: 0, problems: [] };
      const snapshots = (await client.query<{ seq: number; state: Buffer; coverage: Buffer }>(
        'SELECT seq, state, coverage FROM snapshots WHERE doc = $1 ORDER BY seq', [doc])).rows;
      const first = (await client.query<{ seq: number | null }>('SELECT min(seq) AS seq FROM updates WHERE doc = $1', [doc])).rows[0].seq;
      const verifier = new LogVerifier(doc, lastSeq, snapshots, first);
      if (verifier.afterSeq !== null) {
        // Page by seq: a long log need not fit in memory at once.
        for (let after = verifier.afterSeq; ;) {
          const { rows } = await client.query<{ seq: number; update_bytes: Buffer }>(
            'SELECT seq, update_bytes FROM updates WHERE doc = $1 AND seq > $2 ORDER BY seq LIMIT $3', [doc, after, VERIFY_PAGE]);
          for (const row of rows) verifier.entry(row.seq, row.update_bytes);
          if (rows.length < VERIFY_PAGE) break;
          after = rows[rows.length - 1].seq;
        }
      }
      const problems = verifier.finish();
      return { entries: verifier.entries, snapshots: snapshots.length, problems };
    });
  }

  /** Commits pending appends, stops background work, then closes the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    // Pending appends still go in (their callers were promised an answer).
    while (this.writing !== null || this.pending.length > 0) {
      if (this.writing === null) this.scheduleFlush();
      await this.writing;
    }
    this.closed = true;
    this.compactionQueue.clear();
    this.changeListener.close();
    if (this.worker !== null) {
      const worker = this.worker;
      this.worker = null;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.ref();
      worker.postMessage({ close: true } satisfies PostgresWorkerRequest);
      await exited;
    }
    for (const wake of this.compactionIdleWaiters.splice(0)) wake();
    await this.pool.end();
  }
}

/** The group links the cursors kept, for factColumns. */
function knownLinks(cursors: ReadonlyMap<string, LogCursor>): Map<string, GroupLink> {
  const links = new Map<string, GroupLink>();
  for (const [doc, cursor] of cursors) if (cursor.link !== undefined) links.set(doc, cursor.link);
  return links;
}

async function lastSeqOf(client: pg.PoolClient, doc: string): Promise<number | null> {
  const { rows } = await client.query<{ last_seq: number }>('SELECT last_seq FROM documents WHERE doc = $1', [doc]);
  return rows[0]?.last_seq ?? null;
}

/** The largest xid8 (an unsigned 64-bit number). */
const MAX_XID8 = 2n ** 64n - 1n;

/** The feed cursor of an entry: "<xid>.<seq>.<base64url of the document name>". */
function feedCursor(xid: string, seq: number, doc: string): string {
  return `${xid}.${seq}.${Buffer.from(doc, 'utf8').toString('base64url')}`;
}

/** The parts of a feed cursor as feedCursor writes them; null for anything it could not have written. */
function parseFeedCursor(cursor: string): { xid: string; seq: number; doc: string } | null {
  const match = /^([1-9]\d*)\.([1-9]\d*)\.([A-Za-z0-9_-]+)$/.exec(cursor);
  if (match === null || BigInt(match[1]) > MAX_XID8) return null;
  const seq = Number(match[2]);
  if (!Number.isSafeInteger(seq)) return null;
  const bytes = Buffer.from(match[3], 'base64url');
  const doc = bytes.toString('utf8');
  // Only the one spelling feedCursor gives, of a name that is valid UTF-8.
  if (bytes.toString('base64url') !== match[3] || !Buffer.from(doc, 'utf8').equals(bytes)) return null;
  return { xid: match[1], seq, doc };
}
