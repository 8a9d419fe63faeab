// The change feed: GET /api/documents/{doc}/changes (one document, by seq)
// and GET /api/changes (every document, by the store's feed cursor), as
// Server-Sent Events or, with Accept: application/json, as a JSON array that
// `wait` turns into a long poll. Readers are woken when something may have
// committed: this instance's appends (the server's store tells committed()
// once each append has committed), other instances' (the store's
// watchChanges, PostgreSQL's LISTEN/NOTIFY) and, as the backstop for other
// processes on one SQLite file and for a PostgreSQL xmin held back by another
// transaction, a poll every `pollMs` while anyone waits.
//
// One document's event streams that have read everything share one reader
// (a DocumentTail): a commit costs one store query and one JSON encoding per
// entry for the document, whatever the number of subscribers; each of them
// gets the same bytes in one write. A stream that is behind (it starts from
// an old seq, or its connection is slow and its buffer full) reads on its own
// until it has caught up, then joins the tail again.
//
// Never skipping an entry rests on the store: per document, seqs are gap-free
// and commit in order; across documents, EventStore.feed never hands out an
// entry behind a cursor it has already handed out (see the schema migrations).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EventStore, FeedEntry } from '../persistence/index.js';
import { ApiError, type ChangeRoutes } from './api.js';
import { logEntryToJson, type LogEntryJson } from './log-entry-json.js';

export interface ChangeFeedOptions {
  logger: Logger;
  /** How often waiting readers look again without being told of a commit. */
  pollMs?: number;
  /** How often an idle event stream sends a comment line, so proxies keep it open. */
  keepAliveMs?: number;
}

/** An all-documents feed entry on the wire: the history entry plus its document and cursor. */
export interface FeedEntryJson extends LogEntryJson {
  doc: string;
  cursor: string;
}

export interface ChangeFeed extends ChangeRoutes {
  /**
   * Tells the feed that an append to `doc` committed on this instance (the
   * server's store reports each one: observed-store.ts); its readers are
   * woken in the next turn of the event loop.
   */
  committed(doc: string): void;
  /**
   * Calls `listener` whenever readers are woken: with the documents this
   * instance committed to, or null when that is not known (a poll, another
   * instance's commit); returns the unsubscribe.
   */
  onWake(listener: (docs: ReadonlySet<string> | null) => void): () => void;
  /** Ends every open stream and long poll. */
  close(): void;
}

/** Entries read per query; a stream sends them and reads on. */
const PAGE = 500;
/** The longest `wait` a long poll may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 300;
/** The most entries one JSON answer may ask for (`limit`). */
const MAX_LIMIT = 10_000;

export function createChangeFeed(store: EventStore, options: ChangeFeedOptions): ChangeFeed {
  const pollMs = options.pollMs ?? 1000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  /** Readers waiting for the next commit; each is called once and removed. */
  const waiters = new Set<() => void>();
  let pollTimer: NodeJS.Timeout | null = null;
  let closed = false;

  /** Per document, the streams that have read everything (see DocumentTail). */
  const tails = new Map<string, DocumentTail>();
  let keepAliveTimer: NodeJS.Timeout | null = null;

  const wakeListeners = new Set<(docs: ReadonlySet<string> | null) => void>();
  /** Counts wake-ups, so that one that comes while a reader is reading is not lost (see nextWake). */
  let generation = 0;
  /**
   * Wakes the readers: the tails of `docs` (every tail when null: a poll, or
   * another instance's commit, says nothing of which documents changed),
   * every waiting reader and the listeners.
   */
  function wake(docs: ReadonlySet<string> | null = null): void {
    generation++;
    for (const listener of wakeListeners) listener(docs);
    const woken = [...waiters];
    waiters.clear();
    for (const waiter of woken) waiter();
    if (docs === null) {
      for (const [doc, tail] of tails) void pump(doc, tail);
    } else {
      for (const doc of docs) {
        const tail = tails.get(doc);
        if (tail !== undefined) void pump(doc, tail);
      }
    }
    if (waiters.size === 0 && tails.size === 0 && pollTimer !== null) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }
  const wakeAll = () => wake(null);
  /** Keeps polling for other processes' commits while anyone waits or follows a document. */
  function poll(): void {
    if (pollTimer === null) {
      pollTimer = setInterval(wakeAll, pollMs);
      pollTimer.unref();
    }
  }
  /** Documents appended to in this event-loop turn: their readers are woken once, in the next. */
  let committed: Set<string> | null = null;
  function noteCommit(doc: string): void {
    if (committed === null) {
      committed = new Set();
      setImmediate(() => {
        const docs = committed!;
        committed = null;
        wake(docs);
      });
    }
    committed.add(doc);
  }
  let stopWatching: (() => void) | null = null;
  /** Listens for other instances' commits from the first reader on (no I/O before anyone reads). */
  function watch(): void {
    if (stopWatching === null && !closed) stopWatching = store.watchChanges?.(wakeAll) ?? (() => undefined);
  }

  /**
   * Resolves at the next wake-up, after `timeoutMs`, or when `signal` aborts, whichever comes first;
   * at once when there was a wake-up since `readAt` (the generation when the caller started reading).
   */
  function nextWake(timeoutMs: number, signal: AbortSignal, readAt: number): Promise<void> {
    if (closed || signal.aborted || generation !== readAt) return Promise.resolve();
    watch();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done);
      waiters.add(done);
      poll();
    });
  }

  /**
   * Reads what `tail`'s document committed after the tail's seq and sends it
   * to every member: one query and one encoding per entry for all of them. A
   * wake-up during the read makes it read again, so none is lost.
   */
  async function pump(doc: string, tail: DocumentTail): Promise<void> {
    if (tail.reading) {
      tail.again = true;
      return;
    }
    tail.reading = true;
    try {
      do {
        tail.again = false;
        for (;;) {
          const entries = await store.entries(doc, { afterSeq: tail.seq, limit: PAGE });
          if (tails.get(doc) !== tail) return;
          if (entries.length === 0) break;
          if (entries[0].seq !== tail.seq + 1) throw historyPruned(doc, tail.seq, entries[0].seq);
          const events = entries.map((entry) => eventText(String(entry.seq), logEntryToJson(entry)));
          const page = Buffer.from(events.join(''));
          const last = entries[entries.length - 1].seq;
          const now = Date.now();
          for (const member of [...tail.members]) {
            // A member that joined ahead of the tail has some of these already.
            const skip = member.position - tail.seq;
            if (skip >= entries.length) continue;
            const fits = member.response.write(skip <= 0 ? page : events.slice(skip).join(''));
            member.position = last;
            member.lastWrite = now;
            // Its buffer is full: it reads on by itself once drained, and others do not wait for it.
            if (!fits) leaveTail(doc, tail, member, null);
          }
          tail.seq = last;
          if (entries.length < PAGE) break;
        }
      } while (tail.again);
    } catch (error) {
      if (tails.get(doc) === tail) tails.delete(doc);
      for (const member of [...tail.members]) leaveTail(doc, tail, member, error as Error);
    } finally {
      tail.reading = false;
    }
  }

  function leaveTail(doc: string, tail: DocumentTail, member: TailMember, error: Error | null): void {
    if (!tail.members.delete(member)) return;
    if (tail.members.size === 0 && tails.get(doc) === tail) tails.delete(doc);
    member.left(error);
  }

  /**
   * Sends `response` the document's entries after `start`, then follows the
   * document: read alone while behind, as a member of the document's tail
   * once caught up.
   */
  async function followDocument(response: ServerResponse, doc: string, start: number, lastSeq: number, signal: AbortSignal): Promise<void> {
    let position = start;
    /**
     * A seq the document is known to have reached (the `after` asked for may
     * be beyond its end): a tail starts there, never past what is committed.
     */
    let reached = Math.min(start, lastSeq);
    while (!signal.aborted && !closed) {
      const readAt = generation;
      const existing = tails.get(doc);
      if (existing === undefined || position < existing.seq) {
        const entries = await store.entries(doc, { afterSeq: position, limit: PAGE });
        if (entries.length > 0 && entries[0].seq !== position + 1) throw historyPruned(doc, position, entries[0].seq);
        for (const entry of entries) {
          if (!response.write(eventText(String(entry.seq), logEntryToJson(entry)))) await drained(response, signal);
        }
        if (entries.length > 0) position = reached = entries[entries.length - 1].seq;
        if (entries.length === PAGE || signal.aborted || closed) continue;
        const ahead = tails.get(doc);
        if (entries.length === 0 && ahead !== undefined && position < ahead.seq) {
          // The tail has read entries this read did not see (another connection's view of the database): look again at the next commit.
          await nextWake(pollMs, signal, readAt);
          continue;
        }
      }
      let tail = tails.get(doc);
      if (tail !== undefined && position < tail.seq) continue; // the tail moved on meanwhile: catch up first
      if (tail === undefined) {
        tail = { seq: reached, members: new Set(), reading: false, again: false };
        tails.set(doc, tail);
        watch();
        poll();
        keepAlive();
      }
      const joined = tail;
      const error = await new Promise<Error | null>((resolve) => {
        const member: TailMember = { response, position, lastWrite: Date.now(), left: resolve };
        joined.members.add(member);
        const onAbort = () => leaveTail(doc, joined, member, null);
        signal.addEventListener('abort', onAbort, { once: true });
        member.left = (reason) => {
          signal.removeEventListener('abort', onAbort);
          position = member.position;
          resolve(reason);
        };
        // Something committed while this stream read, or it read further than the tail: the tail reads now.
        if (generation !== readAt || position > joined.seq) void pump(doc, joined);
      });
      if (error !== null) throw error;
      if (response.writableNeedDrain) await drained(response, signal);
    }
  }

  /** One timer for every tail member: a comment line to those idle for keepAliveMs, so proxies keep the stream open. */
  function keepAlive(): void {
    if (keepAliveTimer !== null) return;
    keepAliveTimer = setInterval(() => {
      if (tails.size === 0) {
        clearInterval(keepAliveTimer!);
        keepAliveTimer = null;
        return;
      }
      const now = Date.now();
      for (const tail of tails.values()) {
        for (const member of tail.members) {
          if (now - member.lastWrite < keepAliveMs) continue;
          member.response.write(': keep-alive\n\n');
          member.lastWrite = now;
        }
      }
    }, Math.max(10, Math.floor(keepAliveMs / 4)));
    keepAliveTimer.unref();
  }

  /**
   * Streams or answers what `read` gives after `start`: `read` returns the
   * events after a position and the position after them, or throws an
   * ApiError when the reader cannot go on (pruned history).
   */
  async function answer(request: IncomingMessage, response: ServerResponse, url: URL, feed: FeedReader,
    follow?: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const lifetime = new AbortController();
    request.on('close', () => lifetime.abort());
    response.on('close', () => lifetime.abort());
    const wantsJson = prefersJson(request.headers.accept);
    const waitSeconds = integerParameter(url, 'wait') ?? 0;
    if (waitSeconds > MAX_WAIT_SECONDS) {
      throw new ApiError(400, 'BAD_REQUEST', `query parameter wait must be at most ${MAX_WAIT_SECONDS} (seconds)`);
    }
    const limit = integerParameter(url, 'limit') ?? 1000;
    if (limit < 1 || limit > MAX_LIMIT) throw new ApiError(400, 'BAD_REQUEST', `query parameter limit must be a whole number from 1 to ${MAX_LIMIT}`);

    if (wantsJson) {
      const deadline = Date.now() + waitSeconds * 1000;
      let readAt = generation;
      let page = await feed.read(feed.start, limit);
      while (page.events.length === 0 && Date.now() < deadline && !lifetime.signal.aborted && !closed) {
        await nextWake(deadline - Date.now(), lifetime.signal, readAt);
        readAt = generation;
        page = await feed.read(feed.start, limit);
      }
      const text = JSON.stringify(page.events.map((event) => event.json));
      response.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        // Where to read on from, also when nothing came: pass it back as ?after.
        'x-palimpsest-cursor': page.next,
      });
      response.end(text);
      return;
    }

    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // nginx and the like would otherwise hold events back in a buffer.
      'x-accel-buffering': 'no',
    });
    response.flushHeaders();
    let position = feed.start;
    let lastWrite = Date.now();
    try {
      if (follow !== undefined) await follow(lifetime.signal);
      while (follow === undefined && !lifetime.signal.aborted && !closed) {
        const readAt = generation;
        const page = await feed.read(position, PAGE);
        for (const event of page.events) {
          if (!response.write(eventText(event.id, event.json))) await drained(response, lifetime.signal);
          lastWrite = Date.now();
        }
        position = page.next;
        if (page.events.length === PAGE) continue;
        if (Date.now() - lastWrite >= keepAliveMs) {
          response.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        await nextWake(Math.max(0, keepAliveMs - (Date.now() - lastWrite)), lifetime.signal, readAt);
      }
    } catch (error) {
      // Headers are sent: the stream can only end, with an `error` event saying why. The client resumes with Last-Event-ID.
      const code = error instanceof ApiError ? error.code : 'STORE_UNAVAILABLE';
      options.logger.warn({ err: (error as Error).message, code, path: url.pathname }, 'change feed stream ended by an error');
      response.write(`event: error\ndata: ${JSON.stringify({ code, message: (error as Error).message })}\n\n`);
    }
    response.end();
  }

  return {
    committed: noteCommit,

    async documentChanges(request, response, url, doc) {
      const start = Number(resumeFrom(request, url) ?? '0');
      if (!Number.isSafeInteger(start) || start < 0) {
        throw new ApiError(400, 'BAD_REQUEST', 'after (or Last-Event-ID) must be a whole number: the last seq already seen');
      }
      const info = await store.info(doc);
      if (info?.firstRetainedSeq != null && info.firstRetainedSeq > start + 1) {
        throw historyPruned(doc, start, info.firstRetainedSeq);
      }
      await answer(request, response, url, {
        start: String(start),
        async read(after, limit) {
          const afterSeq = Number(after);
          const entries = await store.entries(doc, { afterSeq, limit });
          // Retention pruned entries this reader had not read yet: say so rather than skip them.
          if (entries.length > 0 && entries[0].seq !== afterSeq + 1) throw historyPruned(doc, afterSeq, entries[0].seq);
          return {
            events: entries.map((entry) => ({ id: String(entry.seq), json: logEntryToJson(entry) })),
            next: entries.length > 0 ? String(entries[entries.length - 1].seq) : after,
          };
        },
      }, (signal) => followDocument(response, doc, start, info?.seq ?? 0, signal));
    },

    async allChanges(request, response, url) {
      // Absent or empty: from the first entry (an empty X-Palimpsest-Cursor, from a feed with no entry yet, comes back so).
      const start = resumeFrom(request, url) ?? '';
      if (start !== '') {
        const problem = await store.feedCursorProblem(start);
        if (problem !== null) {
          const shown = start.length > 100 ? `${JSON.stringify(start.slice(0, 100))}…` : JSON.stringify(start);
          throw new ApiError(400, 'BAD_REQUEST', `after (or Last-Event-ID) ${shown} is not a cursor of this feed: ${problem}. ` +
            'Pass the cursor of the last entry read (its event id, its cursor field, or X-Palimpsest-Cursor), or leave after out or empty to read from the first entry');
        }
      }
      await answer(request, response, url, {
        start,
        async read(after, limit) {
          const page = await store.feed(after === '' ? null : after, { limit });
          return {
            events: page.entries.map((entry) => ({ id: entry.cursor, json: feedEntryToJson(entry) })),
            next: page.cursor ?? '',
          };
        },
      });
    },

    onWake(listener) {
      wakeListeners.add(listener);
      watch();
      return () => wakeListeners.delete(listener);
    },

    close() {
      closed = true;
      stopWatching?.();
      for (const [doc, tail] of tails) for (const member of [...tail.members]) leaveTail(doc, tail, member, null);
      if (keepAliveTimer !== null) clearInterval(keepAliveTimer);
      wake();
    },
  };
}

/** A document's event streams that have read everything: one reader (pump) sends each new entry to all of them. */
interface DocumentTail {
  /** The last seq read (and sent to every member). */
  seq: number;
  members: Set<TailMember>;
  reading: boolean;
  /** A wake-up came while reading: read again. */
  again: boolean;
}

interface TailMember {
  response: ServerResponse;
  /** The last seq this stream was sent; above the tail's seq when it joined ahead of it. */
  position: number;
  lastWrite: number;
  /** Called once it leaves: null when it fell behind, was closed or the feed closes; the error that ends the stream otherwise. */
  left(error: Error | null): void;
}

function eventText(id: string, json: object): string {
  return `id: ${id}\ndata: ${JSON.stringify(json)}\n\n`;
}

/** Resolves when `response` can take more, or the stream ends. */
function drained(response: ServerResponse, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      response.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    response.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

interface FeedReader {
  /** The position to read after ('' = the beginning). */
  start: string;
  read(after: string, limit: number): Promise<{ events: Array<{ id: string; json: object }>; next: string }>;
}

export function feedEntryToJson(entry: FeedEntry): FeedEntryJson {
  return { doc: entry.doc, cursor: entry.cursor, ...logEntryToJson(entry) };
}

/** Last-Event-ID (an EventSource reconnecting) wins over ?after, which it repeats from the first request. */
function resumeFrom(request: IncomingMessage, url: URL): string | null {
  const lastEventId = request.headers['last-event-id'];
  if (typeof lastEventId === 'string' && lastEventId !== '') return lastEventId;
  return url.searchParams.get('after');
}

/** JSON when asked for and not outranked by text/event-stream; SSE otherwise (EventSource sends Accept: text/event-stream). */
function prefersJson(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.includes('application/json') && !accept.includes('text/event-stream');
}

function integerParameter(url: URL, name: string): number | null {
  const value = url.searchParams.get(name);
  if (value === null) return null;
  if (!/^\d+$/.test(value)) throw new ApiError(400, 'BAD_REQUEST', `query parameter ${name} must be a whole number`);
  return Number(value);
}

function historyPruned(doc: string, after: number, firstRetainedSeq: number): ApiError {
  return new ApiError(410, 'HISTORY_PRUNED',
    `the log of ${doc} now starts at seq ${firstRetainedSeq} (retention pruned the entries after ${after}); read the state and follow from there`);
}
