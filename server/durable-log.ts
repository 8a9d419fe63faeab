// The Hocuspocus extension that makes the log the truth:
//   - onLoadDocument: a document is the latest snapshot plus the log after it;
//   - beforeSync: every client update (sync step 2 or update) is appended,
//     and the append has committed before Hocuspocus applies it and sends the
//     SyncStatus ack, so an ack means "durable";
//   - updates that arrive from other instances through Redis never pass
//     beforeSync, so they are never logged twice.
// When an append fails, the connection is closed without an ack (code 4503)
// so the client reconnects and resends.

import type { Extension, beforeSyncPayload, onLoadDocumentPayload } from '@hocuspocus/server';
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
}

export function createDurableLog(options: DurableLogOptions): Extension {
  const { store, instanceId, logger, metrics } = options;
  return {
    extensionName: 'palimpsest-durable-log',

    async onLoadDocument({ document, documentName }: onLoadDocumentPayload): Promise<void> {
      const started = performance.now();
      const loaded = await store.load(documentName);
      Y.transact(document, () => {
        if (loaded.snapshot !== null) Y.applyUpdate(document, loaded.snapshot.state);
        for (const update of loaded.tail) Y.applyUpdate(document, update);
      }, { source: 'local' });
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
 * in it is logged (client updates before they are applied, Redis updates by
 * the instance that received them, restores before they are applied), and
 * what Yjs deleted on its own (the loser of concurrent Y.Map sets) follows
 * from logged structs, so such deletions need no log entry of their own.
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
