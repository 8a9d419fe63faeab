// Restore as a new forward update: the log is append-only, so going back to
// the state at seq N means logging an update that undoes every change after N.
// Yjs' UndoManager computes that: replay the entries after N as one tracked
// transaction and undo it. As one change (not entry by entry), the undo
// deletes what was inserted since and is still there, and brings back what
// was deleted since and existed at N; text both inserted and deleted since N
// is left alone instead of being brought back only to be deleted again.
//
// What the undo cannot know is that a later state already had N's content: a
// second restore to N would delete the text the first one brought back and
// bring it back once more. So the replay starts from the latest restore to N
// (or to a restore to N) whose state still has N's content, and a restore to
// a state whose content is the document's content now logs nothing.

import * as Y from 'yjs';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';

const REPLAYED = Symbol('replayed-after-target');

/** A Yjs shared type of any kind, as the document holds them. */
type SharedType = Y.Doc['share'] extends Map<string, infer T> ? T : never;

/** How many earlier restores to the same state are checked as the starting point of the undo. */
const MAX_RESTORE_BASES = 3;

/**
 * The update that turns the document's latest state into its state at `seq`,
 * or null when their content is already the same (nothing to log).
 */
export async function computeRestoreUpdate(store: EventStore, doc: string, seq: number): Promise<Uint8Array | null> {
  const target = await store.stateAt(doc, seq);
  const targetContent = contentOf(target.update);
  const base = await latestEquivalentRestore(store, doc, seq, targetContent) ?? { seq, update: target.update };
  const later = await store.entries(doc, { afterSeq: base.seq });
  if (later.length === 0) return null;
  if (later[0].seq !== base.seq + 1) {
    throw new StoreError('HISTORY_PRUNED', `${doc} cannot be restored to seq ${seq}: the log entries after it were pruned`);
  }
  const ydoc = new Y.Doc();
  Y.applyUpdate(ydoc, base.update);
  // The whole document is the scope: root types created after `seq` are undone too.
  const undoManager = new Y.UndoManager(ydoc, { trackedOrigins: new Set([REPLAYED]), captureTimeout: 0 });
  ydoc.transact(() => {
    for (const entry of later) Y.applyUpdate(ydoc, entry.update);
  }, REPLAYED);
  try {
    // The latest state has the target's content already: a restore would only replace it with a copy.
    if (contentOfDoc(ydoc) === targetContent) return null;
    const undone: Uint8Array[] = [];
    ydoc.on('update', (update: Uint8Array) => undone.push(update));
    while (undoManager.canUndo()) undoManager.undo();
    return undone.length === 0 ? null : Y.mergeUpdates(undone);
  } finally {
    undoManager.destroy();
    ydoc.destroy();
  }
}

/**
 * The latest restore after `seq` that went back to `seq` (directly, or to a
 * restore that did) and whose state still has the target's content, with
 * that state; null when there is none.
 */
async function latestEquivalentRestore(store: EventStore, doc: string, seq: number, targetContent: string):
  Promise<{ seq: number; update: Uint8Array } | null> {
  const restores = (await store.versionNames(doc)).filter((name) => name.restoredFrom !== null && name.seq > seq);
  const sameState = new Set([seq]);
  for (const restore of restores) {
    if (sameState.has(restore.restoredFrom!)) sameState.add(restore.seq);
  }
  const candidates = restores.filter((restore) => restore.seq !== seq && sameState.has(restore.seq)).reverse().slice(0, MAX_RESTORE_BASES);
  for (const candidate of candidates) {
    // Its entry may have been merged with concurrent edits, or pruned: check what it holds.
    let state;
    try {
      state = await store.stateAt(doc, candidate.seq);
    } catch (error) {
      if (error instanceof StoreError) continue;
      throw error;
    }
    if (contentOf(state.update) === targetContent) return { seq: candidate.seq, update: state.update };
  }
  return null;
}

function contentOf(update: Uint8Array): string {
  const ydoc = new Y.Doc();
  try {
    Y.applyUpdate(ydoc, update);
    return contentOfDoc(ydoc);
  } finally {
    ydoc.destroy();
  }
}

/**
 * What a reader of the document sees, whatever Yjs items hold it: each root
 * type's entries (map keys) and sequence (text, formatting marks, embeds,
 * values, nested types, recursively), without item ids. Two states with the
 * same content read the same.
 */
export function contentOfDoc(ydoc: Y.Doc): string {
  const roots = [...ydoc.share.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, type]) => [name, contentOfType(type)])
    .filter(([, content]) => content !== null);
  return JSON.stringify(roots, distinctValues);
}

/**
 * Values JSON cannot tell apart or cannot write at all, as Yjs may hold them
 * in a document's values: tagged, so that two contents read the same only
 * when they are.
 */
function distinctValues(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return { bigint: value.toString() };
  if (typeof value === 'number' && (!Number.isFinite(value) || Object.is(value, -0))) return { number: Object.is(value, -0) ? '-0' : String(value) };
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value).toString('base64') };
  if (value === undefined) return { undefined: true };
  return value;
}

function contentOfType(type: SharedType): unknown {
  const entries: Array<[string, unknown]> = [];
  for (const [key, item] of type._map) {
    if (!item.deleted) entries.push([key, unitsOfItem(item).at(-1)]);
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const sequence: unknown[] = [];
  for (let item = type._start; item !== null; item = item.right) {
    if (item.deleted) continue;
    for (const unit of unitsOfItem(item)) {
      const last = sequence.length - 1;
      // Text split across items (typed at different times) reads as one string.
      if (typeof unit === 'string' && last >= 0 && typeof sequence[last] === 'string') sequence[last] += unit;
      else sequence.push(unit);
    }
  }
  if (entries.length === 0 && sequence.length === 0) return type._item === null ? null : { kind: kindOf(type) };
  return { kind: kindOf(type), entries, sequence };
}

function kindOf(type: SharedType): string {
  if (type instanceof Y.XmlElement) return `element:${type.nodeName}`;
  if (type instanceof Y.XmlHook) return `hook:${type.hookName}`;
  return type.constructor.name;
}

/** An item's content as units that do not depend on how Yjs split it into items: text, or one entry per value. */
function unitsOfItem(item: Y.Item): unknown[] {
  const content = item.content;
  if (content instanceof Y.ContentString) return [content.str];
  if (content instanceof Y.ContentType) return [contentOfType(content.type)];
  if (content instanceof Y.ContentFormat) return [{ format: content.key, value: content.value }];
  if (content instanceof Y.ContentEmbed) return [{ embed: content.embed }];
  if (content instanceof Y.ContentBinary) return [{ binary: Buffer.from(content.content).toString('base64') }];
  if (content instanceof Y.ContentDoc) return [{ doc: content.doc?.guid ?? null }];
  return content.getContent().map((value) => ({ value }));
}
