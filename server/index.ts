// createCollabServer wires one Palimpsest server: our own http server carries
// WebSockets (Hocuspocus and y-websocket framing), /healthz, /readyz,
// /metrics, the REST API and the demo editor on one port. Hocuspocus hosts
// the documents; the durable-log extension appends every client update to the
// event store before it is acknowledged.
//
// It takes its dependencies (store, config, logger) and does no I/O until
// listen(); bin/palimpsest.js → cli.ts is the process wiring.

import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Hocuspocus, type Extension } from '@hocuspocus/server';
import type { Logger } from 'pino';
import type * as Y from 'yjs';
import type { EventStore } from '../persistence/index.js';
import { ApiError, handleApi, sendError, sendJson, type ApiOptions } from './api.js';
import { createChangeFeed } from './change-feed.js';
import { createContentApi, type ConversionLimits } from './content-api.js';
import { applyCors } from './cors.js';
import { CloseCodes } from './close-codes.js';
import type { ServeConfig } from './config.js';
import { createDurableLog } from './durable-log.js';
import { DocumentSizeGuard } from './limits.js';
import { createMetrics, type Metrics } from './metrics.js';
import { observeAppends } from './observed-store.js';
import { createWebhooks } from './webhooks.js';
import { serveStatic, type StaticMount } from './static-files.js';
import { attachWebSocketTransport, type Transport, type TransportOptions } from './websocket-transport.js';

export interface ReadinessCheck {
  name: string;
  /** null when ready, otherwise what is wrong. */
  problem(): string | null;
}

export interface CollabServerOptions {
  config: ServeConfig;
  store: EventStore;
  logger: Logger;
  /** More Hocuspocus extensions (authentication, Redis fan-out), run after the durable log. */
  extensions?: Extension[];
  readinessChecks?: ReadinessCheck[];
  /** Upgrade admission and per-frame checks (limits, origins). */
  admit?: TransportOptions['admit'];
  context?: TransportOptions['context'];
  onFrame?: TransportOptions['onFrame'];
  /**
   * The --max-document-bytes guard; pass the security layer's so WebSocket and
   * REST writes share one estimate per document. Default: a guard of its own.
   */
  documentSize?: DocumentSizeGuard;
  /** Authorization of REST calls; default: everyone may do everything (loopback-only servers). */
  authorizeApi?: ApiOptions['authorize'];
  /** Throws an ApiError when the caller may not read /metrics; default: open. */
  authorizeMetrics?: (request: IncomingMessage) => Promise<void>;
  metrics?: Metrics;
  /**
   * A server bound by bindHttpServer, taken over instead of creating one
   * (its start-up answers stop); listen() then only reports its address.
   */
  httpServer?: HttpServer;
  /** Limits of the content converter (content-api.ts); default 10 s per conversion, 16 waiting. */
  contentConversion?: ConversionLimits;
  /** How often change feed readers look for other processes' commits (ms); see change-feed.ts. */
  feedPollMs?: number;
}

export interface CollabServer {
  readonly httpServer: HttpServer;
  readonly hocuspocus: Hocuspocus;
  readonly metrics: Metrics;
  readonly transport: Transport;
  /** Resolves once the client updates applied to `document` so far are committed; rejects if one failed. */
  durable(document: Y.Doc): Promise<void>;
  /** The store as the server uses it: each of its appends that logged an entry is counted and wakes change feed readers (and, later, webhooks). */
  readonly store: EventStore;
  listen(): Promise<{ host: string; port: number }>;
  /**
   * Stops taking connections and closes every socket (1001). Does not close
   * the store: closing it afterwards commits appends still pending (their
   * clients get no ack and resend, which the log then skips).
   */
  close(): Promise<void>;
}

export function createCollabServer(options: CollabServerOptions): CollabServer {
  const { config, logger } = options;
  const metrics = options.metrics ?? createMetrics(config.instanceId);
  const changeFeed = createChangeFeed(options.store, { logger, pollMs: options.feedPollMs });
  // Everything appends through this store (WebSocket clients, REST writes, restores, the server's own changes, repairs):
  // each append is counted once, and a logged entry wakes the change feed as it commits.
  const store = observeAppends(options.store, {
    logged(doc, result) {
      metrics.appendsLogged.inc();
      metrics.bytesLogged.inc(result.size);
      changeFeed.committed(doc);
    },
    skipped: () => metrics.appendsSkipped.inc(),
    failed: () => metrics.appendFailures.inc(),
  });
  const webhooks = config.webhooks.urls.length === 0 ? null
    : createWebhooks({ store, config: config.webhooks, instanceId: config.instanceId, logger, registry: metrics.registry });

  // Catch-up is for several instances: those sharing Redis, and those on a
  // store that tells of other instances' commits (PostgreSQL), where the poll
  // is only the backstop for a lost notification.
  const storePushes = store.watchChanges !== undefined;
  const durableLog = createDurableLog({
    store, instanceId: config.instanceId, logger, metrics,
    catchUpIntervalMs: storePushes ? 10_000 : config.redis === null ? 0 : 2000,
  });
  const extensions: Extension[] = [durableLog, ...(options.extensions ?? [])];
  // Awareness frames may skip Hocuspocus' message handling when no hook would see them there
  // (the instance below has no hooks of its own; it appends its no-op defaults to the list it gets).
  const directAwareness = !extensions.some((extension) => extension.beforeHandleAwareness !== undefined ||
    extension.beforeHandleMessage !== undefined || extension.afterHandleMessage !== undefined);
  const hocuspocus = new Hocuspocus({
    name: config.instanceId,
    quiet: true,
    timeout: config.limits.timeoutMs,
    unloadImmediately: true,
    extensions: [...extensions],
  });

  const readinessChecks: ReadinessCheck[] = [
    { name: 'database', problem: () => (store.healthy() ? null : (store.healthProblem?.() ?? 'the last write to the database failed')) },
    ...(options.readinessChecks ?? []),
  ];
  const staticMounts: StaticMount[] = config.staticDir === null ? [] : [
    { prefix: '/lib/', dir: `${config.staticDir}-lib`, crossOrigin: true },
    { prefix: '/', dir: config.staticDir, index: 'index.html' },
  ];
  const content = createContentApi({
    store, hocuspocus, instanceId: config.instanceId, logger, metrics,
    maxBodyBytes: config.limits.maxMessageBytes,
    documentSize: options.documentSize ?? new DocumentSizeGuard(config.limits.maxDocumentBytes),
    conversion: options.contentConversion,
  });
  const apiOptions: ApiOptions = {
    store, hocuspocus, instanceId: config.instanceId, logger, metrics,
    authorize: options.authorizeApi ?? (async () => null),
    changes: changeFeed,
    webhooks: webhooks ?? undefined,
    content,
  };

  const httpServer = options.httpServer ?? createServer();
  // A server bound early answers requests and upgrades with 503 STARTING until now.
  httpServer.removeAllListeners('request');
  httpServer.removeAllListeners('upgrade');
  httpServer.on('request', (request: IncomingMessage, response: ServerResponse) => {
    handleHttp(request, response).catch((error: Error) => {
      logger.error({ err: error.message, url: request.url }, 'http request failed');
      if (!response.headersSent) sendJson(response, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      else response.destroy();
    });
  });

  async function handleHttp(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz') return sendJson(response, 200, { status: 'ok', instanceId: config.instanceId });
    if (url.pathname === '/readyz') {
      const problems = readinessChecks
        .map((check) => ({ check: check.name, problem: check.problem() }))
        .filter((result) => result.problem !== null);
      return sendJson(response, problems.length === 0 ? 200 : 503,
        { status: problems.length === 0 ? 'ready' : 'not-ready', instanceId: config.instanceId, problems });
    }
    if (url.pathname === '/metrics') {
      try {
        await options.authorizeMetrics?.(request);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        return sendError(response, error);
      }
      metrics.documentsLoaded.set(hocuspocus.getDocumentsCount());
      const body = await metrics.registry.metrics();
      response.writeHead(200, { 'content-type': metrics.registry.contentType });
      response.end(body);
      return;
    }
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) {
      if (applyCors(request, response, config.auth.corsOrigins)) return;
      return handleApi(request, response, url, apiOptions);
    }
    if (await serveStatic(request, response, url.pathname, staticMounts)) return;
    sendJson(response, 404, { error: { code: 'NOT_FOUND', message: `nothing at ${url.pathname}` } });
  }

  const transport = attachWebSocketTransport({
    httpServer, hocuspocus, logger, metrics,
    maxMessageBytes: config.limits.maxMessageBytes,
    keepAliveMs: config.limits.keepAliveMs,
    admit: options.admit,
    context: options.context,
    onFrame: options.onFrame,
    directAwareness,
  });

  return {
    httpServer, hocuspocus, metrics, transport, store,
    durable: (document) => durableLog.durable(document),
    listen() {
      return new Promise((resolve, reject) => {
        const listening = () => {
          httpServer.off('error', reject);
          const address = httpServer.address() as AddressInfo;
          if (webhooks !== null) {
            changeFeed.onWake((docs) => webhooks.wake(docs));
            webhooks.start();
          }
          resolve({ host: address.address, port: address.port });
        };
        if (httpServer.listening) return listening();
        httpServer.once('error', reject);
        httpServer.listen(config.port, config.host, listening);
      });
    },
    async close() {
      const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      changeFeed.close();
      await content.close();
      await webhooks?.close();
      await transport.close(CloseCodes.ServerShutdown);
      // The durable log stops its catch-up timer (the Redis fan-out is closed by its owner).
      await durableLog.onDestroy?.({ instance: hocuspocus });
      httpServer.closeAllConnections();
      await stopped;
    },
  };
}

/**
 * Binds `port` on `host` before anything else of a start is opened (`serve`
 * calls it before the store): a busy port, or an address that is not this
 * host's, then ends the start before the database file or its folder exists.
 * Until createCollabServer takes the server over (its `httpServer` option),
 * `/healthz` answers 200 `{"status": "starting"}`, `/readyz` 503 not-ready,
 * every other request 503 `STARTING` and every WebSocket upgrade 503, each
 * with `Retry-After: 1`. Rejects with listen()'s error (EADDRINUSE, …).
 */
export function bindHttpServer(port: number, host: string, instanceId: string): Promise<HttpServer> {
  const httpServer = createServer((request, response) => {
    // Not new URL(): a request target such as `//` makes it throw, and this handler is not async.
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') return sendJson(response, 200, { status: 'starting', instanceId });
    response.setHeader('retry-after', '1');
    if (path === '/readyz') {
      return sendJson(response, 503, { status: 'not-ready', instanceId, problems: [{ check: 'start-up', problem: 'the server is starting' }] });
    }
    sendJson(response, 503, { error: { code: 'STARTING', message: 'the server is starting; retry in a moment' } });
  });
  httpServer.on('upgrade', (_request: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => undefined); // the client may already be gone
    // Closed for good once written (or soon, for a client that does not read): an upgraded
    // socket half-open on the client's side would keep close() from ever returning.
    socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', () => socket.destroy());
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  return new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, () => {
      httpServer.off('error', reject);
      resolve(httpServer);
    });
  });
}

export { createMetrics, type Metrics } from './metrics.js';
export { CloseCodes } from './close-codes.js';
