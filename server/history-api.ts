// History routes of the REST API (api.ts dispatches to them): versions people
// recognise (the log grouped by author and pauses, newest first, paginated),
// names for versions, and authorship (who wrote each run of text still there
// at a seq, and what changed since an earlier seq).
//
// Neither replays the log. Versions read the facts stored with each entry
// (persistence entry-facts.ts): at the default pause the groups themselves,
// so a page reads a few rows per version. Authorship loads the state at the
// asked seq (a snapshot and its tail) and finds who created each item in the
// authorship index (authorship-index.ts); only `since` (what was removed
// after it, by whom) walks the log from the start.

import type { IncomingMessage, ServerResponse } from 'node:http';
import * as Y from 'yjs';
import { authorKey, STORED_GROUP_PAUSE_MS, type EntrySummary, type EventStore, type VersionName } from '../persistence/index.js';
import { readAuthorshipIndex, type EntryAuthor } from './authorship-index.js';

/** Who a request's token names (api.ts ApiCaller): `id` is recorded as the user, `name` is the display name. */
type HistoryCaller = { id: string; name: string | null };

/** What api.ts hands over: the store, its access check, error type and helpers, so both modules answer alike. */
export interface HistoryRouteTools {
  store: EventStore;
  /** Checks the caller may `access` the document; returns who the token names (its `id` is the user to record), or throws an API error. */
  authorize: (request: IncomingMessage, doc: string, access: 'read' | 'write') => Promise<HistoryCaller | null>;
  ApiError: new (status: number, code: string, message: string) => Error;
  allow(method: string, allowed: Array<'GET' | 'POST'>): void;
  readJson(request: IncomingMessage): Promise<unknown>;
  sendJson(response: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void;
  /** The display name a write by this request is recorded under (api.ts callerName). */
  callerName(caller: HistoryCaller | null, body: { displayName?: unknown }): string | null;
}

export const DEFAULT_PAUSE_SECONDS = STORED_GROUP_PAUSE_MS / 1000;
const DEFAULT_VERSION_LIMIT = 50;
const MAX_VERSION_LIMIT = 500;
/** Entries read per query while scanning the log backwards. */
const SCAN_BATCH = 500;
const MAX_NAME_LENGTH = 200;

export interface VersionAuthor {
  user: string | null;
  displayName: string | null;
}

export interface Version {
  fromSeq: number;
  toSeq: number;
  startedAt: string;
  endedAt: string;
  authors: VersionAuthor[];
  entries: number;
  /** Characters inserted (UTF-16 code units of text, plus one per element or embed). */
  added: number;
  /** Items deleted, in the same unit as `added`. */
  removed: number;
  name: string | null;
  /** Who gave the name (for a restore, who restored); null when unnamed. */
  namedBy: VersionAuthor | null;
  restoredFrom: number | null;
}

/** Handles /api/documents/{doc}/versions and /authorship; false when `action` is not one of them. */
export async function handleHistoryRoute(
  request: IncomingMessage, response: ServerResponse, url: URL, doc: string, action: string, tools: HistoryRouteTools,
): Promise<boolean> {
  const { store } = tools;
  const options = tools;
  const { ApiError, allow, sendJson } = tools;
  const method = request.method ?? 'GET';
  if (action === 'versions') {
    allow(method, ['GET', 'POST']);
    if (method === 'POST') {
      const caller = await options.authorize(request, doc, 'write');
      const user = caller?.id ?? null;
      const { seq, fields: body } = await seqBody(store, doc, await tools.readJson(request), ['name', 'displayName'], tools);
      const name = typeof body.name === 'string' ? body.name.trim() : '';
      if (name === '' || name.length > MAX_NAME_LENGTH) {
        throw new ApiError(400, 'BAD_REQUEST', `body must be {"seq": <seq>, "name": "<1-${MAX_NAME_LENGTH} characters>"} (or "at": "<ISO time>" for seq)`);
      }
      const displayName = tools.callerName(caller, body);
      await store.nameVersion(doc, { seq, name, user, displayName, createdAt: new Date(), restoredFrom: null });
      sendJson(response, 200, { doc, seq, name, namedBy: { user, displayName } });
      return true;
    }
    await options.authorize(request, doc, 'read');
    const pauseSeconds = integerParam(url, 'pauseSeconds', tools) ?? DEFAULT_PAUSE_SECONDS;
    const limit = integerParam(url, 'limit', tools) ?? DEFAULT_VERSION_LIMIT;
    if (limit < 1 || limit > MAX_VERSION_LIMIT) {
      throw new ApiError(400, 'BAD_REQUEST', `query parameter limit must be a whole number from 1 to ${MAX_VERSION_LIMIT} (versions per page)`);
    }
    let before = integerParam(url, 'before', tools);
    const at = timeParam(url, 'at', tools);
    if (at !== null) {
      const atSeq = await store.seqAtTime(doc, at);
      before = Math.min(before ?? Infinity, atSeq + 1);
    }
    const info = await store.info(doc);
    if (info === null) {
      sendJson(response, 200, { doc, exists: false, seq: 0, pauseSeconds, units: 'characters', versions: [], nextBefore: null });
      return true;
    }
    const page = await listVersions(store, doc, {
      lastSeq: info.seq, firstSeq: info.firstRetainedSeq ?? info.seq + 1, before: before ?? info.seq + 1, limit, pauseMs: pauseSeconds * 1000,
    });
    sendJson(response, 200, { doc, exists: true, seq: info.seq, pauseSeconds, units: 'characters', ...page });
    return true;
  }
  if (action === 'authors') {
    allow(method, ['GET']);
    await options.authorize(request, doc, 'read');
    const info = await store.info(doc);
    sendJson(response, 200, { doc, seq: info?.seq ?? 0, clients: info === null ? [] : await clientAuthors(store, doc, info.firstRetainedSeq, info.seq) });
    return true;
  }
  if (action === 'authorship') {
    allow(method, ['GET']);
    await options.authorize(request, doc, 'read');
    const info = await store.info(doc);
    const lastSeq = info?.seq ?? 0;
    const at = await seqParam(store, doc, url, 'at', tools) ?? lastSeq;
    const since = await seqParam(store, doc, url, 'since', tools);
    if (at > lastSeq) throw new ApiError(404, 'UNKNOWN_SEQ', `${doc} has no seq ${at} (its last seq is ${lastSeq})`);
    if (since !== null && since > at) throw new ApiError(400, 'BAD_REQUEST', `since (${since}) must not be after at (${at})`);
    sendJson(response, 200, { doc, exists: info !== null, ...(await authorshipAt(store, doc, at, since, info?.firstRetainedSeq ?? null, lastSeq)) });
    return true;
  }
  return false;
}

/**
 * Resolves a seq given as a number or, with `?at=`, as an ISO time (the last
 * seq received at or before it). Shared with api.ts's routes that take a seq.
 */
export async function seqParam(store: EventStore, doc: string, url: URL, name: string, tools: Pick<HistoryRouteTools, 'ApiError'>): Promise<number | null> {
  const value = url.searchParams.get(name);
  if (value === null) return null;
  if (/^\d+$/.test(value)) return Number(value);
  const time = parseTime(value);
  if (time === null) {
    throw new tools.ApiError(400, 'BAD_REQUEST', `query parameter ${name} must be a seq (whole number) or an ISO 8601 time such as 2026-01-31T12:00:00Z`);
  }
  return store.seqAtTime(doc, time);
}

/**
 * A JSON body of a POST that names a seq: an object with exactly one of
 * "seq" (a whole number) or "at" (an ISO 8601 time: the last seq received at
 * or before it), and besides them only `others` (strings; null is as if not
 * sent). Anything
 * else — another field, both "seq" and "at", neither, a value of the wrong
 * type — is 400 BAD_REQUEST naming the field. Shared with api.ts's restore.
 */
export async function seqBody(
  store: EventStore, doc: string, body: unknown, others: string[], tools: Pick<HistoryRouteTools, 'ApiError'>,
): Promise<{ seq: number; fields: Record<string, unknown> }> {
  const usage = `{"seq": <whole number>} or {"at": "<ISO 8601 time>"}${others.map((field) => `, optional "${field}": "<text>"`).join('')}`;
  const bad = (problem: string) => new tools.ApiError(400, 'BAD_REQUEST', `${problem}; the body is ${usage}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object');
  const fields = body as Record<string, unknown>;
  for (const [field, value] of Object.entries(fields)) {
    if (field === 'seq' || field === 'at') continue;
    if (!others.includes(field)) throw bad(`unknown field "${field}"`);
    if (value !== null && typeof value !== 'string') throw bad(`"${field}" must be a string`);
  }
  if (fields.seq !== undefined && fields.at !== undefined) throw bad('"seq" and "at" both given: send exactly one');
  if (fields.seq !== undefined) {
    if (typeof fields.seq === 'number' && Number.isSafeInteger(fields.seq) && fields.seq >= 0) return { seq: fields.seq, fields };
    throw bad(`"seq" must be a whole number, got ${JSON.stringify(fields.seq)}`);
  }
  if (fields.at !== undefined) {
    const time = typeof fields.at === 'string' ? parseTime(fields.at) : null;
    if (time === null) throw bad(`"at" must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(fields.at)}`);
    return { seq: await store.seqAtTime(doc, time), fields };
  }
  throw bad('the body needs "seq" or "at"');
}

function parseTime(value: string): Date | null {
  // Date.parse accepts much that is not ISO; ask for the ISO shape first.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(value)) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : new Date(time);
}

function integerParam(url: URL, name: string, tools: HistoryRouteTools): number | null {
  const value = url.searchParams.get(name);
  if (value === null) return null;
  if (!/^\d+$/.test(value)) throw new tools.ApiError(400, 'BAD_REQUEST', `query parameter ${name} must be a whole number`);
  return Number(value);
}

function timeParam(url: URL, name: string, tools: HistoryRouteTools): Date | null {
  const value = url.searchParams.get(name);
  if (value === null) return null;
  const time = parseTime(value);
  if (time === null) throw new tools.ApiError(400, 'BAD_REQUEST', `query parameter ${name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z`);
  return time;
}

/** An entry as grouping needs it. */
type Member = Pick<EntrySummary, 'seq' | 'receivedAt' | 'user' | 'displayName' | 'added' | 'removed'>;

/** A version before names split it: the seqs [from, to], with its entries when they were read. */
interface RawGroup {
  from: number;
  to: number;
  /** Newest first; absent for groups stored with the log. */
  members?: Member[];
}

/**
 * Groups entries below `before` into versions, newest first. Read oldest
 * first, an entry joins the version before it unless a pause longer than
 * pauseMs lies between them, or both it and that version have an author and
 * they differ (server changes join the version around them); then versions
 * are cut after a named seq and before a restore. At the default pause the
 * groups were stored as the entries were written (entry-facts.ts), so a page
 * reads a few rows per version; at another pause the entries' summaries are
 * read back from `before` until the page is full. Either way a page that
 * starts at the previous page's last fromSeq lists exactly what one long
 * listing would.
 */
export async function listVersions(store: EventStore, doc: string, window: {
  lastSeq: number; firstSeq: number; before: number; limit: number; pauseMs: number;
}): Promise<{ versions: Version[]; nextBefore: number | null }> {
  const names = new Map<number, VersionName>((await store.versionNames(doc)).map((n) => [n.seq, n]));
  const top = Math.min(window.before - 1, window.lastSeq);
  const versions: Version[] = [];
  if (top < window.firstSeq) return { versions, nextBefore: null };
  const [topEntry] = await store.summaries(doc, { seqs: [top] });
  const stored = window.pauseMs === STORED_GROUP_PAUSE_MS && topEntry?.group != null;
  const groups = stored ? storedGroups(store, doc, window.firstSeq, top) : scannedGroups(store, doc, window.firstSeq, top, window.pauseMs);
  for await (const chunk of groups) {
    const parts = chunk.flatMap((group) => splitAtNames(group, names));
    const room = parts.slice(0, window.limit - versions.length);
    versions.push(...(stored ? await storedVersions(store, doc, room, names) : room.map((part) => versionOf(part, part.members!, names))));
    if (versions.length === window.limit) {
      const oldest = versions[versions.length - 1].fromSeq;
      return { versions, nextBefore: oldest > window.firstSeq ? oldest : null };
    }
  }
  return { versions, nextBefore: null };
}

/** The groups stored with the log whose seqs lie in [firstSeq, top], newest first, in chunks. */
async function* storedGroups(store: EventStore, doc: string, firstSeq: number, top: number): AsyncGenerator<RawGroup[]> {
  const CHUNK = 64;
  let upper = top;
  while (upper >= firstSeq) {
    const starts = await store.groupStarts(doc, { fromSeq: firstSeq, toSeq: upper, limit: CHUNK });
    const chunk: RawGroup[] = [];
    for (const start of starts) {
      chunk.push({ from: start, to: upper });
      upper = start - 1;
    }
    // The oldest group began before the retained log: it shows from the first retained entry.
    if (starts.length < CHUNK && upper >= firstSeq) {
      chunk.push({ from: firstSeq, to: upper });
      upper = firstSeq - 1;
    }
    yield chunk;
  }
}

/** Groups read back from `top` entry by entry (another pause than the stored one, or a log from before groups were stored). */
async function* scannedGroups(store: EventStore, doc: string, firstSeq: number, top: number, pauseMs: number): AsyncGenerator<RawGroup[]> {
  let current: { members: Member[]; key: string | null; trailingUnauthored: number } | null = null;
  let upper = top;
  while (upper >= firstSeq) {
    const batch = await store.summaries(doc, { fromSeq: Math.max(firstSeq, upper - SCAN_BATCH + 1), toSeq: upper, descending: true });
    if (batch.length === 0) break;
    const finished: RawGroup[] = [];
    for (const entry of batch) {
      const key = authorKey(entry.user, entry.displayName);
      if (current !== null) {
        const newer = current.members[current.members.length - 1];
        if (newer.receivedAt.getTime() - entry.receivedAt.getTime() > pauseMs) {
          finished.push(rawGroup(current.members));
          current = null;
        } else if (key === null) {
          current.members.push(entry);
          current.trailingUnauthored += 1;
          continue;
        } else if (current.key === null || current.key === key) {
          current.members.push(entry);
          current.key = key;
          current.trailingUnauthored = 0;
          continue;
        } else {
          // Another author: the server changes just after this entry belong to its version.
          const moved: Member[] = current.members.splice(current.members.length - current.trailingUnauthored);
          finished.push(rawGroup(current.members));
          current = { members: [...moved, entry], key, trailingUnauthored: 0 };
          continue;
        }
      }
      current = { members: [entry], key, trailingUnauthored: key === null ? 1 : 0 };
    }
    upper = batch[batch.length - 1].seq - 1;
    if (finished.length > 0) yield finished;
  }
  if (current !== null) yield [rawGroup(current.members)];
}

function rawGroup(members: Member[]): RawGroup {
  return { from: members[members.length - 1].seq, to: members[0].seq, members };
}

/** A group cut after each named seq and before each restore, newest first. */
function splitAtNames(group: RawGroup, names: Map<number, VersionName>): RawGroup[] {
  const cuts = new Set<number>();
  for (const [seq, name] of names) {
    if (seq >= group.from && seq < group.to) cuts.add(seq + 1);
    if (name.restoredFrom !== null && seq > group.from && seq <= group.to) cuts.add(seq);
  }
  if (cuts.size === 0) return [group];
  const parts: RawGroup[] = [];
  let to = group.to;
  for (const cut of [...cuts].sort((a, b) => b - a)) {
    parts.push({ from: cut, to, members: group.members?.filter((m) => m.seq >= cut && m.seq <= to) });
    to = cut - 1;
  }
  parts.push({ from: group.from, to, members: group.members?.filter((m) => m.seq <= to) });
  return parts;
}

function namedBy(name: VersionName | undefined): VersionAuthor | null {
  return name === undefined ? null : { user: name.user, displayName: name.displayName ?? null };
}

function versionOf(part: RawGroup, members: Member[], names: Map<number, VersionName>): Version {
  const authors = new Map<string, VersionAuthor>();
  let added = 0;
  let removed = 0;
  for (const member of members) {
    added += member.added;
    removed += member.removed;
    const key = authorKey(member.user, member.displayName);
    if (key !== null && !authors.has(key)) authors.set(key, { user: member.user, displayName: member.displayName });
  }
  const newest = members[0];
  const oldest = members[members.length - 1];
  return {
    fromSeq: part.from, toSeq: part.to, startedAt: oldest.receivedAt.toISOString(), endedAt: newest.receivedAt.toISOString(),
    authors: [...authors.values()], entries: members.length, added, removed,
    name: names.get(part.to)?.name ?? null, namedBy: namedBy(names.get(part.to)), restoredFrom: names.get(part.from)?.restoredFrom ?? null,
  };
}

/** Versions of stored groups from the rows at their ends: the group's running counts and author. */
async function storedVersions(store: EventStore, doc: string, parts: RawGroup[], names: Map<number, VersionName>): Promise<Version[]> {
  const ends = new Map((await store.summaries(doc, { seqs: [...new Set(parts.flatMap((p) => [p.from, p.to]))] })).map((e) => [e.seq, e]));
  const versions: Version[] = [];
  for (const part of parts) {
    const first = ends.get(part.from);
    const last = ends.get(part.to);
    if (first === undefined || last === undefined || last.group === null || first.group === null) {
      throw new Error(`${doc}: the entries ${part.from} and ${part.to} of a stored version are missing`);
    }
    const whole = first.group.start === part.from;
    // Within a group every author is the same one: a part that is not the whole group has it when any entry of it has an author.
    const authored = authorKey(last.group.user, last.group.displayName) !== null &&
      (whole || (await store.summaries(doc, { fromSeq: part.from, toSeq: part.to, authored: true, limit: 1 })).length > 0);
    versions.push({
      fromSeq: part.from, toSeq: part.to, startedAt: first.receivedAt.toISOString(), endedAt: last.receivedAt.toISOString(),
      authors: authored ? [{ user: last.group.user, displayName: last.group.displayName }] : [],
      entries: part.to - part.from + 1,
      added: last.group.added - first.group.added + first.added,
      removed: last.group.removed - first.group.removed + first.removed,
      name: names.get(part.to)?.name ?? null, namedBy: namedBy(names.get(part.to)), restoredFrom: names.get(part.from)?.restoredFrom ?? null,
    });
  }
  return versions;
}

// ---- Authorship ----

export interface AuthorshipRun {
  text: string;
  /** displayName, else user id; null for text from before the retained log or from the server itself. */
  author: string | null;
  user: string | null;
  /** The seq of the entry that wrote it (0 when it is older than the retained log). */
  seq: number;
  /** With `since`: what happened to the run after `since`. */
  change?: 'inserted' | 'removed';
}

export interface AuthorshipBlock {
  /** The element's name (paragraph, heading, …) or the root text's name. */
  type: string;
  runs: AuthorshipRun[];
  change?: 'inserted' | 'removed';
}

/**
 * Per client, its clock ranges as flat triples (start, end, seq), sorted by
 * start and not overlapping: flat arrays, since a long log has a range per
 * entry and small arrays per range would cost more in garbage than in work.
 */
type RangeIndex = Map<number, number[]>;

/**
 * A function that adds (client, start, end, seq) to `index`. It keeps the
 * last client added to and its ranges, since consecutive entries are mostly
 * by one client; that cache lives as long as the function (one request).
 */
function rangeAdder(index: RangeIndex): (client: number, start: number, end: number, seq: number) => void {
  let lastClient: number | null = null;
  let lastRanges: number[] = [];
  return (client, start, end, seq) => {
    if (client !== lastClient) {
      let ranges = index.get(client);
      if (ranges === undefined) index.set(client, ranges = []);
      lastClient = client;
      lastRanges = ranges;
    }
    lastRanges.push(start, end, seq);
  };
}

function sortIndex(index: RangeIndex): void {
  for (const [client, ranges] of index) {
    let sorted = true;
    for (let i = 3; i < ranges.length && sorted; i += 3) sorted = ranges[i - 3] <= ranges[i];
    // Entries come in seq order, and a client's clocks grow with it: sorting is rarely needed.
    if (sorted) continue;
    const triples: Array<[number, number, number]> = [];
    for (let i = 0; i < ranges.length; i += 3) triples.push([ranges[i], ranges[i + 1], ranges[i + 2]]);
    triples.sort((a, b) => a[0] - b[0]);
    index.set(client, triples.flat());
  }
}

/** The pieces of [start, end) with the seq each was logged in (0 where no entry covers it). */
function piecesOf(index: RangeIndex, client: number, start: number, end: number): Array<[number, number, number]> {
  const ranges = index.get(client) ?? [];
  let low = 0;
  let high = ranges.length / 3;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (ranges[mid * 3 + 1] <= start) low = mid + 1;
    else high = mid;
  }
  const pieces: Array<[number, number, number]> = [];
  let at = start;
  for (let i = low * 3; i < ranges.length && at < end; i += 3) {
    const from = ranges[i];
    const to = ranges[i + 1];
    const seq = ranges[i + 2];
    if (from >= end) break;
    if (from > at) pieces.push([at, from, 0]);
    pieces.push([Math.max(at, from), Math.min(end, to), seq]);
    at = Math.min(end, to);
  }
  if (at < end) pieces.push([at, end, 0]);
  return pieces;
}

const NO_AUTHOR: EntryAuthor = { user: null, displayName: null };

/**
 * Who each Yjs client id that wrote to the retained log is (the author of its
 * first entry: a client id belongs to one editor), so an editor can colour
 * the live text by author itself, item by item.
 */
export async function clientAuthors(store: EventStore, doc: string, firstRetainedSeq: number | null, lastSeq: number): Promise<Array<{
  client: number; user: string | null; displayName: string | null;
}>> {
  const bySeq: EntryAuthor[] = [];
  const byClient = new Map<number, EntryAuthor>();
  if (firstRetainedSeq !== null) {
    await readAuthorshipIndex(store, doc, firstRetainedSeq, lastSeq, {
      entry: (seq, author) => { bySeq[seq] = author; },
      range: (client, _clock, _length, seq) => {
        if (!byClient.has(client)) byClient.set(client, bySeq[seq]);
      },
    });
  }
  return [...byClient].map(([client, author]) => ({ client, user: author.user, displayName: author.displayName }));
}

export async function authorshipAt(
  store: EventStore, doc: string, at: number, since: number | null, firstRetainedSeq: number | null, lastSeq: number = at,
): Promise<{
  seq: number; since: number | null; blocks: AuthorshipBlock[]; authors: Array<{ author: string | null; user: string | null; characters: number }>;
}> {
  const created: RangeIndex = new Map();
  const addRange = rangeAdder(created);
  // Only with `since`: per client, clock → the first entry that deleted them (concurrent deletions may repeat one).
  const firstDeletion = new Map<number, Map<number, number>>();
  // By seq: a dense array, not a Map (a long log has one entry per seq).
  const authors: EntryAuthor[] = [];
  const authorOf = { get: (seq: number): EntryAuthor | undefined => authors[seq], set: (seq: number, author: EntryAuthor) => { authors[seq] = author; } };
  let ydoc: Y.Doc;
  if (since === null) {
    // The state at `at`, and who created each of its items from the ids each entry created (stored with it): no replay of the log.
    // At the last seq (what the live view shows) the latest snapshot and its tail go straight into
    // the document; elsewhere the state comes encoded. gc off: no clean-up pass over what the tail deleted.
    ydoc = new Y.Doc({ gc: false });
    const loaded = lastSeq === at ? await store.load(doc) : null;
    if (loaded !== null && loaded.seq === at) {
      Y.transact(ydoc, () => {
        if (loaded.snapshot !== null) Y.applyUpdate(ydoc, loaded.snapshot.state);
        for (const update of loaded.tail) Y.applyUpdate(ydoc, update);
      });
    } else if (at > 0) {
      Y.applyUpdate(ydoc, (await store.stateAt(doc, at)).update);
    }
    await readAuthorshipIndex(store, doc, firstRetainedSeq ?? at + 1, at, {
      entry: (seq, author) => authorOf.set(seq, author),
      range: (client, clock, length, seq) => addRange(client, clock, clock + length, seq),
    });
  } else {
    // gc off: deleted items keep their text, which is what "removed since" shows.
    ydoc = new Y.Doc({ gc: false });
    // What retention pruned is read from a snapshot: its text shows with no author (seq 0).
    const start = at === 0 ? 0 : firstRetainedSeq === null ? at : Math.min(firstRetainedSeq - 1, at);
    if (start > 0) Y.applyUpdate(ydoc, (await store.stateAt(doc, start)).update);
    for (let after = start; after < at;) {
      const entries = await store.entries(doc, { afterSeq: after, limit: Math.min(2000, at - after) });
      if (entries.length === 0) break;
      for (const entry of entries) {
        const decoded = Y.decodeUpdate(entry.update);
        for (const struct of decoded.structs) {
          if (struct instanceof Y.Item) addRange(struct.id.client, struct.id.clock, struct.id.clock + struct.length, entry.seq);
        }
        for (const [client, ranges] of decoded.ds.clients) {
          let clocks = firstDeletion.get(client);
          if (clocks === undefined) firstDeletion.set(client, clocks = new Map());
          for (const range of ranges) {
            for (let clock = range.clock; clock < range.clock + range.len; clock++) if (!clocks.has(clock)) clocks.set(clock, entry.seq);
          }
        }
        authorOf.set(entry.seq, { user: entry.user, displayName: entry.displayName });
        Y.applyUpdate(ydoc, entry.update);
        after = entry.seq;
      }
    }
  }
  sortIndex(created);
  const deletedSeq = (client: number, clock: number): number => firstDeletion.get(client)?.get(clock) ?? 0;
  /** [from, to) split where the deleting entry changes (Yjs merges neighbouring deleted items). */
  const byDeletion = (client: number, from: number, to: number): Array<[number, number, number]> => {
    const parts: Array<[number, number, number]> = [];
    for (let clock = from; clock < to; clock++) {
      const seq = deletedSeq(client, clock);
      const last = parts[parts.length - 1];
      if (last !== undefined && last[2] === seq) last[1] = clock + 1;
      else parts.push([clock, clock + 1, seq]);
    }
    return parts;
  };
  const changeOf = (createdSeq: number, isDeleted: boolean, deletionSeq: number): AuthorshipRun['change'] | 'skip' | undefined => {
    if (since === null) return isDeleted ? 'skip' : undefined;
    if (isDeleted) return createdSeq <= since && deletionSeq > since ? 'removed' : 'skip';
    return createdSeq > since ? 'inserted' : undefined;
  };

  const blocks: AuthorshipBlock[] = [];
  const textRuns = (text: Y.XmlText | Y.Text): AuthorshipRun[] => {
    const runs: AuthorshipRun[] = [];
    for (let item = text._start; item !== null; item = item.right) {
      if (!item.content.isCountable() || (item.deleted && since === null)) continue;
      const content = item.content instanceof Y.ContentString ? item.content.str
        : '\ufffc'.repeat(item.length);
      if (since === null) {
        // The common case, without the pieces' arrays: what each logged range of the item wrote.
        for (const [from, to, seq] of piecesOf(created, item.id.client, item.id.clock, item.id.clock + item.length)) {
          const who = authorOf.get(seq) ?? NO_AUTHOR;
          const author = who.displayName ?? who.user;
          const piece = from === item.id.clock && to === item.id.clock + item.length ? content : content.slice(from - item.id.clock, to - item.id.clock);
          const last = runs[runs.length - 1];
          if (last !== undefined && last.author === author) last.text += piece;
          else runs.push({ text: piece, author, user: who.user, seq });
        }
        continue;
      }
      const pieces = piecesOf(created, item.id.client, item.id.clock, item.id.clock + item.length).flatMap(([from, to, seq]) =>
        item.deleted && since !== null
          ? byDeletion(item.id.client, from, to).map(([a, b, deletion]): [number, number, number, number] => [a, b, seq, deletion])
          : [[from, to, seq, 0] as [number, number, number, number]]);
      for (const [from, to, seq, deletion] of pieces) {
        const change = changeOf(seq, item.deleted, deletion);
        if (change === 'skip') continue;
        const who = authorOf.get(seq) ?? NO_AUTHOR;
        const piece = content.slice(from - item.id.clock, to - item.id.clock);
        const author = who.displayName ?? who.user;
        const last = runs[runs.length - 1];
        if (last !== undefined && last.author === author && last.change === change) last.text += piece;
        else runs.push({ text: piece, author, user: who.user, seq, ...(change === undefined ? {} : { change }) });
      }
    }
    return runs;
  };
  const walk = (type: Y.XmlFragment | Y.XmlElement, blockChange: AuthorshipBlock['change']): void => {
    let runs: AuthorshipRun[] | null = null;
    for (let item = type._start; item !== null; item = item.right) {
      if (!(item.content instanceof Y.ContentType)) continue;
      const child = item.content.type;
      const createdSeq = piecesOf(created, item.id.client, item.id.clock, item.id.clock + 1)[0][2];
      const change = changeOf(createdSeq, item.deleted, item.deleted && since !== null ? deletedSeq(item.id.client, item.id.clock) : 0);
      if (change === 'skip') continue;
      if (child instanceof Y.XmlText) {
        if (runs === null) {
          runs = [];
          blocks.push({ type: type instanceof Y.XmlElement ? type.nodeName : 'text', runs, ...(blockChange === undefined ? {} : { change: blockChange }) });
        }
        runs.push(...textRuns(child));
      } else if (child instanceof Y.XmlElement) {
        runs = null;
        walk(child, change ?? blockChange);
      }
    }
    if (runs === null && type instanceof Y.XmlElement && type._start === null) {
      blocks.push({ type: type.nodeName, runs: [], ...(blockChange === undefined ? {} : { change: blockChange }) });
    }
  };
  for (const [name, shared] of ydoc.share) {
    // Root types come back untyped (AbstractType) until asked for by kind; the item content tells which.
    const first = shared._start;
    if (first === null) continue;
    if (first.content instanceof Y.ContentType) walk(ydoc.getXmlFragment(name), undefined);
    else if (first.content instanceof Y.ContentString || first.content instanceof Y.ContentFormat || first.content instanceof Y.ContentEmbed) {
      blocks.push({ type: name, runs: textRuns(ydoc.getText(name)) });
    }
  }
  ydoc.destroy();
  const totals = new Map<string | null, { author: string | null; user: string | null; characters: number }>();
  for (const block of blocks) {
    for (const run of block.runs) {
      if (run.change === 'removed') continue;
      const total = totals.get(run.author) ?? { author: run.author, user: run.user, characters: 0 };
      total.characters += run.text.length;
      totals.set(run.author, total);
    }
  }
  return { seq: at, since, blocks, authors: [...totals.values()].sort((a, b) => b.characters - a.characters) };
}
