// Connections to PostgreSQL (node-postgres): one pool per store, bigint
// columns read as numbers (seqs and sizes stay far below 2^53), SSL as the
// URL's sslmode asks (ssl.ts), and a one-line description of a connection
// failure that names the host and the cause.

import pg from 'pg';
import { connectionSettings } from './ssl.js';
import type { PostgresUrl } from './url.js';

export interface PoolOptions {
  url: string;
  max: number;
  /** How long a statement waits for a lock another session holds before failing. */
  lockTimeoutMs: number;
  applicationName: string;
  /**
   * Told when a connection breaks, whether idle in the pool or checked out.
   * The statement running on it fails on its own; this is for health.
   */
  onConnectionLost(error: Error): void;
}

const INT8_OID = 20;

/**
 * A client that closes its socket when its connect fails. node-postgres
 * leaves the socket open when the failure is found on this side (a server
 * that asks for a password the URL does not give): the server would keep it,
 * and the process with it, until its authentication_timeout (60 s).
 */
class ClosingClient extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
  override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
    const close = () => void this.end().catch(() => undefined);
    if (callback === undefined) {
      return super.connect().catch((error: unknown) => {
        close();
        throw error;
      });
    }
    super.connect(((error: Error | null, client: pg.Client) => {
      if (error) close();
      (callback as (err: Error | null, c: pg.Client) => void)(error, client);
    }) as (err: Error) => void);
  }
}

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    Client: ClosingClient,
    // The URL without its SSL parameters, and the SSL settings they ask for (throws naming an unreadable certificate file).
    ...connectionSettings(options.url),
    max: options.max,
    // Without these a vanished host would hang a connect or a query for ever.
    connectionTimeoutMillis: 10_000,
    query_timeout: 60_000,
    // TCP keepalive probes after 10 s of silence (the OS default waits two
    // hours): an idle connection across a dead path is found and dropped.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    idleTimeoutMillis: 30_000,
    lock_timeout: options.lockTimeoutMs,
    application_name: options.applicationName,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // The pool listens for errors only on idle connections: a socket that
  // breaks while its connection is checked out (a network cut mid-transaction)
  // emits 'error' with no listener, which would end the process. Every
  // connection gets a listener of its own for its whole life.
  pool.on('connect', (client) => {
    client.on('error', (error) => options.onConnectionLost(error));
  });
  pool.on('error', (error) => options.onConnectionLost(error));
  return pool;
}

/** "cannot connect to PostgreSQL at host:port (database x): <cause>" — no stack, no password. */
export function describeConnectError(error: unknown, where: PostgresUrl): string {
  const err = error as { code?: string; message?: string; errors?: Array<{ message?: string }> };
  let cause = err.message ?? String(error);
  // Node reports a failed connect to every address of a host as an AggregateError with an empty message.
  if (cause === '' && Array.isArray(err.errors)) cause = err.errors.map((e) => e.message ?? '').filter((m) => m !== '').join('; ');
  switch (err.code) {
    case 'ECONNREFUSED': cause = `connection refused (is PostgreSQL running and listening there?)`; break;
    case 'ENOTFOUND': case 'EAI_AGAIN': cause = `host not found (${cause})`; break;
    case '28P01': cause = `wrong password (${cause})`; break;
    case undefined:
      // Found by node-postgres before it can answer the server's challenge.
      if (/client password must be a string/.test(cause)) cause = 'the server asks for a password and the URL gives none (postgres://user:password@host:port/database)';
      break;
    case '3D000': cause = `${cause} (create it, or point --data at an existing database)`; break;
    default: break;
  }
  if (/timeout/i.test(cause) && err.code === undefined) cause = `no answer within 10 s (${cause})`;
  const ssl = where.ssl === null ? 'no sslmode' : where.ssl.source;
  if (err.message === 'The server does not support SSL connections') {
    cause = `the server does not support SSL, which ${ssl} requires (turn ssl on in PostgreSQL, or use sslmode=prefer or disable)`;
  } else if (err.message === 'There was an error establishing an SSL connection') {
    cause = `the server did not answer the request for SSL as PostgreSQL does (${ssl})`;
  } else if (err.code !== undefined && TLS_CERTIFICATE_ERRORS.test(err.code)) {
    // Node's hint about --use-system-ca is for its own flags; sslrootcert=system is ours.
    cause = `its SSL certificate was not accepted under ${ssl}: ${cause.replace(/; if the root CA is installed locally.*$/, '')} ` +
      '(pass sslrootcert=<CA file> naming the CA that signed it, or sslrootcert=system for the system\'s CAs)';
  }
  return `cannot connect to PostgreSQL at ${where.host} (database ${where.database}): ${cause}`;
}

/** Node's codes for a server certificate that fails verification (untrusted, self-signed, expired, another name). */
const TLS_CERTIFICATE_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS_CERT_ALTNAME_INVALID/;

/** Whether an error means the connection itself is gone (as opposed to a failed statement). */
export function isConnectionError(error: unknown): boolean {
  const err = error as { code?: string; message?: string };
  if (typeof err.code === 'string') {
    // Class 08: connection exception; 57P0x: the server is shutting down or restarting.
    if (err.code.startsWith('08') || err.code.startsWith('57P') || err.code.startsWith('E')) return true;
  }
  return /Connection terminated|connection timeout|ECONNRESET|not queryable/i.test(err.message ?? '');
}

export function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
