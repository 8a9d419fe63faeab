// A document's content over HTTP (api.ts checks permissions, then calls these):
//   GET  /api/documents/{doc}/content?format=text|html|markdown|json&field=&at=
//        the editor field (or a Y.Text field, as text) now or at a past seq or time;
//   POST /api/documents/{doc}/content?mode=replace|append&field=
//        Markdown, HTML or ProseMirror JSON written into the editor field;
//   POST /api/documents/{doc}/updates
//        a Yjs update as it is.
// Both writes take one path: the change becomes one Yjs update, checked
// against --max-document-bytes with the live document, logged with the
// caller's user and display name, applied to the live document (connected
// editors see it at once, other instances through Redis or catch-up), and
// answered with { doc, seq } once committed. Bad input is refused before
// anything is logged. The conversions (content-formats.ts) run on a worker
// thread started on the first content request, one job at a time. A job has
// conversionTimeoutMs from the moment it is queued (time spent waiting behind
// other jobs counts, so no caller waits longer than that for one conversion):
// one still waiting then is refused without running, one running then is
// stopped (the worker with it) and refused. At most maxQueued jobs (16)
// wait; past that a request is refused at once with 503 CONVERSION_QUEUE_FULL
// and Retry-After, so a burst of requests holds neither minutes of waiting nor
// the document states they carry.

import type { IncomingMessage } from 'node:http';
import { Worker } from 'node:worker_threads';
import type { Hocuspocus } from '@hocuspocus/server';
import type { JSONContent } from '@tiptap/core';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { checkUpdate, MalformedUpdateError, type EventStore } from '../persistence/index.js';
import { ApiError, sendJson, type ApiCaller, type ContentRoutes } from './api.js';
import { CloseCodes } from './close-codes.js';
// Types only: the conversions themselves load in the worker thread, never here.
import type { ContentFormat, RenderedField } from './content-formats.js';
import type { ContentJob, ContentJobAnswer } from './content-worker.js';
import { EDITOR_FIELD } from './editor-field.js';
import { seqParam } from './history-api.js';
import type { DocumentSizeGuard } from './limits.js';
import type { Metrics } from './metrics.js';

export interface ContentApiOptions {
  store: EventStore;
  hocuspocus: Hocuspocus;
  instanceId: string;
  logger: Logger;
  metrics: Pick<Metrics, 'refusals' | 'contentConversionsWaiting'>;
  /** Largest request body accepted, as for WebSocket frames (--max-message-bytes). */
  maxBodyBytes: number;
  /** The same guard the WebSocket path asks (--max-document-bytes). */
  documentSize: DocumentSizeGuard;
  /** Conversion limits; defaults CONVERSION_TIMEOUT_MS and MAX_QUEUED_CONVERSIONS. */
  conversion?: ConversionLimits;
}

export interface ConversionLimits {
  /** The longest one conversion may take, waiting in the queue included (ms). */
  timeoutMs?: number;
  /** How many conversions may wait for the worker (besides the one it runs). */
  maxQueued?: number;
}

/**
 * The longest one conversion may run. @tiptap/markdown's parser grows faster
 * than its input (about 1 s for 100 kB of Markdown and over a minute for 1 MB
 * on the 2-core test machine): past this, the worker is stopped and a new one
 * takes the next job, so one huge body cannot hold the others up for long.
 */
export const CONVERSION_TIMEOUT_MS = 10_000;
/** Conversions that may wait behind the running one: at most 16 x 10 s of work queued. */
export const MAX_QUEUED_CONVERSIONS = 16;
const FORMATS: readonly ContentFormat[] = ['json', 'html', 'markdown', 'text'];
/** The media types a body may be sent as, and the format each is read as. */
const INPUT_MEDIA_TYPES: Record<string, Exclude<ContentFormat, 'text'>> = {
  'text/markdown': 'markdown',
  'text/html': 'html',
  'application/json': 'json',
};
const DEFAULT_FORMAT = 'json';
const OUTPUT_TYPES: Record<string, string> = {
  text: 'text/plain; charset=utf-8',
  html: 'text/html; charset=utf-8',
  markdown: 'text/markdown; charset=utf-8',
};
/** HTML answers are documents of someone else's making: never run or load anything from them under this origin. */
const HTML_ANSWER_HEADERS = { 'content-security-policy': "default-src 'none'; sandbox", 'x-content-type-options': 'nosniff' };

export function createContentApi(options: ContentApiOptions): ContentRoutes & { close(): Promise<void> } {
  const { store, hocuspocus, logger } = options;
  const timeoutMs = options.conversion?.timeoutMs ?? CONVERSION_TIMEOUT_MS;
  const converter = createConverter(logger, options.metrics, timeoutMs, options.conversion?.maxQueued ?? MAX_QUEUED_CONVERSIONS);

  /**
   * Logs the update `change` computes from the live document's state, as
   * `caller`, and applies it to the live document. `change` returns null when
   * there is nothing to write; the answer is then the current seq.
   */
  async function write(doc: string, caller: ApiCaller | null, via: string,
    change: (live: Y.Doc) => Uint8Array | null | Promise<Uint8Array | null>): Promise<number> {
    const connection = await hocuspocus.openDirectConnection(doc, {});
    try {
      const document = connection.document!;
      const update = await change(document);
      if (update === null) return (await store.info(doc))?.seq ?? 0;
      const size = options.documentSize.exceeds(document, update);
      if (size !== null) {
        const detail = `the document would grow to ${size} bytes; the limit is ${options.documentSize.maxBytes} (--max-document-bytes)`;
        options.metrics.refusals.inc({ reason: CloseCodes.DocumentTooLarge.reason });
        logger.warn({ reason: CloseCodes.DocumentTooLarge.reason, detail, doc, user: caller?.id ?? null, via }, 'refused');
        throw new ApiError(413, 'DOCUMENT_TOO_LARGE', `${detail}; nothing was written`);
      }
      let result;
      try {
        result = await store.append(doc, update, { instanceId: options.instanceId, user: caller?.id ?? null, displayName: caller?.name ?? null });
      } catch (error) {
        if (error instanceof MalformedUpdateError) throw new ApiError(400, 'MALFORMED_UPDATE', `the update cannot be applied: ${error.message}`);
        throw error;
      }
      // Logged first, with the caller's user; the live document's own append of it then adds nothing.
      await connection.transact((live) => Y.applyUpdate(live, update));
      const seq = result.seq ?? (await store.info(doc))?.seq ?? 0;
      logger.info({ doc, seq, size: result.size, user: caller?.id ?? null, via }, 'update posted');
      return seq;
    } finally {
      await connection.disconnect();
    }
  }

  return {
    close: () => converter.close(),

    async postUpdate(request, response, doc, caller) {
      requireMediaType(request, ['application/octet-stream'], 'send the Yjs update as Content-Type: application/octet-stream');
      const update = await readBody(request, options.maxBodyBytes);
      try {
        // The same check as for WebSocket updates: nothing Yjs cannot replay reaches the log or the live document.
        checkUpdate(update);
      } catch (error) {
        if (!(error instanceof MalformedUpdateError)) throw error;
        throw new ApiError(400, 'MALFORMED_UPDATE', `the body is not a Yjs update (v1) that can be applied: ${error.message}`);
      }
      const seq = await write(doc, caller, 'api', () => update);
      sendJson(response, 200, { doc, seq });
    },

    async getContent(_request, response, url, doc) {
      const format = (url.searchParams.get('format') ?? DEFAULT_FORMAT) as ContentFormat;
      if (!FORMATS.includes(format)) throw new ApiError(400, 'BAD_REQUEST', `format must be one of ${FORMATS.join(', ')} (got "${format}")`);
      const field = fieldParam(url);
      const at = (await seqParam(store, doc, url, 'at', { ApiError })) ?? undefined;
      const exists = (await store.info(doc)) !== null;
      if (!exists && at !== undefined && at > 0) throw new ApiError(404, 'UNKNOWN_SEQ', `no document named ${doc} (never written), so no seq ${at}`);
      const state = await store.stateAt(doc, at);
      const content = await converter.run<RenderedField>({ op: 'render', state: state.update, field, format },
        () => new ApiError(503, 'CONVERSION_TIMEOUT', `converting the document to ${format} took longer than ${timeoutMs / 1000} s; read it as a Yjs update from /state instead`));
      if (content.kind === 'other') {
        throw new ApiError(409, 'FIELD_TYPE_MISMATCH', `field "${field}" holds a Y.Map or Y.Array, which no content format shows`);
      }
      if (content.kind === 'text' && format !== 'text') {
        throw new ApiError(409, 'FIELD_TYPE_MISMATCH', `field "${field}" is a Y.Text: ask for format=text (got format=${format})`);
      }
      const body = content.kind === 'text' ? content.text : content.body;
      const headers = { 'x-palimpsest-seq': String(state.seq), 'x-palimpsest-exists': String(exists) };
      if (format === 'json') return sendJson(response, 200, { doc, field, seq: state.seq, exists, content: body }, headers);
      const text = body as string;
      response.writeHead(200, {
        ...headers,
        ...(format === 'html' ? HTML_ANSWER_HEADERS : {}),
        'content-type': OUTPUT_TYPES[format],
        'content-length': Buffer.byteLength(text),
      });
      response.end(text);
    },

    async postContent(request, response, url, doc, caller) {
      const mode = url.searchParams.get('mode') ?? 'replace';
      if (mode !== 'replace' && mode !== 'append') throw new ApiError(400, 'BAD_REQUEST', `mode must be replace or append (got "${mode}")`);
      const field = fieldParam(url);
      const mediaType = requireMediaType(request, Object.keys(INPUT_MEDIA_TYPES),
        'send Markdown as text/markdown, HTML as text/html or ProseMirror JSON as application/json');
      const body = decodeUtf8(await readBody(request, options.maxBodyBytes));
      const tooSlow = () => new ApiError(413, 'CONVERSION_TIMEOUT',
        `converting this body took longer than ${timeoutMs / 1000} s (waiting for the converter included); send it in smaller pieces (mode=append); nothing was written`);
      // Parsed and checked against the schema before the document is touched.
      const content = await converter.run<JSONContent>({ op: 'parse', body, format: INPUT_MEDIA_TYPES[mediaType] }, tooSlow);
      const seq = await write(doc, caller, 'api-content', async (live) =>
        converter.run<Uint8Array | null>({ op: 'update', state: Y.encodeStateAsUpdate(live), field, content, mode }, tooSlow));
      sendJson(response, 200, { doc, seq });
    },
  };
}

/** The request's media type, which must be one of `accepted`; 415 otherwise. */
function requireMediaType(request: IncomingMessage, accepted: string[], advice: string): string {
  const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!accepted.includes(type)) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `${advice} (got "${type || 'none'}")`);
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && type !== 'application/octet-stream') {
    throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the body as UTF-8 (got charset=${charset})`);
  }
  return type;
}

function fieldParam(url: URL): string {
  const field = url.searchParams.get('field') ?? EDITOR_FIELD;
  if (field.length === 0 || field.length > 255) throw new ApiError(400, 'BAD_REQUEST', 'query parameter field must be 1-255 characters (a root type name)');
  return field;
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, 'MALFORMED_CONTENT', 'the body is not valid UTF-8; nothing was written');
  }
}

async function readBody(request: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers['content-length']);
  const tooLarge = () => new ApiError(413, 'BODY_TOO_LARGE', `request bodies here are limited to ${limit} bytes (--max-message-bytes); nothing was written`);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Answers to ContentError codes: the caller's input, never the server's fault. */
const CONTENT_ERROR_STATUS: Record<string, number> = { MALFORMED_CONTENT: 400, SCHEMA_MISMATCH: 422, FIELD_TYPE_MISMATCH: 409 };

interface ContentConverter {
  /**
   * Runs `job` on the worker after the jobs before it; `onTimeout` builds the
   * error answered when it has not finished timeoutMs after this call.
   * Throws 503 CONVERSION_QUEUE_FULL at once when maxQueued jobs already wait.
   */
  run<T>(job: ContentJob, onTimeout: () => ApiError): Promise<T>;
  close(): Promise<void>;
}

/** The worker thread of content-worker.ts, started on the first job and again after a time-out or a crash. */
function createConverter(logger: Logger, metrics: ContentApiOptions['metrics'], timeoutMs: number, maxQueued: number): ContentConverter {
  let current: { worker: Worker; ready: Promise<void> } | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  /** Jobs queued and not yet sent to the worker. */
  let waiting = 0;
  let nextId = 0;

  function start(): { worker: Worker; ready: Promise<void> } {
    const worker = new Worker(new URL('./content-worker.js', import.meta.url));
    // Never what keeps the process alive: a server that is closing terminates it anyway.
    worker.unref();
    const ready = new Promise<void>((resolve, reject) => {
      const onMessage = (message: { ready?: boolean }) => {
        if (message.ready !== true) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve();
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    worker.on('error', (error) => logger.error({ err: error.message }, 'content worker failed'));
    worker.once('exit', () => {
      if (current?.worker === worker) current = null;
    });
    return { worker, ready };
  }

  async function dispatch<T>(job: ContentJob, onTimeout: () => ApiError, deadline: number): Promise<T> {
    if (performance.now() >= deadline) {
      logger.warn({ op: job.op, timeoutMs }, 'content conversion waited too long in the queue; not run');
      throw onTimeout();
    }
    current ??= start();
    const { worker, ready } = current;
    await ready;
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
      };
      const onMessage = (answer: ContentJobAnswer) => {
        if (answer.id !== id) return;
        finish();
        if (answer.ok) return resolve(answer.value as T);
        if (answer.code !== undefined) {
          const status = CONTENT_ERROR_STATUS[answer.code];
          return reject(new ApiError(status, answer.code, `${answer.message}; nothing was written`));
        }
        logger.error({ err: answer.message, op: job.op }, 'content conversion failed');
        reject(new Error(`content conversion failed: ${answer.message.split('\n')[0]}`));
      };
      const onExit = (code: number) => {
        finish();
        reject(new Error(`the content worker exited (${code}) during a ${job.op}`));
      };
      const timer = setTimeout(() => {
        finish();
        logger.warn({ op: job.op, timeoutMs }, 'content conversion took too long; worker stopped');
        if (current?.worker === worker) current = null;
        void worker.terminate();
        reject(onTimeout());
      }, Math.max(0, deadline - performance.now()));
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.postMessage({ id, job });
    });
  }

  return {
    run<T>(job: ContentJob, onTimeout: () => ApiError): Promise<T> {
      if (waiting >= maxQueued) {
        const retryAfter = Math.max(1, Math.ceil(timeoutMs / 1000));
        logger.warn({ op: job.op, waiting }, 'content conversion queue full; request refused');
        metrics.refusals.inc({ reason: 'conversion-queue-full' });
        return Promise.reject(new ApiError(503, 'CONVERSION_QUEUE_FULL',
          `${waiting} conversions are already waiting; try again in ${retryAfter} s (Retry-After)`, { 'retry-after': String(retryAfter) }));
      }
      const deadline = performance.now() + timeoutMs;
      waiting += 1;
      metrics.contentConversionsWaiting.set(waiting);
      const result = queue.then(() => {
        waiting -= 1;
        metrics.contentConversionsWaiting.set(waiting);
        return dispatch<T>(job, onTimeout, deadline);
      });
      queue = result.catch(() => undefined);
      return result;
    },
    async close() {
      const worker = current?.worker;
      current = null;
      await worker?.terminate();
    },
  };
}
