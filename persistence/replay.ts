// Rebuilding a document from a snapshot and the log entries after it. Used by
// load, stateAt, compaction and verify, so they all agree on what "the state
// at seq N" means.

import * as Y from 'yjs';

/** Applies `updates` on top of `base` in one transaction (observers fire once). */
export function replay(base: Uint8Array | null, updates: Iterable<Uint8Array>, doc: Y.Doc = new Y.Doc()): Y.Doc {
  Y.transact(doc, () => {
    if (base !== null) Y.applyUpdate(doc, base);
    for (const update of updates) Y.applyUpdate(doc, update);
  });
  return doc;
}

/**
 * The state as bytes that do not depend on how the document was built
 * (incrementally or from one update), so two states can be compared.
 */
export function canonicalState(doc: Y.Doc): Uint8Array {
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
  const state = Y.encodeStateAsUpdate(copy);
  copy.destroy();
  return state;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
