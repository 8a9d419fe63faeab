// SSL to PostgreSQL with libpq's meanings of sslmode. node-postgres 8 reads
// sslmode from a URL itself, treats prefer, require and verify-ca as
// verify-full and prints a "SECURITY WARNING" saying so on every start; so the
// SSL parameters are taken out of the URL here and pg is handed the SSL
// settings explicitly:
//
//   disable      no SSL
//   prefer       SSL when the server offers it (certificate not checked), else plain
//   require      SSL or no connection; certificate not checked, unless
//                sslrootcert is given: then as verify-ca
//   verify-ca    SSL; the certificate must be signed by a CA in sslrootcert
//   verify-full  SSL; the certificate must be signed by a trusted CA (those in
//                sslrootcert; sslrootcert=system: the operating system's; else
//                Node's) and issued for the host
//
// no-verify (node-postgres' name) is require. sslcert and sslkey give a client
// certificate. A Unix socket never uses SSL (as with libpq). Without sslmode,
// ssl=true|1 means verify-full and ssl=false|0 disable (node-postgres' URL
// parameter); with neither, no SSL (node-postgres' default). Only the URL
// counts: PGSSLMODE is not read.

import { readFileSync } from 'node:fs';
import { isIP, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import tls, { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The URL parameters this module reads (and takes out of the URL node-postgres sees). */
const SSL_PARAMETERS = ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'uselibpqcompat', 'sslnegotiation'];

export interface SslRequest {
  /** The mode in force; `require` with an sslrootcert is reported as `verify-ca`. */
  mode: SslMode;
  /** Where it was asked for, for messages: `sslmode=require`, `ssl=true`. */
  source: string;
  /** A CA file, `system` (Node's trusted CAs), or null. */
  rootCert: string | null;
  cert: string | null;
  key: string | null;
  /** The host is a Unix socket folder: no SSL whatever the mode. */
  unixSocket: boolean;
}

/**
 * The URL without its SSL parameters, and what they ask for;
 * `ssl` is null when nothing asks for SSL. Throws an Error saying what is
 * wrong with a parameter.
 */
export function splitSsl(data: string): { url: string; ssl: SslRequest | null } {
  const url = new URL(data);
  const read = (name: string) => url.searchParams.get(name);
  const host = read('host') ?? decodeURIComponent(url.hostname);
  let mode: string | null = read('sslmode');
  let source = `sslmode=${mode}`;
  if (mode === null) {
    const flag = read('ssl');
    if (flag !== null) {
      if (flag === 'true' || flag === '1') mode = 'verify-full';
      else if (flag === 'false' || flag === '0') mode = 'disable';
      else if (flag === 'no-verify') mode = 'require';
      else throw new Error(`ssl=${flag} is not one of true, false, no-verify; prefer sslmode=${SSL_MODES.join('|')}`);
      source = `ssl=${flag}`;
    }
  }
  if (mode === 'no-verify') mode = 'require';
  if (mode !== null && !(SSL_MODES as readonly string[]).includes(mode)) {
    throw new Error(`${source} is not one of ${SSL_MODES.join(', ')} (no-verify is taken as require)`);
  }
  if (read('sslnegotiation') !== null && read('sslnegotiation') !== 'postgres') {
    // node-postgres would take it as ssl=true and drop the settings made here.
    throw new Error(`sslnegotiation=${read('sslnegotiation')} is not supported: leave it out (the default, sslnegotiation=postgres)`);
  }
  const rootCert = read('sslrootcert');
  if (rootCert === 'system' && mode !== null && mode !== 'verify-full') {
    throw new Error(`sslrootcert=system needs sslmode=verify-full (as with libpq), not ${source}`);
  }
  if (mode === 'verify-ca' && rootCert === null) {
    throw new Error(`${source} checks the server's certificate against the CA in sslrootcert: add sslrootcert=<CA file>`);
  }
  for (const name of SSL_PARAMETERS) url.searchParams.delete(name);
  const stripped = url.href;
  if (mode === null) {
    if (rootCert !== null || read('sslcert') !== null) {
      throw new Error('sslrootcert and sslcert need an sslmode (disable, prefer, require, verify-ca or verify-full)');
    }
    return { url: stripped, ssl: null };
  }
  return {
    url: stripped,
    ssl: {
      mode: mode === 'require' && rootCert !== null ? 'verify-ca' : mode as SslMode,
      source, rootCert, cert: read('sslcert'), key: read('sslkey'), unixSocket: host.startsWith('/'),
    },
  };
}

/** What node-postgres is given for a connection: the URL without SSL parameters and the SSL settings. */
export interface ConnectionSettings {
  connectionString: string;
  ssl?: false | ConnectionOptions;
  /** sslmode=prefer: a socket that asks the server for SSL and goes on without it when refused. */
  stream?: () => Duplex;
}

/** The node-postgres settings for `data`; throws an Error naming a certificate file that cannot be read. */
export function connectionSettings(data: string): ConnectionSettings {
  const { url, ssl } = splitSsl(data);
  // No SSL asked for: node-postgres' default (none); `ssl` is set anyway so that it reads no PGSSLMODE either.
  if (ssl === null || ssl.mode === 'disable' || ssl.unixSocket) return { connectionString: url, ssl: false };
  const file = (name: string, path: string | null) => {
    if (path === null) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new Error(`cannot read ${name} ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  const client = { cert: file('sslcert', ssl.cert), key: file('sslkey', ssl.key) };
  // sslrootcert=system: the operating system's CAs (where Node can read them), else Node's own.
  const ca = ssl.rootCert === 'system' ? systemCertificates() : file('sslrootcert', ssl.rootCert);
  switch (ssl.mode) {
    case 'prefer':
      return { connectionString: url, ssl: false, stream: () => new PreferSslSocket({ ...client, rejectUnauthorized: false }) };
    case 'require':
      return { connectionString: url, ssl: { ...client, rejectUnauthorized: false } };
    case 'verify-ca':
      // The chain is checked against the CA; the name in the certificate is not.
      return { connectionString: url, ssl: { ...client, ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } };
    case 'verify-full':
      return { connectionString: url, ssl: { ...client, ca, rejectUnauthorized: true } };
  }
}

function systemCertificates(): string[] | undefined {
  const read = (tls as { getCACertificates?: (type: 'system') => string[] }).getCACertificates;
  const found = read?.('system');
  return found === undefined || found.length === 0 ? undefined : found;
}

/** PostgreSQL's SSLRequest: length 8, code 80877103. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * sslmode=prefer, which node-postgres does not have: node-postgres is told
 * "no SSL" and given this socket, which sends the SSLRequest itself; on 'S' it
 * completes a TLS handshake (certificate not checked, as libpq's prefer) and
 * carries the connection over it, on 'N' it carries it in plain. Only then
 * does it report 'connect', so node-postgres starts the protocol on whichever.
 */
class PreferSslSocket extends Duplex {
  private readonly raw = new Socket();
  private inner: Socket | TLSSocket | null = null;
  /** The TLS socket while its handshake runs. */
  private handshake: TLSSocket | null = null;

  constructor(private readonly tlsOptions: ConnectionOptions) {
    super();
    this.raw.on('error', (error) => this.destroy(error));
  }

  setNoDelay(noDelay?: boolean): this {
    this.raw.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.raw.setKeepAlive(enable, initialDelay);
    return this;
  }

  ref(): this {
    this.raw.ref();
    return this;
  }

  unref(): this {
    this.raw.unref();
    return this;
  }

  connect(port: number | string, host?: string): this {
    if (host === undefined) {
      // A Unix socket path (node-postgres passes one argument): no SSL there.
      this.raw.connect(String(port), () => this.attach(this.raw));
      return this;
    }
    // Closed by the other side before the connection is handed over (a proxy with no server behind it): say so at once.
    this.raw.once('close', () => {
      if (this.inner === null) this.destroy(new Error('the server closed the connection before answering the request for SSL'));
    });
    this.raw.connect(Number(port), host, () => {
      this.raw.write(SSL_REQUEST);
      this.raw.once('data', (answer: Buffer) => {
        // One byte and nothing after it: bytes sent before the handshake could be injected by anyone on the path.
        if (answer.length === 1 && answer[0] === 0x4e) return this.attach(this.raw); // 'N': plain
        if (answer.length !== 1 || answer[0] !== 0x53) return this.destroy(new Error('There was an error establishing an SSL connection'));
        const secure = tlsConnect({ ...this.tlsOptions, socket: this.raw, host, servername: isIP(host) === 0 ? host : undefined });
        this.handshake = secure;
        secure.on('error', (error) => this.destroy(error));
        secure.once('secureConnect', () => this.attach(secure));
      });
    });
    return this;
  }

  private attach(inner: Socket | TLSSocket): void {
    this.inner = inner;
    inner.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('close', () => this.destroy());
    this.emit('connect');
  }

  override _read(): void {
    this.inner?.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.inner === null) {
      callback(new Error('written before the connection was made'));
      return;
    }
    this.inner.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.inner === null) callback();
    else this.inner.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.inner?.destroy();
    this.handshake?.destroy();
    this.raw.destroy();
    callback(error);
  }
}
