// What the server knows about a connection once it is authenticated; it
// travels as the Hocuspocus connection context.

import type { DurableAcks } from './durable-acks.js';

export interface ConnectionUser {
  /** Stable id (the token's `sub`), recorded in log entries. */
  id: string;
  name: string | null;
}

export interface ConnectionContext {
  user: ConnectionUser | null;
  /** The client's address (after trusted proxies), for logs and limits. */
  clientAddress: string;
  /** State of the socket shared by every document on it; absent when no security layer is wired (tests). */
  session?: SocketSession;
  /** When the token of this connection expires (ms since the epoch), if it has `exp`. */
  tokenExpiresAt?: number | null;
  /** The socket's ack gate (set by the transport): acks wait in it for their commit. */
  acks?: DurableAcks;
}

/** Per-socket state kept by security.ts: what the limits and the authentication deadline look at. */
export interface SocketSession {
  /** Documents authenticated on this socket and still open. */
  openDocuments: number;
  /** Set once any document on the socket has authenticated; stops the authentication deadline. */
  authenticated: boolean;
  /** Closes the socket with a documented close code, unless it is already closing. */
  close(code: number, reason: string): void;
}
