// What the history reads need from each log entry, worked out once when the
// entry is written (every backend, appends and imports alike) instead of by
// decoding the log at every read:
//   - added / removed: characters it inserted and deleted (versions' counts);
//   - created: the Yjs item ids (client, clock range) it created, so the
//     author of every item of a document is found by a binary search
//     (authorship) instead of by replaying the log;
//   - its version group at the default pause: where the group it belongs to
//     starts, the group's author and its running counts, so a page of
//     versions reads one row per version.
// Rows logged before these were stored have none: readers compute the counts
// and ids from the update bytes, and group such documents as they read.

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';

/** Versions at this pause (the API's default) are grouped as entries are written. */
export const STORED_GROUP_PAUSE_MS = 300_000;

export interface EntryFacts {
  /** Characters inserted (UTF-16 code units of text, plus one per element or embed). */
  added: number;
  /** Items deleted, in the same unit. */
  removed: number;
  /** The item ids created: varuint triples (client, clock, length); see createdRanges. */
  created: Uint8Array;
}

export function factsOf(update: Uint8Array): EntryFacts {
  const decoded = Y.decodeUpdate(update);
  let added = 0;
  let removed = 0;
  const encoder = encoding.createEncoder();
  for (const struct of decoded.structs) {
    if (!(struct instanceof Y.Item)) continue;
    if (struct.content.isCountable()) added += struct.length;
    encoding.writeVarUint(encoder, struct.id.client);
    encoding.writeVarUint(encoder, struct.id.clock);
    encoding.writeVarUint(encoder, struct.length);
  }
  for (const ranges of decoded.ds.clients.values()) {
    for (const range of ranges) removed += range.len;
  }
  return { added, removed, created: encoding.toUint8Array(encoder) };
}

/** Calls `each` with every (client, clock, length) that `created` holds. */
export function createdRanges(created: Uint8Array, each: (client: number, clock: number, length: number) => void): void {
  const decoder = decoding.createDecoder(created);
  while (decoding.hasContent(decoder)) {
    each(decoding.readVarUint(decoder), decoding.readVarUint(decoder), decoding.readVarUint(decoder));
  }
}

/** Who an entry is by, for grouping: the display name, else the user; null for the server's own changes. */
export function authorKey(user: string | null, displayName: string | null): string | null {
  if (displayName !== null) return `name:${displayName}`;
  if (user !== null) return `user:${user}`;
  return null;
}

/** An entry's place in the versions grouped at STORED_GROUP_PAUSE_MS. */
export interface StoredGroup {
  /** The seq of the group's first entry. */
  start: number;
  /** The group's author: the first entry of it that has one (null while only server changes). */
  user: string | null;
  displayName: string | null;
  /** Counts of the group's entries from `start` up to this one. */
  added: number;
  removed: number;
}

/** The previous entry as grouping needs it. */
export interface GroupLink {
  seq: number;
  receivedAt: number;
  /** Null: logged before groups were stored, so later entries are not grouped either. */
  group: StoredGroup | null;
}

/**
 * The group of a new entry, from the one before it (null when there is none,
 * e.g. retention pruned it). Written oldest first, the rule is: an entry joins
 * the group before it unless more than the pause lies between them, or both
 * it and the group have an author and they differ. Names and restores do not
 * enter here; readers split groups at them.
 */
export function nextGroup(previous: GroupLink | null, entry: {
  seq: number; receivedAt: number; user: string | null; displayName: string | null; added: number; removed: number;
}): StoredGroup | null {
  if (previous !== null && previous.seq === entry.seq - 1 && previous.group === null) return null;
  const own = authorKey(entry.user, entry.displayName);
  if (previous !== null && previous.group !== null && previous.seq === entry.seq - 1 &&
      entry.receivedAt - previous.receivedAt <= STORED_GROUP_PAUSE_MS) {
    const group = previous.group;
    const groupKey = authorKey(group.user, group.displayName);
    if (own === null || groupKey === null || own === groupKey) {
      const authored = groupKey === null && own !== null;
      return {
        start: group.start,
        user: authored ? entry.user : group.user,
        displayName: authored ? entry.displayName : group.displayName,
        added: group.added + entry.added,
        removed: group.removed + entry.removed,
      };
    }
  }
  return { start: entry.seq, user: entry.user, displayName: entry.displayName, added: entry.added, removed: entry.removed };
}
