// Restore as a new forward update: the log is append-only, so going back to
// the state at seq N means logging an update that undoes every change after N.
// Yjs' UndoManager computes exactly that: replay the entries after N as
// tracked transactions, undo them all, and keep the update the undo produced.

import * as Y from 'yjs';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';

const REPLAYED = Symbol('replayed-after-target');

/**
 * The update that turns the document's latest state into its state at `seq`,
 * or null when they are already equal.
 */
export async function computeRestoreUpdate(store: EventStore, doc: string, seq: number): Promise<Uint8Array | null> {
  const target = await store.stateAt(doc, seq);
  const later = await store.entries(doc, { afterSeq: seq });
  if (later.length === 0) return null;
  if (later[0].seq !== seq + 1) {
    throw new StoreError('HISTORY_PRUNED', `${doc} cannot be restored to seq ${seq}: the log entries after it were pruned`);
  }
  const ydoc = new Y.Doc();
  Y.applyUpdate(ydoc, target.update);
  // The whole document is the scope: root types created after `seq` are undone too.
  const undoManager = new Y.UndoManager(ydoc, { trackedOrigins: new Set([REPLAYED]), captureTimeout: 0 });
  for (const entry of later) Y.applyUpdate(ydoc, entry.update, REPLAYED);
  const undone: Uint8Array[] = [];
  ydoc.on('update', (update: Uint8Array) => undone.push(update));
  while (undoManager.canUndo()) undoManager.undo();
  undoManager.destroy();
  ydoc.destroy();
  return undone.length === 0 ? null : Y.mergeUpdates(undone);
}
