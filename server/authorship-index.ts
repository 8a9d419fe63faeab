// The authorship index: for each log entry, who wrote it and the Yjs item ids
// (client, clock range) it created, so authorship finds the entry behind every
// item of a document by a binary search instead of replaying the log.
//
// Each entry's ids are stored with it (persistence entry-facts.ts); reading
// them back row by row costs about as much as the replay on a long log, so
// whole blocks of BLOCK_ENTRIES entries are packed into one row each
// (EventStore.saveAuthorshipBlock) by the first read that passes them. Blocks
// never change: entries are only appended, and retention only drops them,
// which readers handle by skipping seqs before the first retained one. A
// block is a cache: a copied store or a lost block is rebuilt from the rows.

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { createdRanges, type EntrySummary, type EventStore } from '../persistence/index.js';

/** Entries per block: blocks are seqs [k * BLOCK_ENTRIES + 1, (k + 1) * BLOCK_ENTRIES]. */
export const BLOCK_ENTRIES = 1000;

/** Who wrote an entry; one object per author and block (compare them by their fields). */
export interface EntryAuthor {
  user: string | null;
  displayName: string | null;
}

export interface AuthorshipVisitor {
  entry(seq: number, author: EntryAuthor): void;
  range(client: number, clock: number, length: number, seq: number): void;
}

/** Visits every entry from `fromSeq` to `at` (both included) and the ids it created. */
export async function readAuthorshipIndex(store: EventStore, doc: string, fromSeq: number, at: number, visit: AuthorshipVisitor): Promise<void> {
  let covered = fromSeq - 1;
  for (const block of await store.authorshipBlocks(doc, at)) {
    if (block.toSeq <= covered) continue;
    if (block.fromSeq > covered + 1 || block.toSeq > at) break;
    decodeBlock(block.data, covered, visit);
    covered = block.toSeq;
  }
  while (covered < at) {
    const blockStart = Math.floor(covered / BLOCK_ENTRIES) * BLOCK_ENTRIES + 1;
    const blockEnd = blockStart + BLOCK_ENTRIES - 1;
    const to = Math.min(at, blockEnd);
    const rows = await store.summaries(doc, { fromSeq: blockStart, toSeq: to, withCreated: true });
    let author: EntryAuthor = { user: null, displayName: null };
    for (const row of rows) {
      if (row.seq <= covered) continue;
      if (author.user !== row.user || author.displayName !== row.displayName) author = { user: row.user, displayName: row.displayName };
      visit.entry(row.seq, author);
      createdRanges(row.created!, (client, clock, length) => visit.range(client, clock, length, row.seq));
    }
    if (to === blockEnd) await store.saveAuthorshipBlock(doc, { fromSeq: blockStart, toSeq: blockEnd, data: encodeBlock(rows) });
    covered = to;
  }
}

/**
 * A block: its authors (varuint count, then user and display name of each),
 * then the entries as little-endian 32-bit words (Yjs client ids, clocks and
 * seqs fit): seq, author index, range count, and (client, clock, length) per
 * range. Fixed words, so reading a block is a walk over a Uint32Array.
 */
function encodeBlock(rows: EntrySummary[]): Uint8Array {
  const authors = new Map<string, number>();
  const authorList: EntryAuthor[] = [];
  const words: number[] = [];
  for (const row of rows) {
    const key = JSON.stringify([row.user, row.displayName]);
    let index = authors.get(key);
    if (index === undefined) {
      authors.set(key, index = authorList.length);
      authorList.push({ user: row.user, displayName: row.displayName });
    }
    const ranges: number[] = [];
    createdRanges(row.created!, (client, clock, length) => ranges.push(client, clock, length));
    if (ranges.some((value) => value > 0xffffffff)) throw new Error(`entry ${row.seq}: an item id does not fit 32 bits`);
    words.push(row.seq, index, ranges.length / 3, ...ranges);
  }
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, authorList.length);
  for (const { user, displayName } of authorList) {
    writeOptionalString(encoder, user);
    writeOptionalString(encoder, displayName);
  }
  const header = encoding.toUint8Array(encoder);
  const body = new DataView(new ArrayBuffer(words.length * 4));
  words.forEach((word, i) => body.setUint32(i * 4, word, true));
  const data = new Uint8Array(header.length + body.byteLength);
  data.set(header);
  data.set(new Uint8Array(body.buffer), header.length);
  return data;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function decodeBlock(data: Uint8Array, after: number, visit: AuthorshipVisitor): void {
  const decoder = decoding.createDecoder(data);
  const authors: EntryAuthor[] = [];
  for (let n = decoding.readVarUint(decoder); n > 0; n--) authors.push({ user: readOptionalString(decoder), displayName: readOptionalString(decoder) });
  // A copy: its buffer starts at the body (a Buffer's slice would be a view into a larger, unaligned one).
  const bytes = new Uint8Array(data.length - decoder.pos);
  bytes.set(data.subarray(decoder.pos));
  let words: Uint32Array;
  if (littleEndian) {
    words = new Uint32Array(bytes.buffer, 0, bytes.length >> 2);
  } else {
    const view = new DataView(bytes.buffer);
    words = Uint32Array.from({ length: bytes.length >> 2 }, (_, i) => view.getUint32(i * 4, true));
  }
  for (let i = 0; i < words.length;) {
    const seq = words[i];
    const author = authors[words[i + 1]];
    const ranges = words[i + 2];
    i += 3;
    if (seq > after) {
      visit.entry(seq, author);
      for (let end = i + ranges * 3; i < end; i += 3) visit.range(words[i], words[i + 1], words[i + 2], seq);
    } else {
      i += ranges * 3;
    }
  }
}

function writeOptionalString(encoder: encoding.Encoder, value: string | null): void {
  encoding.writeVarUint(encoder, value === null ? 0 : 1);
  if (value !== null) encoding.writeVarString(encoder, value);
}

function readOptionalString(decoder: decoding.Decoder): string | null {
  return decoding.readVarUint(decoder) === 0 ? null : decoding.readVarString(decoder);
}
