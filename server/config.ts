// The one place that reads flags and the environment. Every setting has a
// flag, an environment fallback and a documented default; a bad value fails at
// start with a ConfigError naming the flag (exit code 2). See .env.example.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { isPostgresUrl, parsePostgresUrl, type RetentionPolicy, type SynchronousMode } from '../persistence/index.js';
import { parseTrustedProxies } from './client-address.js';

export class ConfigError extends Error {
  /** The flag (or environment variable, or `<doc>`) the problem is about. */
  readonly flag: string;
  /** The message without the flag. */
  readonly detail: string;
  constructor(flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'ConfigError';
    this.flag = flag;
    this.detail = detail;
  }
}

export interface StoreConfig {
  /** SQLite file, or a postgres:// / postgresql:// URL. */
  data: string;
  synchronous: SynchronousMode;
  retention: RetentionPolicy;
  compactAfterEntries: number;
  compactAfterBytes: number;
}

export interface AuthConfig {
  /** HS256 shared secret; null when not configured. */
  jwtSecret: string | null;
  /** Path of a JWKS file for RS256/ES256 tokens; null when not configured. */
  jwksFile: string | null;
  /** Allow binding beyond loopback without authentication. */
  insecure: boolean;
  /** Browser origins allowed to open WebSockets; empty = any. */
  allowedOrigins: string[];
  /** Origins whose pages may call the REST API (CORS); empty = none, "*" = any. */
  corsOrigins: string[];
  /** Proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client; empty = none. */
  trustedProxies: string[];
}

export interface LimitsConfig {
  /** Largest accepted WebSocket frame; larger ones close the socket with 1009. */
  maxMessageBytes: number;
  /** Ping interval; a peer that does not answer is dropped. */
  keepAliveMs: number;
  /** Hocuspocus' idle timeout. */
  timeoutMs: number;
  /** A connection that has not authenticated a document by then is closed (4508). */
  authTimeoutMs: number;
  /** Sustained messages per second per connection (beyond the burst the socket is paced, not closed); 0 = unlimited. */
  maxMessagesPerSecond: number;
  /** Messages a connection may send at once before the rate applies. */
  messageBurst: number;
  /** Open connections per client address (1013); 0 = unlimited. */
  maxConnectionsPerAddress: number;
  /** Documents open on one connection (1013); 0 = unlimited. */
  maxDocumentsPerConnection: number;
  /** Encoded size a document may reach; an update beyond it is refused (4413); 0 = unlimited. */
  maxDocumentBytes: number;
}

export interface ServeConfig {
  host: string;
  port: number;
  redis: string | null;
  instanceId: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  store: StoreConfig;
  auth: AuthConfig;
  limits: LimitsConfig;
  /** Folder of the built demo editor, served at /. */
  staticDir: string | null;
  webhooks: WebhookConfig;
}

export interface WebhookConfig {
  /** Endpoints every document change is posted to; empty = webhooks off. */
  urls: string[];
  /** The signing key (the base64-decoded `whsec_` secret); null when no URL is configured. */
  secret: Buffer | null;
  /** Changes to one document within this window go out as one event. */
  coalesceMs: number;
  /** An attempt that has no answer by then counts as failed. */
  timeoutMs: number;
  /** First retry after this long; each next one waits about twice as long (with jitter) … */
  retryBaseMs: number;
  /** … up to this long … */
  retryCapMs: number;
  /** … until this long has passed since the first attempt: then the event is dead-lettered. */
  retryTotalMs: number;
}

type Env = Record<string, string | undefined>;

interface FlagSpec {
  env?: string;
  help: string;
  default?: string;
  boolean?: boolean;
  /** May be given several times; the values are joined with commas (a comma list works too). */
  repeatable?: boolean;
}

/** Flags of `palimpsest serve`, with their environment fallbacks and defaults (also the --help text). */
export const serveFlags: Record<string, FlagSpec> = {
  host: { env: 'HOST', default: '127.0.0.1', help: 'Address to listen on' },
  port: { env: 'PORT', default: '1234', help: 'Port to listen on (0 = any free port)' },
  data: dataFlagSpec(),
  redis: { env: 'REDIS_URL', help: 'Redis URL; turns on fan-out between instances (off by default)' },
  'instance-id': { env: 'PALIMPSEST_INSTANCE_ID', help: 'Name of this instance in logs and log entries (default: generated)' },
  synchronous: { env: 'PALIMPSEST_SYNCHRONOUS', default: 'full', help: 'SQLite synchronous: full | normal | off | extra (see README)' },
  retention: { env: 'PALIMPSEST_RETENTION', default: 'all', help: "Log retention: all (keep the history) | snapshot (drop entries a snapshot covers)" },
  'compact-after-entries': { env: 'PALIMPSEST_COMPACT_AFTER_ENTRIES', default: '500', help: 'Snapshot a document after this many new entries (0 = never)' },
  'compact-after-bytes': { env: 'PALIMPSEST_COMPACT_AFTER_BYTES', default: '1048576', help: '… or after this many new bytes (0 = never)' },
  'max-message-bytes': { env: 'PALIMPSEST_MAX_MESSAGE_BYTES', default: '8388608', help: 'Largest WebSocket frame accepted' },
  'keep-alive-ms': { env: 'PALIMPSEST_KEEP_ALIVE_MS', default: '30000', help: 'WebSocket ping interval' },
  'timeout-ms': { env: 'PALIMPSEST_TIMEOUT_MS', default: '60000', help: 'Idle timeout of a connection' },
  'jwt-secret': { env: 'PALIMPSEST_JWT_SECRET', help: 'HS256 secret for client tokens' },
  'jwks-file': { env: 'PALIMPSEST_JWKS_FILE', help: 'JWKS file with RS256/ES256 public keys for client tokens' },
  insecure: { env: 'PALIMPSEST_INSECURE', boolean: true, help: 'Allow listening beyond loopback without authentication' },
  'allowed-origins': { env: 'PALIMPSEST_ALLOWED_ORIGINS', help: 'Comma-separated browser origins allowed to connect (default: any)' },
  'cors-origins': { env: 'PALIMPSEST_CORS_ORIGINS', help: 'Comma-separated origins whose pages may call /api (CORS), or * for any (default: none)' },
  'trusted-proxies': { env: 'PALIMPSEST_TRUSTED_PROXIES', help: 'Comma-separated proxy addresses/CIDR ranges whose X-Forwarded-For is believed (default: none)' },
  'auth-timeout-ms': { env: 'PALIMPSEST_AUTH_TIMEOUT_MS', default: '10000', help: 'Deadline for a new connection to authenticate (4508)' },
  'max-messages-per-second': { env: 'PALIMPSEST_MAX_MESSAGES_PER_SECOND', default: '2000', help: 'Messages per second per connection; a faster sender is slowed, not closed (0 = unlimited)' },
  'message-burst': { env: 'PALIMPSEST_MESSAGE_BURST', default: '5000', help: 'Messages a connection may send at once before the rate applies' },
  'max-connections-per-address': { env: 'PALIMPSEST_MAX_CONNECTIONS_PER_ADDRESS', default: '4096', help: 'Open connections per client address (1013; 0 = unlimited)' },
  'max-documents-per-connection': { env: 'PALIMPSEST_MAX_DOCUMENTS_PER_CONNECTION', default: '100', help: 'Documents open on one connection (1013; 0 = unlimited)' },
  'max-document-bytes': { env: 'PALIMPSEST_MAX_DOCUMENT_BYTES', default: '67108864', help: 'Encoded size a document may reach (4413; 0 = unlimited)' },
  'static-dir': { env: 'PALIMPSEST_STATIC_DIR', help: 'Folder of the demo editor served at / (default: the built one)' },
  'log-level': { env: 'LOG_LEVEL', default: 'info', help: 'fatal | error | warn | info | debug | trace | silent' },
  'webhook-url': { env: 'PALIMPSEST_WEBHOOK_URLS', repeatable: true, help: 'Endpoint to post document changes to (repeatable, or a comma list; default: none)' },
  'webhook-secret': { env: 'PALIMPSEST_WEBHOOK_SECRET', help: 'Signing secret of the webhooks, whsec_<base64> (needed with --webhook-url)' },
  'webhook-coalesce-ms': { env: 'PALIMPSEST_WEBHOOK_COALESCE_MS', default: '1000', help: 'Changes to one document within this window go out as one event' },
  'webhook-timeout-ms': { env: 'PALIMPSEST_WEBHOOK_TIMEOUT_MS', default: '15000', help: 'A webhook attempt with no answer by then counts as failed' },
  'webhook-retry-base-ms': { env: 'PALIMPSEST_WEBHOOK_RETRY_BASE_MS', default: '1000', help: 'Delay before the first retry; it about doubles each time' },
  'webhook-retry-cap-ms': { env: 'PALIMPSEST_WEBHOOK_RETRY_CAP_MS', default: '300000', help: 'Longest delay between two retries' },
  'webhook-retry-total-ms': { env: 'PALIMPSEST_WEBHOOK_RETRY_TOTAL_MS', default: '21600000', help: 'Retry for this long after the first attempt, then dead-letter the event' },
};

/** Where a setting's value came from: the command line, its environment variable, or the default. */
export type SettingOrigin = 'flag' | 'env' | 'default';

export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  origins: Record<string, SettingOrigin>;
}

/**
 * Parses `argv` (after the command name) against `flags`, filling in
 * environment values and defaults. Flags are `--name value`, `--name=value`
 * and, for booleans, `--name`; everything after `--` is positional. Our own
 * parser rather than node:util parseArgs so that every message names the flag
 * in this program's words (parseArgs' wording leaked through before) and a
 * value may start with a dash (`--at -1` is a bad seq, not a missing one).
 */
export function parseFlags(argv: string[], flags: Record<string, FlagSpec>, env: Env): ParsedFlags {
  const values: Record<string, string | boolean | undefined> = {};
  const origins: Record<string, SettingOrigin> = {};
  const positionals: string[] = [];
  const isKnownFlag = (arg: string) => arg.startsWith('--') && Object.hasOwn(flags, arg.slice(2).split('=')[0]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) {
      const hint = suggestion(arg.replace(/^-+/, ''), Object.keys(flags));
      throw new ConfigError(arg, `unknown flag; ${hint ?? 'flags are spelled --name (see --help)'}` +
        '; a document name that starts with "-" goes after --');
    }
    const equals = arg.indexOf('=');
    const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
    const inline = equals === -1 ? undefined : arg.slice(equals + 1);
    const spec = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (spec === undefined) {
      throw new ConfigError(`--${name}`, `unknown flag; ${suggestion(name, Object.keys(flags)) ?? 'see --help for the flags'}`);
    }
    if (spec.boolean === true) {
      values[name] = inline === undefined ? true : parseBoolean(`--${name}`, inline);
    } else if (inline !== undefined) {
      values[name] = spec.repeatable === true && typeof values[name] === 'string' ? `${values[name]},${inline}` : inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined || next === '--' || next.startsWith('--')) {
        throw new ConfigError(`--${name}`, `needs a value (--${name} <value>)` +
          (next !== undefined && !isKnownFlag(next) && next !== '--' ? `; to pass a value starting with "--", write --${name}=${next}` : ''));
      }
      values[name] = spec.repeatable === true && typeof values[name] === 'string' ? `${values[name]},${next}` : next;
      i++;
    }
    origins[name] = 'flag';
  }
  for (const [name, spec] of Object.entries(flags)) {
    if (values[name] !== undefined) continue;
    const fromEnv = spec.env === undefined ? undefined : env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      values[name] = spec.boolean === true ? parseBoolean(spec.env!, fromEnv) : fromEnv;
      origins[name] = 'env';
    } else if (spec.default !== undefined) {
      values[name] = spec.default;
      origins[name] = 'default';
    }
  }
  return { values, positionals, origins };
}

/**
 * How to name the setting `flag` (e.g. `--port`) in a message: the flag when
 * it was given on the command line, its environment variable when the value
 * came from there (the user may not know it is set). Never throws.
 */
export function settingLabel(flag: string, argv: string[], flags: Record<string, FlagSpec>, env: Env): string {
  const name = flag.startsWith('--') ? flag.slice(2) : null;
  const spec = name !== null && Object.hasOwn(flags, name) ? flags[name] : undefined;
  if (spec?.env === undefined) return flag;
  const onCommandLine = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length)
    .some((arg) => arg === flag || arg.startsWith(`${flag}=`));
  const fromEnv = env[spec.env];
  if (onCommandLine || fromEnv === undefined || fromEnv === '') return flag;
  return `${spec.env} (environment variable; --${name} overrides it)`;
}

/** "did you mean --limit?" for a mistyped flag; null when no flag is close. */
export function suggestion(typed: string, known: string[], prefix = '--'): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(typed.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const close = best !== null && (bestDistance <= Math.max(1, Math.floor(best.length / 3)) || best.startsWith(typed) && typed.length >= 2);
  return close ? `did you mean ${prefix}${best}?` : null;
}

/** Edits (insert, delete, replace, swap two neighbours) from a to b: `--jsno` is one swap from `--json`. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export function loadServeConfig(argv: string[], env: Env, defaults: { staticDir: string | null }): ServeConfig {
  const { values, positionals } = parseFlags(argv, serveFlags, env);
  if (positionals.length > 0) throw new ConfigError(positionals[0], 'serve takes no positional arguments');
  const str = (name: string) => values[name] as string | undefined;
  const config: ServeConfig = {
    host: nonEmpty('--host', str('host')),
    port: integer('--port', str('port'), 0, 65535),
    redis: str('redis') ?? null,
    instanceId: str('instance-id') ?? `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`,
    logLevel: oneOf('--log-level', str('log-level'), ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    store: {
      data: dataLocation(str('data')),
      synchronous: oneOf('--synchronous', str('synchronous')?.toLowerCase(), ['full', 'normal', 'off', 'extra'] as const),
      retention: oneOf('--retention', str('retention'), ['all', 'snapshot'] as const),
      compactAfterEntries: integer('--compact-after-entries', str('compact-after-entries'), 0, 1e9),
      compactAfterBytes: integer('--compact-after-bytes', str('compact-after-bytes'), 0, 2 ** 40),
    },
    auth: {
      jwtSecret: str('jwt-secret') ?? null,
      jwksFile: str('jwks-file') ?? null,
      insecure: values.insecure === true,
      allowedOrigins: list(str('allowed-origins')),
      corsOrigins: list(str('cors-origins')),
      trustedProxies: list(str('trusted-proxies')),
    },
    limits: {
      maxMessageBytes: integer('--max-message-bytes', str('max-message-bytes'), 1024, 2 ** 31),
      keepAliveMs: integer('--keep-alive-ms', str('keep-alive-ms'), 100, 3_600_000),
      timeoutMs: integer('--timeout-ms', str('timeout-ms'), 100, 3_600_000),
      authTimeoutMs: integer('--auth-timeout-ms', str('auth-timeout-ms'), 100, 3_600_000),
      maxMessagesPerSecond: integer('--max-messages-per-second', str('max-messages-per-second'), 0, 1e6),
      messageBurst: integer('--message-burst', str('message-burst'), 1, 1e7),
      maxConnectionsPerAddress: integer('--max-connections-per-address', str('max-connections-per-address'), 0, 1e6),
      maxDocumentsPerConnection: integer('--max-documents-per-connection', str('max-documents-per-connection'), 0, 1e5),
      maxDocumentBytes: integer('--max-document-bytes', str('max-document-bytes'), 0, 2 ** 40),
    },
    staticDir: str('static-dir') ?? defaults.staticDir,
    webhooks: webhookConfig(str),
  };
  if (config.redis !== null && !/^rediss?:\/\//.test(config.redis)) {
    throw new ConfigError('--redis', `expected a redis:// or rediss:// URL, got "${config.redis}"`);
  }
  if (config.auth.jwtSecret !== null && config.auth.jwtSecret.length < 32) {
    throw new ConfigError('--jwt-secret', 'use a secret of at least 32 characters');
  }
  for (const origin of config.auth.allowedOrigins) {
    if (!/^https?:\/\/[^/]+$/.test(origin)) {
      throw new ConfigError('--allowed-origins', `"${origin}" is not an origin like https://example.com (scheme and host, no path)`);
    }
  }
  for (const origin of config.auth.corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/]+$/.test(origin)) {
      throw new ConfigError('--cors-origins', `"${origin}" is not an origin like https://example.com (scheme and host, no path) or *`);
    }
  }
  if (config.auth.corsOrigins.includes('*') && config.auth.jwtSecret === null && config.auth.jwksFile === null) {
    throw new ConfigError('--cors-origins',
      '"*" needs --jwt-secret or --jwks-file: without tokens any website a person visits could read and restore the documents; list the origins instead');
  }
  try {
    parseTrustedProxies(config.auth.trustedProxies);
  } catch (error) {
    throw new ConfigError('--trusted-proxies', (error as Error).message);
  }
  if (!isLoopback(config.host) && config.auth.jwtSecret === null && config.auth.jwksFile === null && !config.auth.insecure) {
    throw new ConfigError('--host',
      `listening on ${config.host} without authentication would let anyone on the network read and edit every document; ` +
      'configure --jwt-secret or --jwks-file, or pass --insecure to accept that');
  }
  return config;
}

function webhookConfig(str: (name: string) => string | undefined): WebhookConfig {
  const urls = list(str('webhook-url'));
  for (const url of urls) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(url);
    } catch {
      parsed = null;
    }
    if (parsed === null || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new ConfigError('--webhook-url', `"${url}" is not an http:// or https:// URL`);
    }
  }
  const secretText = str('webhook-secret');
  let secret: Buffer | null = null;
  if (secretText !== undefined) {
    const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secretText);
    secret = match === null ? null : Buffer.from(match[1], 'base64');
    if (secret === null || secret.length < 16) {
      throw new ConfigError('--webhook-secret', 'expected whsec_ followed by the base64 of at least 16 random bytes (e.g. whsec_$(openssl rand -base64 32))');
    }
  }
  if (urls.length > 0 && secret === null) {
    throw new ConfigError('--webhook-secret', 'needed with --webhook-url: receivers verify each event\'s signature with it');
  }
  const config: WebhookConfig = {
    urls,
    secret,
    coalesceMs: integer('--webhook-coalesce-ms', str('webhook-coalesce-ms'), 0, 3_600_000),
    timeoutMs: integer('--webhook-timeout-ms', str('webhook-timeout-ms'), 100, 600_000),
    retryBaseMs: integer('--webhook-retry-base-ms', str('webhook-retry-base-ms'), 1, 3_600_000),
    retryCapMs: integer('--webhook-retry-cap-ms', str('webhook-retry-cap-ms'), 1, 86_400_000),
    retryTotalMs: integer('--webhook-retry-total-ms', str('webhook-retry-total-ms'), 0, 30 * 86_400_000),
  };
  if (config.retryCapMs < config.retryBaseMs) {
    throw new ConfigError('--webhook-retry-cap-ms', `must be at least --webhook-retry-base-ms (${config.retryBaseMs})`);
  }
  return config;
}

/** The --data flag, shared by serve and every other command. */
export function dataFlagSpec(): FlagSpec {
  return {
    env: 'PALIMPSEST_DATA', default: './data/palimpsest.db',
    help: 'Where the log and snapshots live: a SQLite file, or postgres://user:password@host:port/database[?sslmode=disable|prefer|require|verify-ca|verify-full]',
  };
}

/** Checks a --data value (or --from/--to): any non-empty path, or a well-formed PostgreSQL URL. */
export function dataLocation(value: string | undefined, flag = '--data'): string {
  const data = nonEmpty(flag, value);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(data)?.[1];
  if (scheme !== undefined && !isPostgresUrl(data)) {
    // A typo such as postgress:// must not quietly become a SQLite file under ./postgress:/.
    throw new ConfigError(flag, `${scheme}:// is not a store Palimpsest can use: give a SQLite file path or a postgres://user:password@host:port/database URL`);
  }
  if (isPostgresUrl(data)) {
    try {
      parsePostgresUrl(data);
    } catch (error) {
      throw new ConfigError(flag, (error as Error).message);
    }
  }
  return data;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function list(value: string | undefined): string[] {
  return (value ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry.length > 0);
}

function nonEmpty(flag: string, value: string | undefined): string {
  if (value === undefined || value.trim() === '') throw new ConfigError(flag, 'must not be empty');
  return value;
}

export function integer(flag: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined || !/^\d+$/.test(value.trim())) throw new ConfigError(flag, `expected a whole number, got "${value ?? ''}"`);
  const number = Number(value);
  if (number < min || number > max) throw new ConfigError(flag, `must be between ${min} and ${max}, got ${number}`);
  return number;
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T {
  if (value === undefined || !(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(flag, `expected one of ${allowed.join(', ')}, got "${value ?? ''}"`);
  }
  return value as T;
}

function parseBoolean(setting: string, value: string): boolean {
  if (['1', 'true', 'yes', 'on'].includes(value.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(value.toLowerCase())) return false;
  throw new ConfigError(setting, `expected true or false, got "${value}"`);
}
