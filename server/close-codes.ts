// Every WebSocket close code the server uses, with the reason string sent
// alongside. The README lists them; clients and tests rely on these numbers,
// so add new ones but never renumber.
//
// The numbers follow what stock clients do with them: y-websocket 3.x gives up
// after any code from 4400 to 4499 and retries every other one, so a condition
// that can pass (overload, time-out, storage) is outside that range and one
// that cannot (bad input, forbidden, too large) is inside it.
// @hocuspocus/provider 4.x reconnects after every code; it learns of a final
// refusal from the PermissionDenied message sent before the close.

export interface CloseCode {
  code: number;
  reason: string;
}

export const CloseCodes = {
  /** The server is shutting down; reconnect (to another instance). */
  ServerShutdown: { code: 1001, reason: 'server-shutdown' },
  /** A frame was larger than the configured limit (--max-message-bytes). */
  MessageTooBig: { code: 1009, reason: 'message-too-big' },
  /** The server failed while handling a frame (a bug, logged with its stack); reconnect. */
  InternalError: { code: 1011, reason: 'internal-error' },
  /** A frame that does not decode: truncated, bad varint, unknown message type, or an update Yjs cannot decode. */
  MalformedFrame: { code: 4400, reason: 'malformed-frame' },
  /** Missing, invalid or expired token. */
  Unauthorized: { code: 4401, reason: 'unauthorized' },
  /** The token does not allow this document. */
  Forbidden: { code: 4403, reason: 'forbidden' },
  /** Too many connections from one address or documents on one connection, or a client that does not read: retry later. */
  Overloaded: { code: 1013, reason: 'try-again-later' },
  /** No authentication within the deadline, or (Hocuspocus' 4408, renumbered for y-websocket) idle too long; reconnect. */
  ConnectionTimeout: { code: 4508, reason: 'connection-timeout' },
  /** The document would grow past the configured size limit. */
  DocumentTooLarge: { code: 4413, reason: 'document-too-large' },
  /** A document name outside 1-255 characters of [A-Za-z0-9._~:/-], or starting with '/'. */
  InvalidDocumentName: { code: 4422, reason: 'invalid-document-name' },
  /** The update could not be written to the log; nothing was acknowledged: reconnect and resend. */
  StorageUnavailable: { code: 4503, reason: 'storage-unavailable' },
} as const satisfies Record<string, CloseCode>;

export type CloseCodeName = keyof typeof CloseCodes;

/** An error that ends a connection with a documented close code. */
export class ConnectionRefusal extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(close: CloseCode, detail: string) {
    super(`${close.reason}: ${detail}`);
    this.name = 'ConnectionRefusal';
    this.code = close.code;
    this.reason = close.reason;
  }
}
