// The change feed: GET /api/documents/{doc}/changes (one document, by seq)
// and GET /api/changes (every document, by the store's feed cursor), as
// Server-Sent Events or, with Accept: application/json, as a JSON array that
// `wait` turns into a long poll. Readers are woken when something may have
// committed: this instance's appends (the store returned by createChangeFeed
// tells once each append has committed), other instances' (the store's
// watchChanges, PostgreSQL's LISTEN/NOTIFY) and, as the backstop for other
// processes on one SQLite file and for a PostgreSQL xmin held back by another
// transaction, a poll every `pollMs` while anyone waits.
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

export interface ChangeFeed<S extends EventStore = EventStore> extends ChangeRoutes {
  /** The store to give everyone else: its appends wake the feed's readers once committed. */
  readonly store: S;
  /** Calls `listener` whenever readers are woken (a commit here, or one the store told of); returns the unsubscribe. */
  onWake(listener: () => void): () => void;
  /** Ends every open stream and long poll. */
  close(): void;
}

/** Entries read per query; a stream sends them and reads on. */
const PAGE = 500;
/** The longest `wait` a long poll may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 300;

export function createChangeFeed<S extends EventStore>(store: S, options: ChangeFeedOptions): ChangeFeed<S> {
  const pollMs = options.pollMs ?? 1000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  /** Readers waiting for the next commit; each is called once and removed. */
  const waiters = new Set<() => void>();
  let pollTimer: NodeJS.Timeout | null = null;
  let closed = false;

  const wakeListeners = new Set<() => void>();
  /** Counts wake-ups, so that one that comes while a reader is reading is not lost (see nextWake). */
  let generation = 0;
  function wake(): void {
    generation++;
    for (const listener of wakeListeners) listener();
    const woken = [...waiters];
    waiters.clear();
    for (const waiter of woken) waiter();
    if (waiters.size === 0 && pollTimer !== null) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }
  let stopWatching: (() => void) | null = null;
  /** Listens for other instances' commits from the first reader on (no I/O before anyone reads). */
  function watch(): void {
    if (stopWatching === null && !closed) stopWatching = store.watchChanges?.(wake) ?? (() => undefined);
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
      if (pollTimer === null) {
        pollTimer = setInterval(wake, pollMs);
        pollTimer.unref();
      }
    });
  }

  const observed = new Proxy(store, {
    get(target, key) {
      if (key === 'append') {
        return async (...args: Parameters<EventStore['append']>) => {
          const result = await target.append(...args);
          if (result.seq !== null) setImmediate(wake);
          return result;
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });

  /**
   * Streams or answers what `read` gives after `start`: `read` returns the
   * events after a position and the position after them, or throws an
   * ApiError when the reader cannot go on (pruned history).
   */
  async function answer(request: IncomingMessage, response: ServerResponse, url: URL, feed: FeedReader): Promise<void> {
    const lifetime = new AbortController();
    request.on('close', () => lifetime.abort());
    response.on('close', () => lifetime.abort());
    const wantsJson = prefersJson(request.headers.accept);
    const waitSeconds = integerParameter(url, 'wait') ?? 0;
    if (waitSeconds > MAX_WAIT_SECONDS) {
      throw new ApiError(400, 'BAD_REQUEST', `query parameter wait must be at most ${MAX_WAIT_SECONDS} (seconds)`);
    }
    const limit = Math.min(integerParameter(url, 'limit') ?? 1000, 10_000);

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
      while (!lifetime.signal.aborted && !closed) {
        const readAt = generation;
        const page = await feed.read(position, PAGE);
        for (const event of page.events) {
          if (!response.write(`id: ${event.id}\ndata: ${JSON.stringify(event.json)}\n\n`)) {
            await new Promise<void>((resolve) => {
              response.once('drain', resolve);
              lifetime.signal.addEventListener('abort', () => resolve(), { once: true });
            });
          }
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
    store: observed,

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
      });
    },

    async allChanges(request, response, url) {
      const start = resumeFrom(request, url);
      await answer(request, response, url, {
        start: start ?? '',
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
      wake();
    },
  };
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
