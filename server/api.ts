// The document REST API under /api/ (described by /api/openapi.json):
// list documents, read a document's history and its state at any seq, restore
// an old version (as a new forward update) and compact. Document names go in
// one path segment, percent-encoded (a/b → a%2Fb).
//
// Unknown documents: a valid name that was never written reads as the empty
// document at seq 0 on every route (as `palimpsest history` does), and every
// answer says so: `exists: false` in JSON objects, `X-Palimpsest-Exists:
// false` on the history and state answers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Hocuspocus } from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { computeRestoreUpdate, StoreError, type EventStore } from '../persistence/index.js';
import { documentNameProblem } from './document-name.js';
import type { Metrics } from './metrics.js';
import { handleHistoryRoute, seqBody, seqParam, type HistoryRouteTools } from './history-api.js';
import { logEntryToJson } from './log-entry-json.js';
import { openApiDocument } from './openapi.js';

export interface ApiOptions {
  store: EventStore;
  hocuspocus: Hocuspocus;
  instanceId: string;
  logger: Logger;
  /** Compactions asked for here are counted with the automatic ones. */
  metrics: Pick<Metrics, 'compactions'>;
  /**
   * Checks the caller may `access` the document (or the document list when
   * doc is null); returns who the token names (null without authentication),
   * or throws an ApiError.
   */
  authorize: (request: IncomingMessage, doc: string | null, access: 'read' | 'write') => Promise<ApiCaller | null>;
  /** The change feed routes (change-feed.ts); without it they answer 404. */
  changes?: ChangeRoutes;
  /** The webhook routes (webhooks.ts); without them (no --webhook-url) they answer 404. */
  webhooks?: WebhookRoutes;
  /** Writing content over HTTP (content-api.ts); without it those routes answer 404. */
  content?: ContentRoutes;
}

/** The user a token names: `sub`, recorded as an entry's user, and `name`, its display name. */
export interface ApiCaller {
  id: string;
  name: string | null;
}

/** What content-api.ts answers; authorization (read or write) is checked here first. */
export interface ContentRoutes {
  /** POST /api/documents/{doc}/updates, as `caller`. */
  postUpdate(request: IncomingMessage, response: ServerResponse, doc: string, caller: ApiCaller | null): Promise<void>;
  /** GET /api/documents/{doc}/content */
  getContent(request: IncomingMessage, response: ServerResponse, url: URL, doc: string): Promise<void>;
  /** POST /api/documents/{doc}/content, as `caller`. */
  postContent(request: IncomingMessage, response: ServerResponse, url: URL, doc: string, caller: ApiCaller | null): Promise<void>;
}

/** The dead letters of webhooks.ts, and what a restore tells it. */
export interface WebhookRoutes {
  deadLetters(): Promise<unknown[]>;
  redeliver(id: string): Promise<{ found: boolean; delivered: boolean; error: string | null }>;
  noteRestore(doc: string, seq: number): void;
}

/** What the change feed answers; authorization is checked here before they are called. */
export interface ChangeRoutes {
  /** GET /api/documents/{doc}/changes */
  documentChanges(request: IncomingMessage, response: ServerResponse, url: URL, doc: string): Promise<void>;
  /** GET /api/changes */
  allChanges(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void>;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
  }
}

const MAX_BODY_BYTES = 64 * 1024;
/** The most entries one history answer may ask for (`limit`). */
const MAX_HISTORY_LIMIT = 10_000;

export async function handleApi(request: IncomingMessage, response: ServerResponse, url: URL, options: ApiOptions): Promise<void> {
  try {
    await route(request, response, url, options);
  } catch (error) {
    const apiError = toApiError(error);
    if (apiError.status >= 500) options.logger.error({ err: (error as Error).message, path: url.pathname }, 'api request failed');
    sendError(response, apiError);
  }
}

/** An error answer: `{"error": {code, message}}`, with the headers HTTP asks for (Allow on 405, WWW-Authenticate on 401). */
export function sendError(response: ServerResponse, error: ApiError): void {
  const headers = { ...error.headers };
  if (error.status === 401) headers['www-authenticate'] ??= 'Bearer';
  sendJson(response, error.status, { error: { code: error.code, message: error.message } }, headers);
}

async function route(request: IncomingMessage, response: ServerResponse, url: URL, options: ApiOptions): Promise<void> {
  const { store } = options;
  const segments = url.pathname.split('/').slice(2); // ['', 'api', ...]
  const method = request.method ?? 'GET';

  if (segments.length === 1 && segments[0] === 'openapi.json') {
    allow(method, ['GET']);
    return sendJson(response, 200, openApiDocument);
  }
  if (segments.length === 1 && segments[0] === 'changes' && options.changes !== undefined) {
    allow(method, ['GET']);
    // Every document's entries: only for a token that may read them all (a "*" rule).
    await options.authorize(request, null, 'read');
    return options.changes.allChanges(request, response, url);
  }
  if (segments[0] === 'webhooks' && segments[1] === 'dead-letters' && options.webhooks !== undefined) {
    return webhookRoute(request, response, url, segments.slice(2), options.webhooks, options);
  }
  if (segments[0] !== 'documents') throw new ApiError(404, 'NOT_FOUND', `no API route ${url.pathname}`);

  if (segments.length === 1) {
    allow(method, ['GET']);
    await options.authorize(request, null, 'read');
    return sendJson(response, 200, { documents: await store.documents() });
  }

  const doc = decodeDocumentName(segments[1]);
  const action = segments.slice(2).join('/');
  const historyTools: HistoryRouteTools = {
    store, authorize: options.authorize, ApiError, allow, readJson, sendJson,
    callerName,
  };
  if (await handleHistoryRoute(request, response, url, doc, action, historyTools)) return;
  switch (action) {
    case '': {
      allow(method, ['GET']);
      await options.authorize(request, doc, 'read');
      const info = await store.info(doc);
      if (info === null) {
        return sendJson(response, 200, { doc, exists: false, seq: 0, updatedAt: null, firstRetainedSeq: null, snapshots: [] });
      }
      return sendJson(response, 200, {
        doc: info.doc,
        exists: true,
        seq: info.seq,
        updatedAt: info.updatedAt?.toISOString() ?? null,
        firstRetainedSeq: info.firstRetainedSeq,
        snapshots: info.snapshots.map((s) => ({ seq: s.seq, createdAt: s.createdAt.toISOString(), size: s.size })),
      });
    }
    case 'history': {
      allow(method, ['GET']);
      await options.authorize(request, doc, 'read');
      const afterSeq = optionalInteger(url, 'after') ?? 0;
      const limit = optionalInteger(url, 'limit') ?? 1000;
      if (limit < 1 || limit > MAX_HISTORY_LIMIT) {
        throw new ApiError(400, 'BAD_REQUEST', `query parameter limit must be a whole number from 1 to ${MAX_HISTORY_LIMIT}`);
      }
      const exists = (await store.info(doc)) !== null;
      const entries = exists ? await store.entries(doc, { afterSeq, limit }) : [];
      return sendJson(response, 200, entries.map(logEntryToJson), { 'x-palimpsest-exists': String(exists) });
    }
    case 'changes': {
      if (options.changes === undefined) break;
      allow(method, ['GET']);
      await options.authorize(request, doc, 'read');
      return options.changes.documentChanges(request, response, url, doc);
    }
    case 'updates': {
      if (options.content === undefined) break;
      allow(method, ['POST']);
      const caller = await options.authorize(request, doc, 'write');
      return options.content.postUpdate(request, response, doc, caller);
    }
    case 'content': {
      if (options.content === undefined) break;
      allow(method, ['GET', 'POST']);
      if (method === 'POST') return options.content.postContent(request, response, url, doc, await options.authorize(request, doc, 'write'));
      await options.authorize(request, doc, 'read');
      return options.content.getContent(request, response, url, doc);
    }
    case 'state': {
      allow(method, ['GET']);
      await options.authorize(request, doc, 'read');
      const at = (await seqParam(store, doc, url, 'at', historyTools)) ?? undefined;
      const exists = (await store.info(doc)) !== null;
      if (!exists && at !== undefined && at > 0) throw new ApiError(404, 'UNKNOWN_SEQ', `no document named ${doc} (never written), so no seq ${at}`);
      const state = await store.stateAt(doc, at);
      if ((request.headers.accept ?? '').includes('application/json')) {
        return sendJson(response, 200, { doc, seq: state.seq, update: Buffer.from(state.update).toString('base64'), exists },
          { 'x-palimpsest-exists': String(exists) });
      }
      response.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': state.update.length,
        'x-palimpsest-seq': String(state.seq),
        'x-palimpsest-exists': String(exists),
      });
      response.end(state.update);
      return;
    }
    case 'restore': {
      allow(method, ['POST']);
      const caller = await options.authorize(request, doc, 'write');
      const user = caller?.id ?? null;
      // Exactly one of "seq" and "at"; any other field but "displayName" is refused.
      const { seq, fields: body } = await seqBody(store, doc, await readJson(request), ['displayName'], historyTools);
      // The name the restore shows under in the history: the token's, else the one the restoring editor announces.
      const displayName = callerName(caller, body);
      const info = await store.info(doc);
      if (info === null) {
        if (seq > 0) throw new ApiError(404, 'UNKNOWN_SEQ', `no document named ${doc} (never written), so no seq ${seq}`);
        return sendJson(response, 200, { doc, restoredTo: 0, seq: 0, changed: false, exists: false });
      }
      if (seq > info.seq) throw new ApiError(404, 'UNKNOWN_SEQ', `${doc} has no seq ${seq} (its last seq is ${info.seq})`);
      // Null when the document's content is already that of seq: nothing is logged or named.
      const update = await computeRestoreUpdate(store, doc, seq);
      if (update === null) return sendJson(response, 200, { doc, restoredTo: seq, seq: info.seq, changed: false });
      const result = await store.append(doc, update, { instanceId: options.instanceId, user, displayName });
      if (result.seq === null) {
        // Everything in it was logged meanwhile (another restore to the same seq got there first).
        return sendJson(response, 200, { doc, restoredTo: seq, seq: (await store.info(doc))?.seq ?? info.seq, changed: false });
      }
      await store.nameVersion(doc, { seq: result.seq, name: `Restored from seq ${seq}`, user, displayName, createdAt: new Date(), restoredFrom: seq });
      options.webhooks?.noteRestore(doc, result.seq);
      // Bring the live document (here, and through Redis on other instances) up to date.
      const connection = await options.hocuspocus.openDirectConnection(doc, {});
      await connection.transact((document) => Y.applyUpdate(document, update));
      await connection.disconnect();
      options.logger.info({ doc, restoredTo: seq, seq: result.seq, user }, 'document restored');
      return sendJson(response, 200, { doc, restoredTo: seq, seq: result.seq, changed: true });
    }
    case 'compact': {
      allow(method, ['POST']);
      await options.authorize(request, doc, 'write');
      const info = await store.info(doc);
      if (info === null) return sendJson(response, 200, { doc, seq: 0, compacted: false, exists: false });
      const started = performance.now();
      let result;
      try {
        result = await store.compact(doc);
      } catch (error) {
        options.metrics.compactions.inc({ outcome: 'failed' });
        throw error;
      }
      if (result === null) return sendJson(response, 200, { doc, seq: info.seq, compacted: false });
      options.metrics.compactions.inc({ outcome: 'written' });
      options.logger.info({ doc, seq: result.seq, size: result.size, pruned: result.pruned, durationMs: Math.round(performance.now() - started), via: 'api' },
        'snapshot written');
      return sendJson(response, 200, result);
    }
    default:
      break;
  }
  throw new ApiError(404, 'NOT_FOUND', `no API route ${url.pathname}`);
}

/** GET /api/webhooks/dead-letters, POST /api/webhooks/dead-letters/{id}/redeliver: for tokens with a "*" rule. */
async function webhookRoute(request: IncomingMessage, response: ServerResponse, url: URL, rest: string[], webhooks: WebhookRoutes,
  options: ApiOptions): Promise<void> {
  const method = request.method ?? 'GET';
  if (rest.length === 0) {
    allow(method, ['GET']);
    await options.authorize(request, null, 'read');
    return sendJson(response, 200, { deadLetters: await webhooks.deadLetters() });
  }
  if (rest.length === 2 && rest[1] === 'redeliver') {
    allow(method, ['POST']);
    await options.authorize(request, null, 'write');
    const id = decodeURIComponent(rest[0]);
    const result = await webhooks.redeliver(id);
    if (!result.found) throw new ApiError(404, 'UNKNOWN_DEAD_LETTER', `no dead letter ${id}; GET /api/webhooks/dead-letters lists them`);
    if (!result.delivered) {
      throw new ApiError(502, 'WEBHOOK_DELIVERY_FAILED', `the endpoint did not confirm ${id} (${result.error}); it stays a dead letter`);
    }
    return sendJson(response, 200, { id, delivered: true });
  }
  throw new ApiError(404, 'NOT_FOUND', `no API route ${url.pathname}`);
}

/**
 * The display name a restore or a version name is recorded under: the
 * token's `name` claim when the request has a token that carries one (a name
 * in the body cannot override it), else the `displayName` the editor sends
 * (as a WebSocket connection's entries take its token's name, else the name
 * its awareness announces).
 */
export function callerName(caller: ApiCaller | null, body: { displayName?: unknown }): string | null {
  if (caller !== null && caller.name !== null) return caller.name;
  const announced = typeof body.displayName === 'string' ? body.displayName.trim() : '';
  return announced === '' ? null : announced.slice(0, MAX_DISPLAY_NAME);
}

const MAX_DISPLAY_NAME = 100;

function decodeDocumentName(segment: string): string {
  let doc: string;
  try {
    doc = decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, 'INVALID_DOCUMENT_NAME', 'the document name is not valid percent-encoding');
  }
  const problem = documentNameProblem(doc);
  if (problem !== null) throw new ApiError(400, 'INVALID_DOCUMENT_NAME', problem);
  return doc;
}

/** HEAD is answered wherever GET is (Node's http server leaves the body out). */
function allow(method: string, allowed: Array<'GET' | 'POST'>): void {
  const methods = allowed.includes('GET') ? [...allowed, 'HEAD'] : allowed;
  if (!methods.includes(method)) {
    throw new ApiError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${allowed.join(' or ')}`, { allow: methods.join(', ') });
  }
}

function optionalInteger(url: URL, name: string): number | null {
  const value = url.searchParams.get(name);
  if (value === null) return null;
  if (!/^\d+$/.test(value)) throw new ApiError(400, 'BAD_REQUEST', `query parameter ${name} must be a whole number`);
  return Number(value);
}

/**
 * A JSON body, which must be sent as application/json (415 otherwise): a
 * browser sends that type across origins only after a CORS preflight, which
 * cors.ts refuses unless the origin is listed, so no page on another site can
 * make a body this server acts on.
 */
async function readJson(request: IncomingMessage): Promise<unknown> {
  const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the body as JSON with Content-Type: application/json (got "${type || 'none'}")`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'BODY_TOO_LARGE', `request bodies are limited to ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new ApiError(400, 'BAD_REQUEST', 'the body is not valid JSON');
  }
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof StoreError) {
    switch (error.code) {
      case 'UNKNOWN_SEQ': return new ApiError(404, error.code, error.message);
      case 'HISTORY_PRUNED': return new ApiError(410, error.code, error.message);
      default: return new ApiError(503, error.code, error.message);
    }
  }
  return new ApiError(500, 'INTERNAL', 'internal error; see the server log');
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
