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
import { MalformedUpdateError, type EventStore } from '../persistence/index.js';
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

    async beforeSync({ type, payload, connection, documentName, context }: beforeSyncPayload): Promise<void> {
      if (type !== SyncStep.Step2 && type !== SyncStep.Update) return;
      // Hocuspocus refuses read-only writes after this hook (SyncStatus 0); they must not be logged.
      if (connection.readOnly) return;
      const user = (context as ConnectionContext | undefined)?.user?.id ?? null;
      const started = performance.now();
      try {
        const result = await store.append(documentName, payload, { instanceId, user });
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
