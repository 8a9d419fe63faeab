// A synchronous safety net under y-indexeddb for the moment a page goes away.
// y-indexeddb writes each update in its own IndexedDB transaction, and a
// transaction still open when the page unloads is aborted: the last keystrokes
// before a reload or tab close vanish if the server has not stored them either
// (the offline case). localStorage writes are synchronous, so on pagehide we
// put the whole document state there, and the next mount folds it back in.

import { fromBase64, toBase64 } from 'lib0/buffer';
import * as Y from 'yjs';

/** Larger states are left to IndexedDB alone rather than crowd localStorage (≈5 MB per origin). */
const MAX_BACKUP_CHARS = 1_500_000;

/** Marks updates that come back from the backup, should anything want to tell them apart. */
export const UNLOAD_BACKUP_ORIGIN = Symbol('palimpsest unload backup');

function backupKey(documentName: string): string {
  return `palimpsest:unload-backup:${documentName}`;
}

function storage(): Storage | null {
  try {
    return window.localStorage;
  } catch (error) {
    // Storage can be disabled by policy; then IndexedDB is all there is.
    console.warn('[palimpsest] localStorage unavailable; no unload backup', error);
    return null;
  }
}

export interface UnloadBackup {
  /** Call once the local IndexedDB copy is loaded: from then on it holds what the backup held. */
  discardRestored(): void;
  destroy(): void;
}

/**
 * Restores a backup left by a previous page (applying a whole state twice is
 * harmless: Yjs merges), then keeps writing one whenever the page is hidden
 * while the server has not acknowledged everything.
 */
export function keepUnloadBackup(documentName: string, ydoc: Y.Doc, hasUnacknowledgedChanges: () => boolean): UnloadBackup {
  const store = storage();
  const key = backupKey(documentName);

  const saved = store?.getItem(key);
  if (saved) {
    try {
      Y.applyUpdate(ydoc, fromBase64(saved), UNLOAD_BACKUP_ORIGIN);
    } catch (error) {
      console.warn(`[palimpsest] dropping an unreadable unload backup of "${documentName}"`, error);
      store?.removeItem(key);
    }
  }

  const pageOnHide = (): void => {
    if (!store || !hasUnacknowledgedChanges()) return;
    const encoded = toBase64(Y.encodeStateAsUpdate(ydoc));
    if (encoded.length > MAX_BACKUP_CHARS) return;
    try {
      store.setItem(key, encoded);
    } catch (error) {
      console.warn(`[palimpsest] could not write the unload backup of "${documentName}"`, error);
    }
  };
  const documentOnVisibilityChange = (): void => {
    // Mobile browsers may discard a hidden tab without a pagehide.
    if (document.visibilityState === 'hidden') pageOnHide();
  };
  window.addEventListener('pagehide', pageOnHide);
  document.addEventListener('visibilitychange', documentOnVisibilityChange);

  return {
    discardRestored() {
      if (saved) store?.removeItem(key);
    },
    destroy() {
      window.removeEventListener('pagehide', pageOnHide);
      document.removeEventListener('visibilitychange', documentOnVisibilityChange);
    },
  };
}
