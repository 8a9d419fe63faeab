// WebSocket transport: takes upgrades from our own http server and hands each
// socket to Hocuspocus. Two protocols share the port:
//   - any path but /yjs/…: Hocuspocus framing (@hocuspocus/provider);
//   - /yjs/<document>: stock y-websocket framing, bridged by y-websocket-bridge.ts.
// Every frame is copied out of ws' shared buffer pool and checked by frames.ts
// before Hocuspocus sees it; a refused frame closes only its own socket.

import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Hocuspocus, WebSocketLike } from '@hocuspocus/server';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CloseCodes, ConnectionRefusal, type CloseCode } from './close-codes.js';
import type { ConnectionContext } from './context.js';
import { documentNameProblem } from './document-name.js';
import { inspectFrame, isBarePong } from './frames.js';
import type { Metrics } from './metrics.js';
import { YWebsocketBridge } from './y-websocket-bridge.js';

export interface TransportOptions {
  httpServer: HttpServer;
  hocuspocus: Hocuspocus;
  logger: Logger;
  metrics: Metrics;
  maxMessageBytes: number;
  /** Interval of WebSocket pings; a peer that misses one is dropped. */
  keepAliveMs: number;
  /**
   * Decides whether an upgrade may proceed (origin, connection limits, …).
   * Returns the refusal to send, or null to accept; may watch `ws` for its close.
   */
  admit?: (request: IncomingMessage, ws: WebSocket) => CloseCode | null;
  /** Builds the context of an admitted socket; default: no user, the peer address. */
  context?: (request: IncomingMessage, ws: WebSocket) => ConnectionContext;
  /** Called for every frame before it is handled; throws a ConnectionRefusal to close the socket. */
  onFrame?: (socket: WebSocket, request: IncomingMessage) => void;
}

export interface Transport {
  /** Closes every socket with `close` and stops taking upgrades. */
  close(close: CloseCode): Promise<void>;
  readonly sockets: Set<WebSocket>;
}

const Y_WEBSOCKET_PREFIX = '/yjs/';
/** Keep-alive ticks per interval (see attachWebSocketTransport). */
const KEEP_ALIVE_SLICES = 16;

export function attachWebSocketTransport(options: TransportOptions): Transport {
  const { httpServer, hocuspocus, logger, metrics } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, perMessageDeflate: false });
  const sockets = new Set<WebSocket>();
  let closing = false;

  // One keep-alive timer for every socket rather than a timer each (a timer,
  // its closure and its context per socket are memory an idle connection
  // need not hold). Sockets are dealt round-robin into slices and each tick
  // visits one slice, so every socket is visited once per interval and the
  // pings of thousands of sockets do not all go out in one event-loop turn.
  // A visit terminates a socket that has not answered the previous visit's
  // ping and pings the others: a dead peer goes after one to two intervals.
  const keepAliveSlices = Array.from({ length: KEEP_ALIVE_SLICES }, () => new Set<WebSocket>());
  const awaitingPong = new Set<WebSocket>();
  let joiningSlice = 0;
  let visitedSlice = 0;
  const keepAlive = setInterval(() => {
    for (const ws of keepAliveSlices[visitedSlice]) {
      if (awaitingPong.has(ws)) {
        ws.terminate();
        continue;
      }
      awaitingPong.add(ws);
      ws.ping();
    }
    visitedSlice = (visitedSlice + 1) % KEEP_ALIVE_SLICES;
  }, options.keepAliveMs / KEEP_ALIVE_SLICES);
  keepAlive.unref();

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (closing) {
      socket.destroy();
      return;
    }
    socket.on('error', (error) => logger.debug({ err: error.message }, 'socket error during upgrade'));
    wss.handleUpgrade(request, socket, head, (ws) => {
      const refusal = options.admit?.(request, ws) ?? null;
      if (refusal !== null) {
        // admit() has logged and counted its refusal.
        ws.close(refusal.code, refusal.reason);
        return;
      }
      sockets.add(ws);
      const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
      if (pathname.startsWith(Y_WEBSOCKET_PREFIX)) serveYWebsocket(ws, request, pathname.slice(Y_WEBSOCKET_PREFIX.length));
      else serveHocuspocus(ws, request);
    });
  };
  httpServer.on('upgrade', onUpgrade);

  function contextFor(request: IncomingMessage, ws: WebSocket): ConnectionContext {
    return options.context?.(request, ws) ?? { user: null, clientAddress: request.socket.remoteAddress ?? 'unknown' };
  }

  function serveHocuspocus(ws: WebSocket, request: IncomingMessage) {
    metrics.connections.inc({ protocol: 'hocuspocus' });
    const client = hocuspocus.handleConnection(ws as unknown as WebSocketLike, toWebRequest(request), contextFor(request, ws));
    wireSocket(ws, request, 'hocuspocus', (frame) => {
      if (isBarePong(frame)) return;
      inspectFrame(frame);
      client.handleMessage(frame);
    }, (code, reason) => client.handleClose({ code, reason }));
  }

  function serveYWebsocket(ws: WebSocket, request: IncomingMessage, encodedName: string) {
    metrics.connections.inc({ protocol: 'y-websocket' });
    let documentName: string;
    try {
      documentName = decodeURIComponent(encodedName);
    } catch {
      documentName = encodedName;
    }
    const problem = documentNameProblem(documentName);
    if (problem !== null) {
      wireSocket(ws, request, 'y-websocket', () => undefined, () => undefined);
      refuse(ws, new ConnectionRefusal(CloseCodes.InvalidDocumentName, problem));
      return;
    }
    const bridge = new YWebsocketBridge(ws, documentName, () => hocuspocus.documents.get(documentName)?.awareness);
    const client = hocuspocus.handleConnection(bridge, toWebRequest(request), contextFor(request, ws));
    wireSocket(ws, request, 'y-websocket', (frame) => {
      const framed = bridge.frameFromClient(frame);
      inspectFrame(framed);
      if (bridge.repeatsKnownAwareness(frame)) {
        // Still a sign of life for Hocuspocus' idle timeout, as it would have been.
        client.lastMessageReceivedAt = Date.now();
        return;
      }
      client.handleMessage(framed);
    }, (code, reason) => client.handleClose({ code, reason }));
    const token = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token') ?? '';
    client.handleMessage(bridge.authFrame(token));
  }

  function wireSocket(
    ws: WebSocket, request: IncomingMessage, protocol: string,
    onMessage: (frame: Uint8Array) => void, onClose: (code: number, reason: string) => void,
  ) {
    keepAliveSlices[joiningSlice].add(ws);
    joiningSlice = (joiningSlice + 1) % KEEP_ALIVE_SLICES;
    ws.on('pong', socketOnPong);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== ws.OPEN) return;
      try {
        if (!isBinary) throw new ConnectionRefusal(CloseCodes.MalformedFrame, 'text frames are not part of the protocol');
        options.onFrame?.(ws, request);
        onMessage(copyFrame(data));
      } catch (error) {
        if (error instanceof ConnectionRefusal) {
          refuse(ws, error);
          return;
        }
        // Not the client's fault: say so, and keep the stack for us.
        logger.error({ err: (error as Error).message, stack: (error as Error).stack, protocol }, 'internal error while handling a frame');
        refuse(ws, new ConnectionRefusal(CloseCodes.InternalError, (error as Error).message));
      }
    });
    ws.on('error', (error: Error & { code?: string }) => {
      // ws reports oversize frames (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH) here and closes with 1009.
      const reason = error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CloseCodes.MessageTooBig.reason : 'socket-error';
      metrics.refusals.inc({ reason });
      logger.warn({ err: error.message, code: error.code, protocol, address: request.socket.remoteAddress }, 'websocket error');
    });
    ws.on('close', (code: number, reason: Buffer) => {
      for (const slice of keepAliveSlices) slice.delete(ws);
      awaitingPong.delete(ws);
      sockets.delete(ws);
      metrics.connections.dec({ protocol });
      onClose(code, reason.toString());
    });
  }

  /** Shared by every socket (`this` is the socket), so that none holds a closure of its own for it. */
  function socketOnPong(this: WebSocket) {
    awaitingPong.delete(this);
  }

  function refuse(ws: WebSocket, refusal: ConnectionRefusal) {
    metrics.refusals.inc({ reason: refusal.reason });
    logger.warn({ code: refusal.code, reason: refusal.reason, detail: refusal.message }, 'connection refused');
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(refusal.code, refusal.reason);
  }

  return {
    sockets,
    async close(close: CloseCode) {
      closing = true;
      clearInterval(keepAlive);
      httpServer.off('upgrade', onUpgrade);
      const closed = [...sockets].map((ws) => new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(close.code, close.reason);
        setTimeout(() => ws.terminate(), 2000).unref();
      }));
      await Promise.all(closed);
      wss.close();
    },
  };
}

/** ws may hand out views into a shared pool; decoders must not read past the frame. */
function copyFrame(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  return new Uint8Array(data);
}

function toWebRequest(request: IncomingMessage): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  let url: URL;
  try {
    url = new URL(request.url ?? '/', `http://${request.headers.host ?? 'localhost'}`);
  } catch {
    url = new URL('http://localhost/');
  }
  return new Request(url, { headers });
}
