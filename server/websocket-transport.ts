// WebSocket transport: takes upgrades from our own http server and hands each
// socket to Hocuspocus. Two protocols share the port:
//   - any path but /yjs/…: Hocuspocus framing (@hocuspocus/provider);
//   - /yjs/<document>: stock y-websocket framing, bridged by y-websocket-bridge.ts.
// Every frame is copied out of ws' shared buffer pool and checked by frames.ts
// before Hocuspocus sees it; a refused frame closes only its own socket.
//
// Flow control: a connection over its message rate, or with too many updates
// waiting for their commit, is not closed: the transport stops reading its
// socket until the budget refills or the commits catch up, so TCP slows the
// sender and every message is kept, in order. Each socket's acks pass through
// a DurableAcks gate (durable-acks.ts) that releases them after the commit.

import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Hocuspocus, WebSocketLike } from '@hocuspocus/server';
import * as decoding from 'lib0/decoding';
import type { Logger } from 'pino';
import { applyAwarenessUpdate } from 'y-protocols/awareness';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { CloseCodes, ConnectionRefusal, type CloseCode } from './close-codes.js';
import type { ConnectionContext } from './context.js';
import { DurableAcks } from './durable-acks.js';
import { documentNameProblem } from './document-name.js';
import { inspectFrame, isBarePong, MessageType } from './frames.js';
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
  /**
   * Called for every frame before it is handled: returns how long (ms) the
   * socket must not be read after it (0: go on), or throws a ConnectionRefusal to close it.
   * (It gets no upgrade request: a socket does not keep its request once open.)
   */
  onFrame?: (socket: WebSocket) => number;
  /** Updates of one socket waiting for their commit past which the socket is not read (default 1,000). */
  maxUnconfirmedUpdates?: number;
  /** Bytes queued to a client that does not read them past which it is closed (1013); default 64 MiB. */
  maxBufferedBytes?: number;
  /**
   * Apply clients' awareness frames to the document directly (see
   * applyAwareness). Only when no hook of the Hocuspocus instance handles
   * messages or awareness (beforeHandleMessage, afterHandleMessage,
   * beforeHandleAwareness): those would not see these frames. Default false.
   */
  directAwareness?: boolean;
}

export interface Transport {
  /** Closes every socket with `close` and stops taking upgrades. */
  close(close: CloseCode): Promise<void>;
  readonly sockets: Set<WebSocket>;
}

const Y_WEBSOCKET_PREFIX = '/yjs/';
const DEFAULT_MAX_UNCONFIRMED = 1000;
/** Frames a y-websocket client may send before its document is open (Hocuspocus queues up to 1,000). */
const OPENING_FRAMES = 500;
/** … and bytes (Hocuspocus queues up to 5 MiB). */
const OPENING_BYTES = 2 * 1024 * 1024;
const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** Keep-alive ticks per interval (see attachWebSocketTransport). */
const KEEP_ALIVE_SLICES = 16;

export function attachWebSocketTransport(options: TransportOptions): Transport {
  const { httpServer, hocuspocus, logger, metrics } = options;
  // ws hands over FRAMES_PER_TURN messages of a socket per event-loop turn
  // (paceFrames) instead of every frame of a read chunk at once (64 KiB can
  // hold a thousand small updates), so one connection's burst cannot hold the
  // other sockets' turns; the frames it has not handed over yet stay in its
  // buffer, and TCP pushes back on the sender. Frames already read are handed
  // over until the server closes the socket itself (ServerSocket): after a
  // peer's FIN they still count, as they did when delivered at once.
  const wss = new WebSocketServer({
    noServer: true, maxPayload: options.maxMessageBytes, perMessageDeflate: false, allowSynchronousEvents: false, WebSocket: ServerSocket,
  });
  const sockets = new Set<WebSocket>();
  let closing = false;
  const directAwareness = options.directAwareness ?? false;

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
  const maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  /**
   * What the shared socket handlers need of each socket (its flow control: a
   * paused socket cannot read its pong, so it is not judged by it).
   */
  const links = new WeakMap<WebSocket, SocketLink>();
  const keepAlive = setInterval(() => {
    for (const ws of keepAliveSlices[visitedSlice]) {
      if (ws.bufferedAmount > maxBufferedBytes) {
        // A client that does not read what it is sent cannot be slowed down; it reconnects and syncs afresh.
        refuse(ws, new ConnectionRefusal(CloseCodes.Overloaded,
          `${ws.bufferedAmount} bytes queued to a client that does not read them (limit ${maxBufferedBytes})`));
        continue;
      }
      if (links.get(ws)?.flow.paused === true) {
        awaitingPong.delete(ws);
        continue;
      }
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
    // A shared handler: a closure here would keep the request (and its headers) as long as the socket.
    socket.on('error', socketOnUpgradeError);
    wss.handleUpgrade(request, socket, head, (ws) => {
      paceFrames(ws);
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
    const flow = new FlowControl(ws, options.maxUnconfirmedUpdates ?? DEFAULT_MAX_UNCONFIRMED, handleFrame);
    const acks = durableAcks(ws, ws as unknown as WebSocketLike, flow);
    const client = hocuspocus.handleConnection(acks, toWebRequest(request), { ...contextFor(request, ws), acks });
    wireSocket(ws, request, 'hocuspocus', flow, (frame) => {
      if (isBarePong(frame)) return;
      inspectFrame(frame);
      if (directAwareness && applyAwareness(acks, frame)) {
        client.lastMessageReceivedAt = Date.now();
        return;
      }
      client.handleMessage(frame);
    }, (code, reason) => client.handleClose({ code, reason }));
  }

  /** The ack gate of one socket: an append that fails closes it with 4503 (or 4400 for an update Yjs cannot diff). */
  function durableAcks(ws: WebSocket, inner: WebSocketLike, flow: FlowControl): DurableAcks {
    return new DurableAcks(inner, {
      onFailure(error) {
        const refusal = error instanceof ConnectionRefusal ? error : new ConnectionRefusal(CloseCodes.StorageUnavailable, error.message);
        refuse(ws, refusal);
      },
      onBacklog: (waiting) => flow.backlog(waiting),
      corked: (run) => (ws as ServerSocket).corked(run),
    });
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
    const flow = new FlowControl(ws, options.maxUnconfirmedUpdates ?? DEFAULT_MAX_UNCONFIRMED, handleFrame);
    if (problem !== null) {
      wireSocket(ws, request, 'y-websocket', flow, () => undefined, () => undefined);
      refuse(ws, new ConnectionRefusal(CloseCodes.InvalidDocumentName, problem));
      return;
    }
    // Until the document is open Hocuspocus queues what the client sends (and drops the
    // connection past 1,000 frames or 5 MiB): past OPENING_FRAMES or OPENING_BYTES the
    // socket is not read until then.
    let opened = false;
    let framesBeforeOpen = 0;
    let bytesBeforeOpen = 0;
    const bridge = new YWebsocketBridge(ws, documentName, () => hocuspocus.documents.get(documentName)?.awareness, () => {
      opened = true;
      flow.opening(false);
    });
    const acks = durableAcks(ws, bridge, flow);
    const client = hocuspocus.handleConnection(acks, toWebRequest(request), { ...contextFor(request, ws), acks });
    wireSocket(ws, request, 'y-websocket', flow, (frame) => {
      if (!opened && (++framesBeforeOpen === OPENING_FRAMES || (bytesBeforeOpen += frame.length) >= OPENING_BYTES)) flow.opening(true);
      const framed = bridge.frameFromClient(frame);
      inspectFrame(framed);
      if (bridge.repeatsKnownAwareness(frame) || (directAwareness && frame[0] === MessageType.Awareness && applyAwareness(acks, framed))) {
        // Still a sign of life for Hocuspocus' idle timeout, as it would have been.
        client.lastMessageReceivedAt = Date.now();
        return;
      }
      client.handleMessage(framed);
    }, (code, reason) => client.handleClose({ code, reason }));
    const token = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token') ?? '';
    client.handleMessage(bridge.authFrame(token));
  }

  /**
   * Applies an awareness frame (Hocuspocus framing; the bridge's for a
   * y-websocket client) to its document's awareness as Hocuspocus would, with
   * the socket's connection to the document as origin (so Hocuspocus still
   * knows whose states to remove when it closes), but without the scratch
   * Y.Doc and Awareness Hocuspocus builds for every awareness frame to hand to
   * beforeHandleAwareness hooks: that round trip (a Y.Doc draws a UUID from ~30
   * crypto.getRandomValues calls) was the largest part of the server's work in
   * the burst of renewals that clients started together make every 15 s. It
   * also leaves out what the round trip adds and drops: an entry for the
   * scratch's own client, and removal (null state) entries, which y-protocols
   * applies here as the y-websocket reference server does. False (Hocuspocus
   * takes the frame) for any other frame, and while the connection is not
   * established (Hocuspocus queues what comes before).
   */
  function applyAwareness(socket: WebSocketLike, frame: Uint8Array): boolean {
    const decoder = decoding.createDecoder(frame);
    const address = decoding.readVarString(decoder);
    if (decoding.readVarUint(decoder) !== MessageType.Awareness) return false;
    const separator = address.indexOf('\0');
    const documentName = separator === -1 ? address : address.slice(0, separator);
    const sessionId = separator === -1 ? null : address.slice(separator + 1);
    const document = hocuspocus.documents.get(documentName);
    const connection = document?.getConnections().find((candidate) => candidate.webSocket === socket && candidate.sessionId === sessionId);
    if (document === undefined || connection === undefined) return false;
    applyAwarenessUpdate(document.awareness, decoding.readVarUint8Array(decoder), { source: 'connection', connection });
    return true;
  }

  function wireSocket(
    ws: WebSocket, request: IncomingMessage, protocol: SocketLink['protocol'], flow: FlowControl,
    onMessage: SocketLink['onMessage'], onClose: SocketLink['onClose'],
  ) {
    links.set(ws, { flow, protocol, address: request.socket.remoteAddress ?? 'unknown', onMessage, onClose });
    keepAliveSlices[joiningSlice].add(ws);
    joiningSlice = (joiningSlice + 1) % KEEP_ALIVE_SLICES;
    ws.on('pong', socketOnPong);
    ws.on('message', socketOnMessage);
    ws.on('error', socketOnError);
    ws.on('close', socketOnClose);
  }

  // The socket handlers are shared by every socket (`this` is the socket) and
  // find its state in `links`: handlers of its own, with their closures and
  // contexts, are memory an idle connection need not hold, and they would keep
  // the upgrade request (headers and all) alive as long as the socket.

  function socketOnMessage(this: WebSocket, data: RawData, isBinary: boolean) {
    const link = links.get(this);
    if (link === undefined || (this as ServerSocket).closedHere || this.readyState === this.CLOSED) return;
    // Over its rate, what ws had already read of the socket waits for the budget too.
    if (link.flow.keep(data, isBinary)) return;
    handleFrame(this, data, isBinary);
  }

  /** One frame of a socket, in order; taking from its rate budget, and holding the socket when that is spent. */
  function handleFrame(ws: WebSocket, data: RawData, isBinary: boolean): void {
    const link = links.get(ws);
    if (link === undefined || (ws as ServerSocket).closedHere) return;
    try {
      if (!isBinary) throw new ConnectionRefusal(CloseCodes.MalformedFrame, 'text frames are not part of the protocol');
      const waitMs = options.onFrame?.(ws) ?? 0;
      link.onMessage(copyFrame(data));
      if (waitMs > 0) {
        metrics.throttled.inc({ reason: 'rate' });
        link.flow.holdFor(waitMs);
      }
    } catch (error) {
      if (error instanceof ConnectionRefusal) {
        refuse(ws, error);
        return;
      }
      // Not the client's fault: say so, and keep the stack for us.
      logger.error({ err: (error as Error).message, stack: (error as Error).stack, protocol: link.protocol }, 'internal error while handling a frame');
      refuse(ws, new ConnectionRefusal(CloseCodes.InternalError, (error as Error).message));
    }
  }

  function socketOnError(this: WebSocket, error: Error & { code?: string }) {
    // ws reports oversize frames (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH) here and closes with 1009.
    const reason = error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CloseCodes.MessageTooBig.reason : 'socket-error';
    metrics.refusals.inc({ reason });
    const link = links.get(this);
    logger.warn({ err: error.message, code: error.code, protocol: link?.protocol, address: link?.address }, 'websocket error');
  }

  function socketOnClose(this: WebSocket, code: number, reason: Buffer) {
    for (const slice of keepAliveSlices) slice.delete(this);
    awaitingPong.delete(this);
    sockets.delete(this);
    const link = links.get(this);
    if (link === undefined) return;
    // Frames the rate held are the client's all the same (ws hands over what it read before a
    // close): they go first, a few a turn, then the close.
    link.flow.drain(() => {
      links.delete(this);
      link.flow.dispose();
      metrics.connections.dec({ protocol: link.protocol });
      link.onClose(code, reason.toString());
    });
  }

  function socketOnUpgradeError(error: Error) {
    logger.debug({ err: error.message }, 'socket error during upgrade');
  }

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

/** Why a socket is not read (bits: several may hold at once). */
const Hold = { Rate: 1, Backlog: 2, Opening: 4 } as const;
type Hold = typeof Hold[keyof typeof Hold];

/**
 * Messages of one socket handed over per event-loop turn. One a turn kept a
 * flooding connection from delaying the others, but cost a fast connection
 * half its rate and left the server behind past its ceiling: every update
 * then went out on its own (Hocuspocus merges the updates a document gets
 * in one turn into one broadcast), in its own commit group and its own
 * write of each recipient's socket. Eight a turn: a turn's share of one
 * socket stays under a millisecond of work, and those costs are shared by
 * eight (bench/README: "Frames per turn").
 */
const FRAMES_PER_TURN = 8;

/** ws' receiver, as far as paceFrames reads it (ws 8: whether it emits a message at once or at the next setImmediate). */
interface PacedReceiver {
  _allowSynchronousEvents: boolean;
  /** Messages emitted at once since the receiver last deferred one to the next turn. */
  pacedCount?: number;
}

/**
 * ws offers one message per turn (allowSynchronousEvents false, the
 * server's option) or all of them; its receiver reads the option as it
 * finishes each message, so answering "at once" for all but every
 * FRAMES_PER_TURN-th gives that many per turn. ws is pinned to the version
 * this reads; should the field be gone, the socket keeps ws' own one per turn.
 */
function paceFrames(ws: WebSocket): void {
  const receiver = (ws as unknown as { _receiver?: PacedReceiver })._receiver;
  if (receiver === undefined || typeof receiver._allowSynchronousEvents !== 'boolean') return;
  Object.defineProperty(receiver, '_allowSynchronousEvents', pacedDescriptor);
}

/** One descriptor for every receiver: an idle socket holds no closure of its own. */
const pacedDescriptor: PropertyDescriptor = {
  get(this: PacedReceiver): boolean {
    const count = (this.pacedCount ?? 0) + 1;
    this.pacedCount = count < FRAMES_PER_TURN ? count : 0;
    return count < FRAMES_PER_TURN;
  },
  set() {
    // ws sets it only in its constructor.
  },
};

/** A ws socket that knows whether this server started closing it (its frames are then dropped). */
class ServerSocket extends WebSocket {
  closedHere = false;

  /** Runs `send` calls so that their frames reach the TCP socket in one write (ws keeps it as `_socket`). */
  corked(run: () => void): void {
    const socket = (this as unknown as { _socket?: Duplex })._socket;
    if (socket === undefined || typeof socket.cork !== 'function') {
      run();
      return;
    }
    socket.cork();
    try {
      run();
    } finally {
      socket.uncork();
    }
  }

  override close(code?: number, reason?: string | Buffer): void {
    // ws answers a peer's close frame through close() too (having set `_closeFrameReceived`):
    // that close is the peer's, and the frames it sent before it (some perhaps held for its
    // rate) are still handled.
    if ((this as unknown as { _closeFrameReceived?: boolean })._closeFrameReceived !== true) this.closedHere = true;
    super.close(code, reason);
  }

  override terminate(): void {
    this.closedHere = true;
    super.terminate();
  }
}

/** One open socket as the shared socket handlers see it. */
interface SocketLink {
  flow: FlowControl;
  protocol: 'hocuspocus' | 'y-websocket';
  /** The peer's address, for logs. */
  address: string;
  onMessage(frame: Uint8Array): void;
  onClose(code: number, reason: string): void;
}

/** A frame as ws delivered it. */
type HeldFrame = [data: RawData, isBinary: boolean];

/**
 * Stops reading a socket while any reason holds: the sender's rate budget is
 * in debt (for the time it takes to repay), too many of its updates wait for
 * their commit (until half of them are confirmed), or its document is still
 * opening and it has sent many frames already (a y-websocket client writes
 * before the server has authenticated it and loaded the document, where
 * Hocuspocus would queue, and past 1,000 frames drop, what it sends).
 *
 * Pausing the socket stops its reads, but ws still delivers the frames of
 * what it read already: up to 64 KiB, thousands of small updates. While the
 * rate holds, those wait here and are handled as the budget refills, a few
 * at a time (FRAMES_PER_TURN, each taken from the budget); handled at once,
 * they made a flooding connection's every pause end in a burst at full speed
 * that held up every other client. Frames delivered during the other holds
 * are handled as they come.
 */
class FlowControl {
  private rateTimer: NodeJS.Timeout | null = null;
  /** The reasons that hold, as bits of Hold (a number rather than a Set: one per socket). */
  private holds = 0;
  private rateUntil = 0;
  /** Frames ws delivered while the rate held, in order, from `heldFrom`; null when none wait (and the rate does not hold). */
  private held: HeldFrame[] | null = null;
  private heldFrom = 0;
  /** The socket has closed: what is held is handed over regardless of the rate. */
  private closing = false;
  paused = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly maxUnconfirmed: number,
    private readonly handle: (ws: WebSocket, data: RawData, isBinary: boolean) => void,
  ) {}

  /** Keeps a frame ws delivered while the rate holds (or others still wait); false: handle it now. */
  keep(data: RawData, isBinary: boolean): boolean {
    if (this.held === null) return false;
    this.held.push([data, isBinary]);
    return true;
  }

  holdFor(ms: number): void {
    if (this.closing) return;
    this.held ??= [];
    const until = performance.now() + ms;
    if (this.rateTimer !== null && until <= this.rateUntil) return;
    if (this.rateTimer !== null) clearTimeout(this.rateTimer);
    this.rateUntil = until;
    this.rateTimer = setTimeout(() => {
      this.rateTimer = null;
      this.releaseSome();
    }, Math.ceil(ms));
    this.set(Hold.Rate, true);
  }

  /**
   * The budget has refilled: a few held frames (each taken from the budget;
   * one that puts it in debt starts the next hold), then the next few at the
   * next turn if the budget allows, or reading again once none wait.
   */
  private releaseSome(): void {
    if (this.closing) return;
    if (this.handOverSome()) {
      if (this.rateTimer === null) setImmediate(() => this.releaseSome());
      return;
    }
    if (this.rateTimer !== null) return; // in debt again: the timer releases the next
    this.held = null;
    this.heldFrom = 0;
    this.set(Hold.Rate, false);
  }

  /** Hands over up to FRAMES_PER_TURN held frames, in order; true while more are held. */
  private handOverSome(): boolean {
    for (let handled = 0; handled < FRAMES_PER_TURN && this.held !== null && this.heldFrom < this.held.length; handled++) {
      const [data, isBinary] = this.held[this.heldFrom];
      this.held[this.heldFrom++] = undefined as unknown as HeldFrame; // not kept alive by the array
      this.handle(this.ws, data, isBinary);
    }
    return this.held !== null && this.heldFrom < this.held.length;
  }

  /** The socket closed: hands over what is held, a few a turn regardless of the rate, then calls `done`. */
  drain(done: () => void): void {
    this.closing = true;
    if (this.rateTimer !== null) clearTimeout(this.rateTimer);
    this.rateTimer = null;
    const step = () => {
      if (this.handOverSome()) setImmediate(step);
      else done();
    };
    step();
  }

  backlog(waiting: number): void {
    if (waiting >= this.maxUnconfirmed) this.set(Hold.Backlog, true);
    else if (waiting <= this.maxUnconfirmed / 2) this.set(Hold.Backlog, false);
  }

  opening(open: boolean): void {
    this.set(Hold.Opening, open);
  }

  dispose(): void {
    this.closing = true;
    if (this.rateTimer !== null) clearTimeout(this.rateTimer);
    this.rateTimer = null;
    this.held = null;
  }

  private set(reason: Hold, on: boolean): void {
    this.holds = on ? this.holds | reason : this.holds & ~reason;
    const hold = this.holds !== 0;
    if (hold === this.paused || this.ws.readyState !== this.ws.OPEN) return;
    this.paused = hold;
    if (hold) this.ws.pause();
    else this.ws.resume();
  }
}

/** ws may hand out views into a shared pool; decoders must not read past the frame. */
function copyFrame(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  return new Uint8Array(data);
}

function absoluteUrl(request: IncomingMessage): string {
  try {
    return new URL(request.url ?? '/', `http://${request.headers.host ?? 'localhost'}`).href;
  } catch {
    return 'http://localhost/';
  }
}

/**
 * The request as Hocuspocus reads it: its headers (in hook payloads) and its
 * URL, whose query it parses again for every message a connection sends. The
 * URL is kept as path and query, which Hocuspocus reads with URLSearchParams
 * alone: an absolute URL cost a full URL parse per message.
 */
function toWebRequest(request: IncomingMessage): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  const url = request.url ?? '/';
  // Hocuspocus parses a URL holding "://" (a y-websocket client's document name may) as an absolute one.
  const read: Pick<Request, 'url' | 'headers'> = { url: url.includes('://') ? absoluteUrl(request) : url, headers };
  return read as Request;
}
