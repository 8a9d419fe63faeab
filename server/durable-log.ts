// The Hocuspocus extension that makes the log the truth:
//   - onLoadDocument: a document is the latest snapshot plus the log after it;
//   - beforeSync: every client update (sync step 2 or update) is checked and
//     its append started; Hocuspocus then applies it and fans it out at once,
//     and the socket's DurableAcks gate (durable-acks.ts) holds its SyncStatus
//     ack until the append — and every append of the document before it — has
//     committed, so an ack means "durable" and one fast connection's updates
//     are committed in groups;
//   - updates that arrive from other instances through Redis never pass
//     beforeSync, so they are never logged twice.
// When an append fails, its sender is closed without an ack (4503) and
// resends; the live document, which already holds the update, is repaired:
// its whole state is appended (the coverage check keeps only what the log
// lacks), retried until it commits. Until then the document's later acks wait,
// nothing counts as already deleted in it, and the Redis fan-out (which
// publishes only what is durable: durable()) waits too.
//
// Changes the server's own document makes (Yjs tidies redundant formatting
// marks after a remote change; a restore applied to the live document) are
// appended too (onChange), so the log always rebuilds exactly the document
// clients see; the coverage check makes any repeat of them free.
//
// With several instances, catch-up also folds into every loaded document what
// other instances logged: an update an instance acknowledged right before it
// crashed, or one whose Redis message was lost, still reaches the other
// instances' documents and clients. It asks the store once which documents
// changed since it last looked (changesSince), when the store says another
// instance committed (watchChanges: PostgreSQL's LISTEN/NOTIFY) and every
// `catchUpIntervalMs` as a backstop.

import type {
  Connection, Document, Extension, Hocuspocus, afterUnloadDocumentPayload, beforeSyncPayload, onChangePayload, onConfigurePayload, onLoadDocumentPayload,
} from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { checkUpdate, MalformedUpdateError, type AlreadyDeleted, type DecodedUpdate, type EventStore } from '../persistence/index.js';
import { CloseCodes, ConnectionRefusal } from './close-codes.js';
import { SyncStep } from './frames.js';
import type { Metrics } from './metrics.js';
import type { ConnectionContext } from './context.js';

export interface DurableLogOptions {
  store: EventStore;
  instanceId: string;
  logger: Logger;
  metrics: Metrics;
  /**
   * How often loaded documents read what other instances logged (0 = never;
   * for a single instance). Where the store tells of other instances' commits
   * this is only the backstop for a lost notification.
   */
  catchUpIntervalMs?: number;
}

/** Origin of what this extension applies from the log itself (load, catch-up): never appended again. */
const FROM_LOG = { source: 'local', skipStoreHooks: true } as const;

export interface DurableLog extends Extension {
  /** Resolves once everything applied to `document` so far is in the log (after a repair, if one was needed). */
  durable(document: Y.Doc): Promise<void>;
}

/** Backoff of the repair append after a failure: first retry, ceiling. */
const REPAIR_FIRST_RETRY_MS = 200;
const REPAIR_MAX_RETRY_MS = 5000;

export function createDurableLog(options: DurableLogOptions): DurableLog {
  const { store, instanceId, logger, metrics } = options;
  /**
   * Per live document: resolves once everything applied to it so far is in
   * the log. Each client update chains onto it; a failed append is covered by
   * the repair, so this never rejects.
   */
  const durableChain = new WeakMap<Y.Doc, Promise<void>>();
  const nothingPending = Promise.resolve();
  /** Live documents that may hold what the log lacks, and the repair under way. */
  const taintedDocuments = new WeakSet<Y.Doc>();
  const repairs = new WeakMap<Y.Doc, { failures: number; done: Promise<void> }>();
  let instance: Hocuspocus | null = null;
  /** Unloaded documents need no repair: the next load reads the log. */
  const stillLoaded = (document: Y.Doc, documentName: string) => instance?.documents.get(documentName) === document;

  /**
   * After a failed append the live document may hold what the log lacks:
   * append its whole state (the coverage check trims it to the missing part)
   * until that commits with no failure in between. Resolves then, or when the
   * document is unloaded (it will be loaded from the log).
   */
  function repair(document: Y.Doc, documentName: string): Promise<void> {
    taintedDocuments.add(document);
    const running = repairs.get(document);
    if (running !== undefined) {
      running.failures += 1;
      return running.done;
    }
    const state = { failures: 1, done: Promise.resolve() };
    state.done = (async () => {
      for (let attempt = 0; stillLoaded(document, documentName); attempt++) {
        const failuresBefore = state.failures;
        try {
          const result = await store.append(documentName, Y.encodeStateAsUpdate(document), { instanceId, user: null });
          metrics.repairs.inc({ outcome: 'written' });
          logger.info({ doc: documentName, seq: result.seq, size: result.size }, 'the live document is in the log again after a failed append');
          if (state.failures === failuresBefore) break;
          attempt = -1; // another append failed meanwhile: once more, at once
        } catch (error) {
          metrics.repairs.inc({ outcome: 'failed' });
          logger.warn({ doc: documentName, err: (error as Error).message, attempt }, 'repair append failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, Math.min(REPAIR_MAX_RETRY_MS, REPAIR_FIRST_RETRY_MS * 2 ** attempt)));
        }
      }
      taintedDocuments.delete(document);
      repairs.delete(document);
    })();
    repairs.set(document, state);
    return state.done;
  }

  /** Chains `appended` (this update's own append) onto the document's durable chain; returns what its ack waits for. */
  function chain(document: Y.Doc, documentName: string, appended: Promise<void>): Promise<void> {
    const previous = durableChain.get(document) ?? Promise.resolve();
    const settled = appended.catch(() => repair(document, documentName));
    durableChain.set(document, Promise.all([previous, settled]).then(() => undefined));
    // The sender's ack: its own commit (a failure closes it, and it resends) and everything before it.
    return Promise.all([previous, appended]).then(() => undefined);
  }
  /** Per loaded document: the seq up to which its log is known to be in memory. */
  const seenSeq = new Map<string, number>();
  let catchingUp = false;
  /** Asked for while a catch-up ran: it runs once more when that one ends. */
  let catchUpAgain = false;
  let catchUpTimer: NodeJS.Timeout | null = null;
  let stopWatching: (() => void) | null = null;
  /** The store's change cursor; null until the first catch-up, which then checks every loaded document. */
  let changeCursor: string | null = null;
  /** Documents that changed while they were loading: checked again once loaded. */
  const recheck = new Set<string>();

  async function catchUp(instance: Hocuspocus): Promise<void> {
    if (catchingUp) {
      catchUpAgain = true;
      return;
    }
    catchingUp = true;
    try {
      do {
        catchUpAgain = false;
        const since = await store.changesSince(changeCursor);
        const candidates = new Set<string>(changeCursor === null ? seenSeq.keys() : []);
        for (const { doc, seq } of since.changes) {
          const seen = seenSeq.get(doc);
          if (seen !== undefined && seq > seen) candidates.add(doc);
          // Its load may have read the log before this change: look again once it is loaded.
          else if (seen === undefined && instance.loadingDocuments.has(doc)) recheck.add(doc);
        }
        for (const doc of recheck) {
          if (seenSeq.has(doc)) candidates.add(doc);
          if (seenSeq.has(doc) || !instance.loadingDocuments.has(doc)) recheck.delete(doc);
        }
        for (const name of candidates) await catchUpDocument(instance, name);
        changeCursor = since.cursor;
      } while (catchUpAgain);
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'catching up with the log failed; retrying at the next interval');
    } finally {
      catchingUp = false;
    }
  }

  async function catchUpDocument(instance: Hocuspocus, name: string): Promise<void> {
    const seq = seenSeq.get(name);
    const document = instance.documents.get(name);
    if (seq === undefined || document === undefined || document.isLoading) return;
    const entries = await store.entries(name, { afterSeq: seq });
    if (entries.length === 0) return;
    // Applying what the document already holds changes nothing, so our own
    // entries need no filtering; a gap (retention pruned it) means: take the state.
    const updates = entries[0].seq === seq + 1 ? entries.map((e) => e.update) : [(await store.stateAt(name)).update];
    Y.transact(document, () => {
      for (const update of updates) Y.applyUpdate(document, update);
    }, FROM_LOG);
    if (seenSeq.has(name)) seenSeq.set(name, entries[entries.length - 1].seq);
  }

  return {
    extensionName: 'palimpsest-durable-log',

    async onConfigure({ instance: configured }: onConfigurePayload): Promise<void> {
      instance = configured;
      if ((options.catchUpIntervalMs ?? 0) <= 0) return;
      catchUpTimer = setInterval(() => void catchUp(configured), options.catchUpIntervalMs);
      catchUpTimer.unref();
      stopWatching = store.watchChanges?.(() => void catchUp(configured)) ?? null;
    },

    async onDestroy(): Promise<void> {
      if (catchUpTimer !== null) clearInterval(catchUpTimer);
      catchUpTimer = null;
      stopWatching?.();
      stopWatching = null;
    },

    async onChange({ document, documentName, update, transactionOrigin }: onChangePayload): Promise<void> {
      // Client updates were appended in beforeSync; Redis updates by the instance that received them.
      const source = (transactionOrigin as { source?: string } | null | undefined)?.source;
      if (transactionOrigin === FROM_LOG || source === 'connection' || source === 'redis') return;
      // Appends are counted by the store the server hands out (observed-store.ts), whatever wrote them.
      const appended = store.append(documentName, update, { instanceId, user: null }).then(() => undefined, (error: Error) => {
        logger.error({ doc: documentName, err: error.message }, 'could not log a change the server made to the document; repairing');
        throw error;
      });
      await chain(document, documentName, appended).catch(() => undefined);
    },

    async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
      seenSeq.delete(documentName);
    },

    async onLoadDocument({ document, documentName }: onLoadDocumentPayload): Promise<void> {
      const started = performance.now();
      let loaded;
      try {
        loaded = await store.load(documentName);
      } catch (error) {
        // Hocuspocus answers a failed load with PermissionDenied, which a client takes as
        // final; this one can pass. Its reason makes every socket waiting for this load
        // close with 4503 (durable-acks.ts; the bridge for y-websocket), so clients retry.
        metrics.refusals.inc({ reason: CloseCodes.StorageUnavailable.reason });
        logger.error({ doc: documentName, err: (error as Error).message }, 'could not load the document from the log; its clients will retry');
        throw new ConnectionRefusal(CloseCodes.StorageUnavailable, (error as Error).message);
      }
      Y.transact(document, () => {
        if (loaded.snapshot !== null) Y.applyUpdate(document, loaded.snapshot.state);
        for (const update of loaded.tail) Y.applyUpdate(document, update);
      }, FROM_LOG);
      seenSeq.set(documentName, loaded.seq);
      const durationMs = performance.now() - started;
      metrics.documentLoadSeconds.observe(durationMs / 1000);
      logger.debug({ doc: documentName, seq: loaded.seq, snapshotSeq: loaded.snapshot?.seq ?? 0, tail: loaded.tail.length, durationMs },
        'document loaded');
    },

    async beforeSync({ type, payload, connection, document, documentName, context }: beforeSyncPayload): Promise<void> {
      if (type !== SyncStep.Step2 && type !== SyncStep.Update) return;
      const acks = (context as ConnectionContext | undefined)?.acks;
      // Hocuspocus refuses read-only writes after this hook (SyncStatus 0); they must not be logged.
      if (connection.readOnly) {
        acks?.expect(connection.messageAddress, null);
        return;
      }
      const fields = { doc: documentName, socketId: connection.socketId };
      let decoded: DecodedUpdate;
      try {
        // Checked before Hocuspocus applies it: nothing Yjs cannot replay reaches the live document or the log.
        decoded = checkUpdate(payload);
      } catch (error) {
        if (!(error instanceof MalformedUpdateError)) throw error;
        throw refuseMalformed(error, fields, connection.webSocket);
      }
      if (decoded.structs.size === 0 && decoded.ds.size === 0) {
        // An empty update (the sync step 2 of a client that has nothing yet) adds no entry,
        // and must not create the document either: opening a name stores nothing.
        metrics.appendsSkipped.inc();
        acks?.expect(connection.messageAddress, null);
        return;
      }
      const user = (context as ConnectionContext | undefined)?.user?.id ?? null;
      // Decided now, before the update is applied: afterwards the live document holds its own deletions.
      const alreadyDeleted = deletedBefore(document, decoded, taintedDocuments);
      const started = performance.now();
      const appended = store.append(documentName, payload,
        { instanceId, user, displayName: announcedName(document, connection, context as ConnectionContext | undefined) }, { alreadyDeleted }).then(() => {
        metrics.appendSeconds.observe((performance.now() - started) / 1000);
        // Appends are counted (logged, skipped, failed) where every append passes (observed-store.ts).
      }, (error: Error) => {
        if (error instanceof MalformedUpdateError) throw refuseMalformed(error, fields, null);
        logger.error({ ...fields, err: error.message }, 'append failed; the sender is closed without an ack and resends, the document is repaired');
        throw new ConnectionRefusal(CloseCodes.StorageUnavailable, error.message);
      });
      // Hocuspocus applies the update and fans it out when this hook returns; the ack waits for the commit.
      const ackAfter = chain(document, documentName, appended);
      if (acks !== undefined) {
        acks.expect(connection.messageAddress, ackAfter);
        ackAfter.catch(() => undefined); // the gate reports the failure
        return;
      }
      // No gate (a connection not made by our transport): wait for the commit here.
      try {
        await ackAfter;
      } catch (error) {
        connection.webSocket.close((error as ConnectionRefusal).code, (error as ConnectionRefusal).reason);
        throw error;
      }
    },

    durable(document: Y.Doc): Promise<void> {
      // The same promise while nothing new is appended: callers compare them to see whether more came.
      return durableChain.get(document) ?? nothingPending;
    },
  };

  function refuseMalformed(error: MalformedUpdateError, fields: Record<string, unknown>, socket: { close(code: number, reason: string): void } | null): ConnectionRefusal {
    metrics.refusals.inc({ reason: CloseCodes.MalformedFrame.reason });
    logger.warn({ ...fields, err: error.message }, 'malformed update refused');
    socket?.close(CloseCodes.MalformedFrame.code, CloseCodes.MalformedFrame.reason);
    return new ConnectionRefusal(CloseCodes.MalformedFrame, error.message);
  }
}

const MAX_DISPLAY_NAME = 100;

/**
 * The name a connection goes by, recorded with its entries so that history
 * shows authors also where there are no accounts: the token's `name` claim
 * when it has one, else the `user.name` its awareness state announces (the
 * demo sets it from ?user=). Null when neither is there.
 */
function announcedName(document: Document, connection: Connection, context: ConnectionContext | undefined): string | null {
  const claimed = context?.user?.name;
  if (typeof claimed === 'string' && claimed.trim() !== '') return claimed.trim().slice(0, MAX_DISPLAY_NAME);
  const states = document.awareness.getStates();
  for (const clientId of document.getClients(connection)) {
    const name = (states.get(clientId as number) as { user?: { name?: unknown } } | undefined)?.user?.name;
    if (typeof name === 'string' && name.trim() !== '') return name.trim().slice(0, MAX_DISPLAY_NAME);
  }
  return null;
}

/**
 * The deletions of `update` that the live document already holds, decided
 * before the update is applied. Everything in the live document is logged or
 * being logged (appends commit in the order they were started): client
 * updates, Redis updates by the instance that received them, and the server's
 * own changes (onChange above), so such deletions need no entry of their own —
 * which also covers what Yjs deletes on its own (the loser of concurrent
 * Y.Map sets) without putting it in any update's delete set. After a failed
 * append the live document may hold what the log lacks: from then on nothing
 * counts as already deleted in it.
 */
function deletedBefore(document: Y.Doc, update: DecodedUpdate, tainted: WeakSet<Y.Doc>): AlreadyDeleted {
  const deleted = new Map<number, Array<[number, number]>>();
  for (const [client, ranges] of update.ds) {
    const found: Array<[number, number]> = [];
    for (const [start, end] of ranges) found.push(...deletedRanges(document, client, start, end));
    if (found.length > 0) deleted.set(client, found);
  }
  return (client, start, end) => {
    if (tainted.has(document)) return false;
    // Ranges are sorted and do not touch one another: [start, end) must lie in one.
    return (deleted.get(client) ?? []).some(([from, to]) => from <= start && end <= to);
  };
}

/** The parts of [start, end) of `client` that are deleted in `document`, as sorted, merged ranges. */
function deletedRanges(document: Y.Doc, client: number, start: number, end: number): Array<[number, number]> {
  const structs = document.store.clients.get(client);
  if (structs === undefined) return [];
  const stop = Math.min(end, Y.getState(document.store, client));
  const ranges: Array<[number, number]> = [];
  if (start >= stop) return ranges;
  for (let index = Y.findIndexSS(structs, start); index < structs.length; index++) {
    const struct = structs[index];
    if (struct.id.clock >= stop) break;
    if (!struct.deleted) continue;
    const from = Math.max(start, struct.id.clock);
    const to = Math.min(stop, struct.id.clock + struct.length);
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[1] === from) last[1] = to;
    else ranges.push([from, to]);
  }
  return ranges;
}
