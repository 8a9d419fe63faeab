// What the server knows about a connection once it is authenticated; it
// travels as the Hocuspocus connection context.

export interface ConnectionUser {
  /** Stable id (the token's `sub`), recorded in log entries. */
  id: string;
  name: string | null;
}

export interface ConnectionContext {
  user: ConnectionUser | null;
  /** The client's address (after trusted proxies), for logs and limits. */
  clientAddress: string;
}
