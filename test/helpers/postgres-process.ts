// A real PostgreSQL server for tests: initdb + pg_ctl in a temporary folder,
// on a free loopback port, its unix socket in that folder, trust
// authentication (plus one role that must give a password, for the tests of
// a wrong one). initdb refuses to run as root, so under root every command
// runs as the `postgres` user, which then owns the folder. stop() and start()
// simulate an outage on the same port; teardown is registered on the test
// context that started it.
//
// fsync is off unless asked for: these servers hold throwaway data, and
// tests that kill PostgreSQL kill the process, not the machine (a killed
// process loses nothing the OS already has).

import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before } from 'node:test';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './cli.js';

const run = promisify(execFile);

export interface PostgresProcess {
  port: number;
  /** The superuser's URL for `database` (default: postgres). */
  url(database?: string): string;
  /** With `ssl`: the server's self-signed certificate (for 127.0.0.1 and localhost), the CA to trust. */
  certificate: string | null;
  /** A new, empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** A role that must log in with `password`. */
  passwordRole: { user: string; password: string };
  running(): boolean;
  /** Stops the server: 'immediate' is a crash (no shutdown checkpoint), 'fast' a clean stop. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;
let databases = 0;

/** Runs a PostgreSQL program, as the postgres user when we are root. */
async function asPostgres(program: string, args: string[]): Promise<string> {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args];
  const { stdout } = await run(file, argv, { env: { ...process.env, LC_ALL: 'C' } });
  return stdout;
}

/** Whether openssl is there to make a certificate for a server with `ssl`. */
export async function canMakeCertificates(): Promise<boolean> {
  try {
    await run('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}

export async function startPostgres(
  t: { after(fn: () => Promise<void>): void }, options: { fsync?: boolean; ssl?: boolean } = {},
): Promise<PostgresProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'palimpsest-pg-'));
  const dataDir = join(dir, 'data');
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const port = await freePort();
  await asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const passwordRole = { user: 'palimpsest_pw', password: 'right-password' };
  // The password role must authenticate; everyone else is trusted (first matching line wins).
  const hba = join(dataDir, 'pg_hba.conf');
  writeFileSync(hba, `host all ${passwordRole.user} 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
  let certificate: string | null = null;
  let sslSettings = '';
  if (options.ssl === true) {
    // A self-signed certificate for the names clients use; PostgreSQL wants its key readable by its owner only.
    certificate = join(dir, 'server.crt');
    const key = join(dir, 'server.key');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', certificate]);
    chmodSync(key, 0o600);
    if (asRoot) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      for (const file of [key, certificate]) chownSync(file, Number(stdout.trim()), Number((await run('id', ['-g', 'postgres'])).stdout.trim()));
    }
    sslSettings = ` -c ssl=on -c ssl_cert_file=${certificate} -c ssl_key_file=${key}`;
  }
  let up = false;

  async function start(): Promise<void> {
    await asPostgres('pg_ctl', ['-D', dataDir, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start', '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${options.fsync === true ? 'on' : 'off'} -c max_connections=200${sslSettings}`]);
    up = true;
  }

  async function stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!up) return;
    up = false;
    await asPostgres('pg_ctl', ['-D', dataDir, '-w', '-t', '60', 'stop', '-m', mode]);
  }

  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  await start();
  t.after(async () => {
    await stop('immediate').catch((error: Error) => process.stderr.write(`stopping the test PostgreSQL failed: ${error.message}\n`));
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = async <T>(use: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      return await use(client);
    } finally {
      await client.end();
    }
  };
  await admin((client) => client.query(`CREATE ROLE ${passwordRole.user} LOGIN SUPERUSER PASSWORD '${passwordRole.password}'`));

  return {
    port,
    url,
    certificate,
    passwordRole,
    running: () => up,
    stop,
    start,
    async createDatabase(name = `test_${process.pid}_${++databases}`) {
      await admin((client) => client.query(`CREATE DATABASE "${name}"`));
      return url(name);
    },
  };
}

/**
 * One PostgreSQL for the `describe` block this is called in: started before
 * its first test, stopped after its last. Returns the running server.
 */
export function postgresForSuite(): () => PostgresProcess {
  let postgres: PostgresProcess | null = null;
  const teardowns: Array<() => Promise<void>> = [];
  before(async () => {
    postgres = await startPostgres({ after: (fn) => teardowns.push(fn) });
  });
  after(async () => {
    for (const teardown of teardowns.reverse()) await teardown();
  });
  return () => {
    if (postgres === null) throw new Error('PostgreSQL is not started yet (postgresForSuite() must be called inside describe)');
    return postgres;
  };
}
