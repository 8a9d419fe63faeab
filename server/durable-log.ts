// The Hocuspocus extension that makes the log the truth:
//   - onLoadDocument: a document is the latest snapshot plus the log after it;
//   - beforeSync: every client update (sync step 2 or update) is appended,
//     and the append has committed before Hocuspocus applies it and sends the
//     SyncStatus ack, so an ack means "durable";
//   - updates that arrive from other instances through Redis never pass
//     beforeSync, so they are never logged twice.
// When an append fails, the connection is closed without an ack (code 4503)
// so the client reconnects and resends.
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
  Extension, Hocuspocus, afterUnloadDocumentPayload, beforeSyncPayload, onChangePayload, onConfigurePayload, onLoadDocumentPayload,
} from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { MalformedUpdateError, type AlreadyDeleted, type EventStore } from '../persistence/index.js';
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

export function createDurableLog(options: DurableLogOptions): Extension {
  const { store, instanceId, logger, metrics } = options;
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

    async onConfigure({ instance }: onConfigurePayload): Promise<void> {
      if ((options.catchUpIntervalMs ?? 0) <= 0) return;
      catchUpTimer = setInterval(() => void catchUp(instance), options.catchUpIntervalMs);
      catchUpTimer.unref();
      stopWatching = store.watchChanges?.(() => void catchUp(instance)) ?? null;
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
      // Hocuspocus refuses read-only writes after this hook (SyncStatus 0); they must not be logged.
      if (connection.readOnly) return;
      const user = (context as ConnectionContext | undefined)?.user?.id ?? null;
      const started = performance.now();
      try {
        const result = await store.append(documentName, payload, { instanceId, user }, { alreadyDeleted: deletedIn(document) });
        metrics.appendSeconds.observe((performance.now() - started) / 1000);
        if (result.seq === null) metrics.appendsSkipped.inc();
        else {
          metrics.appendsLogged.inc();
          metrics.bytesLogged.inc(result.size);
        }
      } catch (error) {
        if (error instanceof MalformedUpdateError) {
          metrics.refusals.inc({ reason: CloseCodes.MalformedFrame.reason });
          logger.warn({ doc: documentName, socketId: connection.socketId, err: error.message }, 'malformed update refused');
          connection.webSocket.close(CloseCodes.MalformedFrame.code, CloseCodes.MalformedFrame.reason);
          throw new ConnectionRefusal(CloseCodes.MalformedFrame, error.message);
        }
        metrics.appendFailures.inc();
        logger.error({ doc: documentName, socketId: connection.socketId, err: (error as Error).message },
          'append failed; closing the connection without an ack so the client resends');
        connection.webSocket.close(CloseCodes.StorageUnavailable.code, CloseCodes.StorageUnavailable.reason);
        throw new ConnectionRefusal(CloseCodes.StorageUnavailable, (error as Error).message);
      }
    },
  };
}

/**
 * Whether a clock range is already deleted in the live document. Everything
 * in it is logged or being logged: client updates before they are applied,
 * Redis updates by the instance that received them, and the server's own
 * changes (onChange above), so such deletions need no entry of their own —
 * which also covers what Yjs deletes on its own (the loser of concurrent
 * Y.Map sets) without putting it in any update's delete set.
 */
function deletedIn(document: Y.Doc): AlreadyDeleted {
  return (client, start, end) => {
    const structs = document.store.clients.get(client);
    if (structs === undefined || Y.getState(document.store, client) < end) return false;
    let index = Y.findIndexSS(structs, start);
    for (let clock = start; clock < end; index++) {
      const struct = structs[index];
      if (!struct.deleted) return false;
      clock = struct.id.clock + struct.length;
    }
    return true;
  };
}
