// Telling a PostgreSQL URL from a SQLite path, and checking one before
// anything connects: a malformed URL is a usage error that names --data,
// not a connection failure.

import { splitSsl, type SslRequest } from './ssl.js';

/** Whether `data` names PostgreSQL (postgres:// or postgresql://) rather than a SQLite file. */
export function isPostgresUrl(data: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(data);
}

export interface PostgresUrl {
  /** host:port, for messages. */
  host: string;
  database: string;
  /** The URL with its password replaced by ***, for logs and messages. */
  display: string;
  /** What the URL asks of SSL (ssl.ts); null: no SSL. */
  ssl: SslRequest | null;
}

/** Parses a postgres:// URL; throws an Error saying what is wrong with it. */
export function parsePostgresUrl(data: string): PostgresUrl {
  let url: URL;
  try {
    url = new URL(data);
  } catch {
    throw new Error(`"${redact(data)}" is not a valid URL; expected postgres://user:password@host:port/database`);
  }
  if (url.hostname === '' && url.searchParams.get('host') === null) {
    throw new Error(`"${redact(data)}" names no host; expected postgres://user:password@host:port/database`);
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database.includes('/')) throw new Error(`"${redact(data)}": the database name must not contain "/"`);
  const { ssl } = splitSsl(data);
  const host = url.hostname === '' ? (url.searchParams.get('host') ?? '') : url.hostname;
  return {
    host: `${host}:${url.port === '' ? '5432' : url.port}`,
    database: database === '' ? decodeURIComponent(url.username) : database,
    display: redact(data),
    ssl,
  };
}

/** The URL with any password hidden. */
export function redact(data: string): string {
  return data.replace(/^(postgres(?:ql)?:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}
