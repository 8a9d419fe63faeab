// What a document's log already holds, as a Yjs state vector plus delete set,
// and how to cut an incoming update down to what the log lacks.
//
// This is what makes appends idempotent: a resend after a lost ack, a sync
// step 2 on reconnect, or the same edit arriving at two instances adds nothing
// the second time, and a partly new update adds only its new part. The
// coverage is a pure value: callers copy it before a tentative change and keep
// the copy only once the change is committed.

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';
import type { AlreadyDeleted } from './event-store.js';

/** Half-open clock ranges [start, end), sorted, merged, non-overlapping. */
type Ranges = Array<[number, number]>;

export interface Coverage {
  /** Per Yjs client: every struct with clock < sv[client] is in the log. */
  sv: Map<number, number>;
  /** Per Yjs client: the deleted clock ranges the log records. */
  ds: Map<number, Ranges>;
  /**
   * Per Yjs client: struct ranges the log holds beyond a gap in that client's
   * clock (Yjs keeps them pending until the gap fills); they join `sv` then.
   */
  pending: Map<number, Ranges>;
}

/** An update decoded once: its struct ranges and its delete set. */
export interface DecodedUpdate {
  bytes: Uint8Array;
  structs: Map<number, Ranges>;
  ds: Map<number, Ranges>;
  /** The delete set as Yjs decoded it, in encoding order (for byte-exact re-encoding). */
  dsInOrder: Array<[number, Array<{ clock: number; len: number }>]>;
}

export class MalformedUpdateError extends Error {
  readonly code = 'MALFORMED_UPDATE';
  constructor(cause: unknown) {
    super(`update does not decode as a Yjs update: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'MalformedUpdateError';
  }
}

export function emptyCoverage(): Coverage {
  return { sv: new Map(), ds: new Map(), pending: new Map() };
}

export function cloneCoverage(coverage: Coverage): Coverage {
  const ds = new Map<number, Ranges>();
  for (const [client, ranges] of coverage.ds) ds.set(client, ranges.map(([s, e]) => [s, e]));
  const pending = new Map<number, Ranges>();
  for (const [client, ranges] of coverage.pending) pending.set(client, ranges.map(([s, e]) => [s, e]));
  return { sv: new Map(coverage.sv), ds, pending };
}

/**
 * Decodes an update completely; anything Yjs cannot decode or apply throws
 * MalformedUpdateError, so nothing malformed ever reaches the log. Entries
 * already in the log are read with `strict` false: one an earlier version
 * let through must not stop the document from being written again.
 */
export function decodeUpdate(bytes: Uint8Array, strict = true): DecodedUpdate {
  if (strict && lastChecked !== null && lastChecked.bytes === bytes) {
    const cached = lastChecked;
    lastChecked = null;
    return cached;
  }
  let decoded: ReturnType<typeof Y.decodeUpdate>;
  try {
    decoded = Y.decodeUpdate(bytes);
  } catch (error) {
    throw new MalformedUpdateError(error);
  }
  const structs = new Map<number, Ranges>();
  for (const struct of decoded.structs) {
    if (struct instanceof Y.Skip) continue;
    if (!Number.isSafeInteger(struct.id.clock) || !(struct.length > 0)) {
      throw new MalformedUpdateError('struct with an invalid clock or length');
    }
    if (strict && struct instanceof Y.Item) checkReferences(struct);
    addRange(structs, struct.id.client, struct.id.clock, struct.id.clock + struct.length);
  }
  const ds = new Map<number, Ranges>();
  const dsInOrder: DecodedUpdate['dsInOrder'] = [];
  for (const [client, items] of decoded.ds.clients) {
    dsInOrder.push([client, items.map((item) => ({ clock: item.clock, len: item.len }))]);
    for (const item of items) {
      // Yjs never writes an empty range, and throws on re-encoding one (which applying an update may do).
      if (!(item.len > 0) || !Number.isSafeInteger(item.clock + item.len)) {
        if (strict) throw new MalformedUpdateError('empty or invalid deleted range');
        continue;
      }
      addRange(ds, client, item.clock, item.clock + item.len);
    }
  }
  const result = { bytes, structs, ds, dsInOrder };
  if (strict) lastChecked = result;
  return result;
}

/**
 * The update checked last, handed to the next decode of the same bytes (and
 * then let go): the server checks an update before Hocuspocus applies it and
 * appends the same bytes right after, in the same call, so they are decoded
 * once. It was a WeakMap by bytes, with an entry per update: V8 clears such
 * entries only in a full collection, so the table grew between them and
 * made them both more frequent and longer (its entries are processed in the
 * collection's pause). bench/README.md: "One decoded update kept, not a
 * weak table of them".
 */
let lastChecked: DecodedUpdate | null = null;

/** Decodes and checks a client update; throws MalformedUpdateError for one Yjs could not replay. */
export function checkUpdate(bytes: Uint8Array): DecodedUpdate {
  return decodeUpdate(bytes);
}

/**
 * A client's structs can only refer to what that client made before them.
 * Yjs trusts this while integrating and throws half-way through applying an
 * update that breaks it (an origin pointing past the item itself), so such an
 * update would be logged and then fail every replay.
 */
function checkReferences(item: Y.Item): void {
  checkReference(item, item.origin);
  checkReference(item, item.rightOrigin);
  if (item.parent instanceof Y.ID) checkReference(item, item.parent);
}

function checkReference(item: Y.Item, ref: Y.ID | null): void {
  const { client, clock } = item.id;
  if (ref !== null && ref.client === client && ref.clock >= clock) {
    throw new MalformedUpdateError(`struct ${client}:${clock} refers to ${ref.client}:${ref.clock}, which its own client has not made yet`);
  }
}

/**
 * Returns the part of `update` the log does not hold yet, or null when it
 * holds all of it. The result is itself a valid Yjs update.
 */
export function uncoveredPart(coverage: Coverage, update: DecodedUpdate, alreadyDeleted?: AlreadyDeleted): Uint8Array | null {
  let newStructs = false;
  let someStructsCovered = false;
  for (const [client, ranges] of update.structs) {
    const covered = coverage.sv.get(client) ?? 0;
    // Ranges are sorted: the first one says whether any is covered.
    if (ranges[0][0] < covered) someStructsCovered = true;
    if (ranges[ranges.length - 1][1] <= covered) continue;
    const beyond = coverage.pending.get(client);
    for (const [start, end] of ranges) {
      if (end <= covered) continue;
      if (beyond !== undefined && containedIn(beyond, Math.max(start, covered), end)) someStructsCovered = true;
      else newStructs = true;
    }
  }
  const newDs = subtractRanges(update.ds, coverage.ds);
  if (alreadyDeleted !== undefined) dropAlreadyDeleted(newDs, alreadyDeleted);
  if (!newStructs && newDs.size === 0) return null;

  const sameDs = newDs.size === update.ds.size &&
    [...update.ds].every(([client, ranges]) => equalRanges(ranges, newDs.get(client)));
  if (!newStructs) return encodeDeleteOnlyUpdate(newDs);
  // The common case (a fresh keystroke): nothing of it is logged yet, so the
  // update is logged as the client sent it, without re-encoding it.
  if (!someStructsCovered && sameDs) return update.bytes;

  const trimmed = someStructsCovered ? Y.diffUpdate(update.bytes, Y.encodeStateVector(coverage.sv)) : update.bytes;
  if (sameDs) return trimmed;
  // diffUpdate keeps the whole delete set; replace it by the new part when the
  // tail of the trimmed update is exactly the delete set we decoded.
  const fullDs = encodeDeleteSetInOrder(update.dsInOrder);
  if (!endsWith(trimmed, fullDs)) return trimmed;
  const structSection = trimmed.subarray(0, trimmed.length - fullDs.length);
  const dsSection = encodeDeleteSet(newDs);
  const result = new Uint8Array(structSection.length + dsSection.length);
  result.set(structSection, 0);
  result.set(dsSection, structSection.length);
  return result;
}

function dropAlreadyDeleted(ds: Map<number, Ranges>, alreadyDeleted: AlreadyDeleted): void {
  for (const [client, ranges] of ds) {
    const left = ranges.filter(([start, end]) => !alreadyDeleted(client, start, end));
    if (left.length === 0) ds.delete(client);
    else ds.set(client, left);
  }
}

/** Folds an update that is now in the log into the coverage (mutates it). */
export function foldInto(coverage: Coverage, update: DecodedUpdate): void {
  for (const [client, ranges] of update.structs) {
    let covered = coverage.sv.get(client) ?? 0;
    for (const [start, end] of ranges) {
      if (start > covered) addRange(coverage.pending, client, start, end);
      else if (end > covered) covered = end;
    }
    // A filled gap makes the ranges beyond it contiguous.
    const beyond = coverage.pending.get(client);
    if (beyond !== undefined) {
      while (beyond.length > 0 && beyond[0][0] <= covered) covered = Math.max(covered, beyond.shift()![1]);
      if (beyond.length === 0) coverage.pending.delete(client);
    }
    if (covered > 0) coverage.sv.set(client, covered);
  }
  for (const [client, ranges] of update.ds) {
    for (const [start, end] of ranges) addRange(coverage.ds, client, start, end);
  }
}

/** The coverage of a document's current state (used when rebuilding from the log). */
export function coverageOfDoc(doc: Y.Doc): Coverage {
  const snapshot = Y.snapshot(doc);
  const coverage = emptyCoverage();
  for (const [client, clock] of snapshot.sv) coverage.sv.set(client, clock);
  for (const [client, items] of snapshot.ds.clients) {
    for (const item of items) addRange(coverage.ds, client, item.clock, item.clock + item.len);
  }
  // What Yjs holds back until missing structs arrive is in the log too.
  const { pendingStructs, pendingDs } = doc.store;
  if (pendingStructs !== null) {
    for (const struct of Y.decodeUpdate(pendingStructs.update).structs) {
      if (!(struct instanceof Y.Skip)) addRange(coverage.pending, struct.id.client, struct.id.clock, struct.id.clock + struct.length);
    }
  }
  if (pendingDs !== null) {
    for (const [client, items] of Y.decodeUpdate(pendingDs).ds.clients) {
      for (const item of items) addRange(coverage.ds, client, item.clock, item.clock + item.len);
    }
  }
  return coverage;
}

export function encodeCoverage(coverage: Coverage): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, coverage.sv.size);
  for (const [client, clock] of coverage.sv) {
    encoding.writeVarUint(encoder, client);
    encoding.writeVarUint(encoder, clock);
  }
  writeRanges(encoder, coverage.ds);
  writeRanges(encoder, coverage.pending);
  return encoding.toUint8Array(encoder);
}

export function decodeCoverage(bytes: Uint8Array): Coverage {
  const decoder = decoding.createDecoder(bytes);
  const coverage = emptyCoverage();
  const svSize = decoding.readVarUint(decoder);
  for (let i = 0; i < svSize; i++) {
    const client = decoding.readVarUint(decoder);
    coverage.sv.set(client, decoding.readVarUint(decoder));
  }
  readRanges(decoder, coverage.ds);
  if (decoding.hasContent(decoder)) readRanges(decoder, coverage.pending);
  return coverage;
}

export function equalCoverage(a: Coverage, b: Coverage): boolean {
  if (a.sv.size !== b.sv.size || a.ds.size !== b.ds.size || a.pending.size !== b.pending.size) return false;
  for (const [client, clock] of a.sv) if (b.sv.get(client) !== clock) return false;
  for (const [client, ranges] of a.ds) if (!equalRanges(ranges, b.ds.get(client))) return false;
  for (const [client, ranges] of a.pending) if (!equalRanges(ranges, b.pending.get(client))) return false;
  return true;
}

function readRanges(decoder: decoding.Decoder, into: Map<number, Ranges>): void {
  const size = decoding.readVarUint(decoder);
  for (let i = 0; i < size; i++) {
    const client = decoding.readVarUint(decoder);
    const count = decoding.readVarUint(decoder);
    const ranges: Ranges = [];
    for (let j = 0; j < count; j++) {
      const start = decoding.readVarUint(decoder);
      ranges.push([start, start + decoding.readVarUint(decoder)]);
    }
    into.set(client, ranges);
  }
}

/** Whether [start, end) lies inside one of the sorted, merged `ranges`. */
function containedIn(ranges: Ranges, start: number, end: number): boolean {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const [s, e] = ranges[middle];
    if (start < s) high = middle - 1;
    else if (start >= e) low = middle + 1;
    else return end <= e;
  }
  return false;
}

// Delete sets in Yjs' v1 update encoding: count, then per client its ranges.
function writeRanges(encoder: encoding.Encoder, ds: Map<number, Ranges>): void {
  encoding.writeVarUint(encoder, ds.size);
  for (const [client, ranges] of ds) {
    encoding.writeVarUint(encoder, client);
    encoding.writeVarUint(encoder, ranges.length);
    for (const [start, end] of ranges) {
      encoding.writeVarUint(encoder, start);
      encoding.writeVarUint(encoder, end - start);
    }
  }
}

function encodeDeleteSet(ds: Map<number, Ranges>): Uint8Array {
  const encoder = encoding.createEncoder();
  writeRanges(encoder, ds);
  return encoding.toUint8Array(encoder);
}

function encodeDeleteSetInOrder(ds: DecodedUpdate['dsInOrder']): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, ds.length);
  for (const [client, items] of ds) {
    encoding.writeVarUint(encoder, client);
    encoding.writeVarUint(encoder, items.length);
    for (const item of items) {
      encoding.writeVarUint(encoder, item.clock);
      encoding.writeVarUint(encoder, item.len);
    }
  }
  return encoding.toUint8Array(encoder);
}

function encodeDeleteOnlyUpdate(ds: Map<number, Ranges>): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 0); // no structs
  writeRanges(encoder, ds);
  return encoding.toUint8Array(encoder);
}

function addRange(map: Map<number, Ranges>, client: number, start: number, end: number): void {
  let ranges = map.get(client);
  if (ranges === undefined) {
    map.set(client, [[start, end]]);
    return;
  }
  // Appends are the common case (clocks grow); fall back to a merge otherwise.
  const last = ranges[ranges.length - 1];
  if (start > last[1]) {
    ranges.push([start, end]);
    return;
  }
  if (start >= last[0]) {
    last[1] = Math.max(last[1], end);
    return;
  }
  ranges.push([start, end]);
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Ranges = [];
  for (const range of ranges) {
    const top = merged[merged.length - 1];
    if (top !== undefined && range[0] <= top[1]) top[1] = Math.max(top[1], range[1]);
    else merged.push([range[0], range[1]]);
  }
  ranges = merged;
  map.set(client, ranges);
}

/** a minus b, per client. */
function subtractRanges(a: Map<number, Ranges>, b: Map<number, Ranges>): Map<number, Ranges> {
  const result = new Map<number, Ranges>();
  for (const [client, ranges] of a) {
    const minus = b.get(client) ?? [];
    const left: Ranges = [];
    for (const [start, end] of ranges) {
      let cursor = start;
      // A long-lived document has many deleted ranges per client: skip to the
      // first that can overlap instead of walking all of them.
      for (let i = firstEndingAfter(minus, cursor); i < minus.length; i++) {
        const [ms, me] = minus[i];
        if (ms >= end) break;
        if (ms > cursor) left.push([cursor, ms]);
        cursor = Math.max(cursor, me);
        if (cursor >= end) break;
      }
      if (cursor < end) left.push([cursor, end]);
    }
    if (left.length > 0) result.set(client, left);
  }
  return result;
}

/** Index of the first range whose end is past `clock` (ranges sorted, non-overlapping). */
function firstEndingAfter(ranges: Ranges, clock: number): number {
  let low = 0;
  let high = ranges.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (ranges[middle][1] <= clock) low = middle + 1;
    else high = middle;
  }
  return low;
}

function equalRanges(a: Ranges, b: Ranges | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every(([s, e], i) => s === b[i][0] && e === b[i][1]);
}

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  if (tail.length > bytes.length) return false;
  const offset = bytes.length - tail.length;
  for (let i = 0; i < tail.length; i++) if (bytes[offset + i] !== tail[i]) return false;
  return true;
}
