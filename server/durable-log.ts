// The Hocuspocus extension that makes the log the truth:
//   - onLoadDocument: a document is the latest snapshot plus the log after it;
//   - beforeSync: every client update (sync step 2 or update) is appended,
//     and the append has committed before Hocuspocus applies it and sends the
//     SyncStatus ack, so an ack means "durable";
//   - updates that arrive from other instances through Redis never pass
//     beforeSync, so they are never logged twice.
// The append is started in beforeSync and not waited for there: Hocuspocus
// applies the update and fans it out at once, and the DurableAcks gate of the
// socket (durable-acks.ts) holds its ack until the commit, so one fast
// connection's updates are committed in groups. When an append fails, the
// connection is closed without an ack (code 4503) so the client reconnects and
// resends, and so are the document's other connections here, so the live
// document is loaded from the log again. The Redis fan-out publishes a change
// only after its commit (durable()).
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
  /** Resolves once every client update applied to `document` so far is committed; rejects if one failed. */
  durable(document: Y.Doc): Promise<void>;
}

export function createDurableLog(options: DurableLogOptions): DurableLog {
  const { store, instanceId, logger, metrics } = options;
  /** Per live document: the append of the last client update applied to it (appends commit in order). */
  const lastAppend = new WeakMap<Y.Doc, Promise<void>>();
  /** Live documents that may hold an update whose append failed; unloaded once their connections are closed. */
  const taintedDocuments = new WeakSet<Y.Doc>();
  let instance: Hocuspocus | null = null;
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

    async onChange({ documentName, update, transactionOrigin }: onChangePayload): Promise<void> {
      // Client updates were appended in beforeSync; Redis updates by the instance that received them.
      const source = (transactionOrigin as { source?: string } | null | undefined)?.source;
      if (transactionOrigin === FROM_LOG || source === 'connection' || source === 'redis') return;
      try {
        const result = await store.append(documentName, update, { instanceId, user: null });
        if (result.seq !== null) {
          metrics.appendsLogged.inc();
          metrics.bytesLogged.inc(result.size);
        }
      } catch (error) {
        metrics.appendFailures.inc();
        logger.error({ doc: documentName, err: (error as Error).message }, 'could not log a change the server made to the document');
      }
    },

    async afterUnloadDocument({ documentName }: afterUnloadDocumentPayload): Promise<void> {
      seenSeq.delete(documentName);
    },

    async onLoadDocument({ document, documentName }: onLoadDocumentPayload): Promise<void> {
      const started = performance.now();
      const loaded = await store.load(documentName);
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
        { instanceId, user, displayName: announcedName(document, connection, context as ConnectionContext | undefined) }, { alreadyDeleted }).then((result) => {
        metrics.appendSeconds.observe((performance.now() - started) / 1000);
        if (result.seq === null) metrics.appendsSkipped.inc();
        else {
          metrics.appendsLogged.inc();
          metrics.bytesLogged.inc(result.size);
        }
      }, (error: Error) => {
        // The live document (and this instance's clients) already hold the update: it must
        // not stay there without the log. Its other connections are closed too, so the
        // document is loaded from the log again and every client resends what it holds.
        taintedDocuments.add(document);
        if (error instanceof MalformedUpdateError) {
          throw refuseMalformed(error, fields, null);
        }
        metrics.appendFailures.inc();
        logger.error({ ...fields, err: error.message }, 'append failed; closing the document\'s connections without an ack so clients resend');
        const refusal = new ConnectionRefusal(CloseCodes.StorageUnavailable, error.message);
        setImmediate(() => {
          instance?.closeConnections(documentName);
        });
        throw refusal;
      });
      lastAppend.set(document, appended);
      if (acks !== undefined) {
        // Hocuspocus applies the update and fans it out now; the ack waits in the gate for the commit.
        acks.expect(connection.messageAddress, appended);
        appended.catch(() => undefined); // the gate reports the failure
        return;
      }
      // No gate (a connection not made by our transport): wait for the commit here.
      try {
        await appended;
      } catch (error) {
        connection.webSocket.close((error as ConnectionRefusal).code, (error as ConnectionRefusal).reason);
        throw error;
      }
    },

    durable(document: Y.Doc): Promise<void> {
      return lastAppend.get(document) ?? Promise.resolve();
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
