// Authentication, permissions and resource limits of one server, as the hooks
// createCollabServer takes:
//   - admit/context: per upgrade — browser origin, connections per client
//     address, the authentication deadline (4403, 1013, 4508);
//   - onFrame: per frame — messages per second: over it the socket is paced
//     (not read for a while), never closed;
//   - extension: per document — the token and its permission (4401, 4403,
//     read-only), documents per connection (1013), read-only writes and
//     document size (4413), checked before the durable log appends anything;
//   - authorizeApi/authorizeMetrics: the same tokens on HTTP.
// Every refusal is logged with its reason and counted in
// palimpsest_refusals_total{reason}. SECURITY.md explains each limit.

import type { IncomingMessage } from 'node:http';
import type { beforeSyncPayload, Connection, Extension, onAuthenticatePayload, onTokenSyncPayload } from '@hocuspocus/server';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import * as Y from 'yjs';
import { ApiError } from './api.js';
import { AuthError, bearerToken, createTokenVerifier, loadJwksFile, type Grant, type TokenVerifier } from './auth.js';
import { clientAddressOf, parseTrustedProxies } from './client-address.js';
import { CloseCodes, ConnectionRefusal, type CloseCode } from './close-codes.js';
import { isLoopback, type ServeConfig } from './config.js';
import type { ConnectionContext, ConnectionUser, SocketSession } from './context.js';
import { SyncStep } from './frames.js';
import { AddressLimiter, DocumentSizeGuard, TokenBucket } from './limits.js';
import type { Metrics } from './metrics.js';
import { accessTo, atLeast, grantsEverything } from './permissions.js';

export interface SecurityOptions {
  config: ServeConfig;
  logger: Logger;
  metrics: Metrics;
}

export interface Security {
  /** Null when no --jwt-secret or --jwks-file is configured: everyone may write, users are null. */
  readonly verifier: TokenVerifier | null;
  extension: Extension;
  admit(request: IncomingMessage, ws: WebSocket): CloseCode | null;
  context(request: IncomingMessage, ws: WebSocket): ConnectionContext;
  /** How long (ms) the socket must not be read after this frame (0: go on). */
  onFrame(ws: WebSocket): number;
  authorizeApi(request: IncomingMessage, doc: string | null, access: 'read' | 'write'): Promise<ConnectionUser | null>;
  /** The document size limit (--max-document-bytes) as the WebSocket path applies it; the REST writes ask it too. */
  readonly documentSize: DocumentSizeGuard;
  /** Throws an ApiError when `request` may not read /metrics. */
  authorizeMetrics(request: IncomingMessage): Promise<void>;
}

/** Sent as a stateless message to a read-only Hocuspocus client whose update was refused. */
export const WRITE_REFUSED_NOTICE = JSON.stringify({ type: 'palimpsest:write-refused', reason: 'read-only' });

/** Runs before the durable log (priority 100), so nothing it refuses is ever appended. */
const EXTENSION_PRIORITY = 200;

/** How long before a token expires the server asks the client for a fresh one. */
const TOKEN_REFRESH_LEAD_MS = 30_000;

/**
 * One socket's state, shared by every document on it. A class rather than an
 * object of closures, and the socket's timers and listeners are functions
 * shared by all sockets: an idle connection holds only its fields.
 */
class SocketState implements SocketSession {
  openDocuments = 0;
  authenticated = false;
  /** Until a document on the socket authenticates; cleared and dropped then. */
  deadline: NodeJS.Timeout | null = null;

  constructor(readonly ws: WebSocket, readonly clientAddress: string, readonly bucket: TokenBucket | null) {}

  close(code: number, reason: string): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
  }

  onAuthenticated(): void {
    this.authenticated = true;
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
  }
}

/** Reads the JWKS file (if any) and builds the security layer; a bad key file is a ConfigError. */
export async function createSecurity(options: SecurityOptions): Promise<Security> {
  const { auth } = options.config;
  const jwks = auth.jwksFile === null ? null : await loadJwksFile(auth.jwksFile);
  return buildSecurity(options, createTokenVerifier({ jwtSecret: auth.jwtSecret, jwks }));
}

function buildSecurity(options: SecurityOptions, verifier: TokenVerifier | null): Security {
  const { config, logger, metrics } = options;
  const limits = config.limits;
  const trustedProxies = parseTrustedProxies(config.auth.trustedProxies);
  const allowedOrigins = new Set(config.auth.allowedOrigins);
  const addressLimiter = new AddressLimiter(limits.maxConnectionsPerAddress);
  const sizeGuard = new DocumentSizeGuard(limits.maxDocumentBytes);
  const sockets = new WeakMap<WebSocket, SocketState>();
  /** Per open document connection: the timer that ends it when its token expires. */
  const expiryTimers = new WeakMap<object, NodeJS.Timeout>();

  /**
   * Ends a document connection when its token expires, unless a fresh token
   * arrives first: shortly before `exp` the server asks the client for one
   * (a provider whose `token` is a function fetches it); at `exp` the document
   * is closed with 4401 (and the socket, when it was the only one open).
   */
  function watchExpiry(connection: Connection, context: unknown, expiresAt: number | null, documentName: string): void {
    const previous = expiryTimers.get(connection);
    if (previous !== undefined) clearTimeout(previous);
    expiryTimers.delete(connection);
    if (expiresAt === null) return;
    const askAt = Math.max(0, expiresAt - Date.now() - TOKEN_REFRESH_LEAD_MS);
    const open = () => connection.document.hasConnection(connection);
    const ask = setTimeout(() => {
      if (!open()) return;
      connection.requestToken();
      const end = setTimeout(() => {
        if (!open()) return;
        countRefusal(CloseCodes.Unauthorized.reason, 'the token expired', { doc: documentName });
        const session = sessionOf(context);
        if (session !== undefined && session.openDocuments <= 1) session.close(CloseCodes.Unauthorized.code, 'token-expired');
        else connection.close({ code: CloseCodes.Unauthorized.code, reason: 'token-expired' });
      }, Math.max(0, expiresAt - Date.now()));
      end.unref();
      expiryTimers.set(connection, end);
    }, askAt);
    ask.unref();
    expiryTimers.set(connection, ask);
  }

  function countRefusal(reason: string, detail: string, fields: Record<string, unknown>): void {
    metrics.refusals.inc({ reason });
    logger.warn({ reason, detail, ...fields }, 'refused');
  }

  function sessionOf(context: unknown): SocketSession | undefined {
    return (context as ConnectionContext | undefined)?.session;
  }

  /**
   * Refuses a document during authentication. Hocuspocus answers the thrown
   * refusal with a PermissionDenied auth message carrying its reason (the
   * provider emits `authenticationFailed`); the socket itself is closed with
   * the code once that message has gone out — unless `othersOpen` documents
   * stay open on it, which a refused one must not take down. Too many
   * documents always closes the socket.
   */
  function refuseDocument(
    context: unknown, othersOpen: number, close: CloseCode, detail: string, fields: Record<string, unknown>,
  ): never {
    const session = sessionOf(context);
    countRefusal(close.reason, detail, { ...fields, address: (context as ConnectionContext | undefined)?.clientAddress });
    if (session !== undefined && (othersOpen <= 0 || close.code === CloseCodes.Overloaded.code)) {
      // The PermissionDenied frame is written when the hook chain's rejection settles
      // (microtasks only); setImmediate runs after it, so the client reads it before the close.
      setImmediate(() => session.close(close.code, close.reason));
    }
    throw new ConnectionRefusal(close, detail);
  }

  async function verify(token: string, context: unknown, othersOpen: number, documentName: string): Promise<Grant> {
    try {
      return await verifier!.verify(token);
    } catch (error) {
      if (error instanceof AuthError) {
        refuseDocument(context, othersOpen, CloseCodes.Unauthorized, error.message, { doc: documentName, code: error.code });
      }
      throw error;
    }
  }

  const extension: Extension = {
    extensionName: 'palimpsest-security',
    priority: EXTENSION_PRIORITY,

    async onAuthenticate({ token, documentName, context, connectionConfig }: onAuthenticatePayload) {
      const session = sessionOf(context);
      const othersOpen = session?.openDocuments ?? 0;
      if (limits.maxDocumentsPerConnection > 0 && othersOpen >= limits.maxDocumentsPerConnection) {
        refuseDocument(context, othersOpen, CloseCodes.Overloaded,
          `more than ${limits.maxDocumentsPerConnection} documents on one connection (--max-documents-per-connection)`, { doc: documentName });
      }
      let additions: Partial<ConnectionContext> = {};
      if (verifier !== null) {
        const grant = await verify(token, context, othersOpen, documentName);
        const access = accessTo(grant.rules, documentName);
        if (access === 'none') {
          refuseDocument(context, othersOpen, CloseCodes.Forbidden, 'the token grants no access to this document',
            { doc: documentName, user: grant.user.id });
        }
        connectionConfig.readOnly = access === 'read';
        additions = { user: grant.user, tokenExpiresAt: grant.expiresAt };
      }
      if (session !== undefined) {
        session.openDocuments += 1;
        if (session instanceof SocketState) session.onAuthenticated();
        else session.authenticated = true;
      }
      return additions;
    },

    async onTokenSync({ token, documentName, context, connection, connectionConfig }: onTokenSyncPayload) {
      if (verifier === null) return {};
      const current = (context as ConnectionContext).user;
      // Hocuspocus closes the document with the refusal's code when this throws; the
      // socket goes too when this document was the only one open on it.
      const othersOpen = (sessionOf(context)?.openDocuments ?? 1) - 1;
      const grant = await verify(token, context, othersOpen, documentName);
      if (current !== null && grant.user.id !== current.id) {
        refuseDocument(context, othersOpen, CloseCodes.Unauthorized,
          `a fresh token must be for the same user (was ${current.id}, now ${grant.user.id})`, { doc: documentName });
      }
      const access = accessTo(grant.rules, documentName);
      if (access === 'none') {
        refuseDocument(context, othersOpen, CloseCodes.Forbidden, 'the fresh token grants no access to this document',
          { doc: documentName, user: grant.user.id });
      }
      connection.readOnly = access === 'read';
      connectionConfig.readOnly = connection.readOnly;
      watchExpiry(connection, context, grant.expiresAt, documentName);
      logger.debug({ doc: documentName, user: grant.user.id, access }, 'token refreshed');
      return { user: grant.user, tokenExpiresAt: grant.expiresAt };
    },

    async connected({ connection, context, documentName }) {
      const expiresAt = (context as ConnectionContext | undefined)?.tokenExpiresAt;
      if (expiresAt !== undefined && expiresAt !== null) watchExpiry(connection, context, expiresAt, documentName);
    },

    async onDisconnect({ context }) {
      const session = sessionOf(context);
      if (session !== undefined && session.openDocuments > 0) session.openDocuments -= 1;
    },

    async afterLoadDocument({ document }) {
      sizeGuard.track(document);
    },

    async beforeSync({ type, payload, connection, documentName, document, context }: beforeSyncPayload) {
      if (type !== SyncStep.Step2 && type !== SyncStep.Update) return;
      const fields = { doc: documentName, socketId: connection.socketId, address: (context as ConnectionContext | undefined)?.clientAddress };
      if (connection.readOnly) {
        // Hocuspocus answers with SyncStatus 0 after this hook and applies nothing; a step 2
        // that brings nothing new is acknowledged normally and is no refusal.
        if (type === SyncStep.Step2 && containsSafely(document, payload)) return;
        metrics.refusals.inc({ reason: 'read-only' });
        logger.info({ reason: 'read-only', ...fields }, 'refused');
        connection.sendStateless(WRITE_REFUSED_NOTICE);
        return;
      }
      const size = sizeGuard.exceeds(document, payload);
      if (size !== null) {
        const detail = `the document would grow to ${size} bytes; the limit is ${limits.maxDocumentBytes} (--max-document-bytes)`;
        countRefusal(CloseCodes.DocumentTooLarge.reason, detail, fields);
        connection.webSocket.close(CloseCodes.DocumentTooLarge.code, CloseCodes.DocumentTooLarge.reason);
        throw new ConnectionRefusal(CloseCodes.DocumentTooLarge, detail);
      }
    },
  };

  function authenticationDeadlinePassed(state: SocketState) {
    state.deadline = null;
    if (state.authenticated || state.ws.readyState !== state.ws.OPEN) return;
    countRefusal(CloseCodes.ConnectionTimeout.reason, `no document authenticated within ${limits.authTimeoutMs} ms (--auth-timeout-ms)`,
      { address: state.clientAddress });
    state.ws.close(CloseCodes.ConnectionTimeout.code, CloseCodes.ConnectionTimeout.reason);
  }

  function socketOnClose(this: WebSocket) {
    const state = sockets.get(this);
    if (state === undefined) return;
    sockets.delete(this);
    if (state.deadline !== null) clearTimeout(state.deadline);
    state.deadline = null;
    addressLimiter.release(state.clientAddress);
  }

  return {
    verifier,
    extension,
    documentSize: sizeGuard,

    admit(request, ws) {
      const origin = request.headers.origin;
      const clientAddress = clientAddressOf(request, trustedProxies);
      if (origin !== undefined && allowedOrigins.size > 0 && !allowedOrigins.has(origin)) {
        countRefusal(CloseCodes.Forbidden.reason, `origin ${origin} is not in --allowed-origins`, { address: clientAddress, origin });
        return CloseCodes.Forbidden;
      }
      if (!addressLimiter.acquire(clientAddress)) {
        // Its own reason in palimpsest_refusals_total, so a NAT address at the limit shows up as such.
        countRefusal('too-many-connections-per-address',
          `more than ${limits.maxConnectionsPerAddress} connections from one address (--max-connections-per-address)`, { address: clientAddress });
        return CloseCodes.Overloaded;
      }
      const state = new SocketState(ws, clientAddress,
        limits.maxMessagesPerSecond > 0 ? new TokenBucket(limits.maxMessagesPerSecond, limits.messageBurst) : null);
      sockets.set(ws, state);
      // Hocuspocus' own pre-authentication deadline is its idle timeout and is
      // checked only every `timeout` ms; this one is shorter and exact.
      state.deadline = setTimeout(authenticationDeadlinePassed, limits.authTimeoutMs, state);
      state.deadline.unref();
      ws.on('close', socketOnClose);
      return null;
    },

    context(request, ws) {
      const state = sockets.get(ws);
      return { user: null, clientAddress: state?.clientAddress ?? clientAddressOf(request, trustedProxies), session: state };
    },

    onFrame(ws) {
      // Over the rate the transport stops reading this socket until the budget refills.
      return sockets.get(ws)?.bucket?.take() ?? 0;
    },

    async authorizeApi(request, doc, access) {
      if (verifier === null) return null;
      const grant = await verifyHttp(request);
      const allowed = doc === null ? grantsEverything(grant.rules, access) : atLeast(accessTo(grant.rules, doc), access);
      if (!allowed) {
        const what = doc === null ? 'every document (a "*" rule)' : `document ${doc}`;
        countRefusal(CloseCodes.Forbidden.reason, `the token does not grant ${access} on ${what}`,
          { path: request.url, user: grant.user.id, address: clientAddressOf(request, trustedProxies) });
        throw new ApiError(403, 'FORBIDDEN', `the token does not grant ${access} access to ${what}`);
      }
      return grant.user;
    },

    async authorizeMetrics(request) {
      // Loopback means the real client (after trusted proxies): a proxy on this host does not open /metrics to everyone.
      if (verifier === null || isLoopback(clientAddressOf(request, trustedProxies).replace(/^::ffff:/, ''))) return;
      const grant = await verifyHttp(request);
      if (!grantsEverything(grant.rules, 'read')) {
        countRefusal(CloseCodes.Forbidden.reason, 'metrics from beyond loopback need read access to every document',
          { path: request.url, user: grant.user.id, address: clientAddressOf(request, trustedProxies) });
        throw new ApiError(403, 'FORBIDDEN', '/metrics from beyond loopback needs a token with read access to every document');
      }
    },
  };

  async function verifyHttp(request: IncomingMessage): Promise<Grant> {
    try {
      return await verifier!.verify(bearerToken(request.headers.authorization));
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      countRefusal(CloseCodes.Unauthorized.reason, error.message,
        { path: request.url, code: error.code, address: clientAddressOf(request, trustedProxies) });
      throw new ApiError(401, error.code, `${error.message}; send Authorization: Bearer <token>`);
    }
  }
}

function containsSafely(document: Y.Doc, update: Uint8Array): boolean {
  try {
    return Y.snapshotContainsUpdate(Y.snapshot(document), update);
  } catch {
    // Not decodable: Hocuspocus' own check throws on it too and closes the document; not ours to count.
    return true;
  }
}
