// Client tokens: JWTs verified with jose, either HS256 with a shared secret
// (--jwt-secret) or RS256/ES256 against a local JWKS file of public keys
// (--jwks-file). A verified token becomes a Grant: the user recorded in log
// entries (`sub`, display name `name`) and the per-document permissions of its
// `docs` claim (permissions.ts). Built once at start by createTokenVerifier;
// security.ts asks it on every WebSocket authentication and every API call.

import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { ConfigError } from './config.js';
import type { ConnectionUser } from './context.js';
import { parsePermissionClaim, PermissionClaimError, type PermissionRule } from './permissions.js';

export interface Grant {
  user: ConnectionUser;
  rules: PermissionRule[];
  /** Milliseconds since the epoch, or null for a token without `exp`. */
  expiresAt: number | null;
}

export type AuthErrorCode = 'TOKEN_MISSING' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'TOKEN_CLAIMS_INVALID';

/** A token that does not authenticate anyone; always answered with 4401 / HTTP 401. */
export class AuthError extends Error {
  constructor(readonly code: AuthErrorCode, message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface TokenVerifier {
  verify(token: string): Promise<Grant>;
}

/** Longer tokens are refused before any parsing; real ones are a few hundred bytes. */
const MAX_TOKEN_LENGTH = 16 * 1024;
/** Tolerated clock difference between the token issuer and this server. */
const CLOCK_TOLERANCE_SECONDS = 5;
const JWKS_ALGORITHMS = ['RS256', 'ES256'];

/** Reads and checks the --jwks-file; a bad file fails at start (exit 2) naming the flag. */
export async function loadJwksFile(path: string): Promise<JSONWebKeySet> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError('--jwks-file', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let jwks: unknown;
  try {
    jwks = JSON.parse(text);
  } catch {
    throw new ConfigError('--jwks-file', `${path} is not valid JSON`);
  }
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new ConfigError('--jwks-file', `${path} must be a JWKS document: {"keys": [<public JWK>, …]}`);
  }
  for (const key of keys as Array<Record<string, unknown>>) {
    if (typeof key !== 'object' || key === null || typeof key.kty !== 'string') {
      throw new ConfigError('--jwks-file', `${path}: every key needs a "kty"`);
    }
    if ('d' in key) throw new ConfigError('--jwks-file', `${path} holds a private key ("d"); give the server public keys only`);
  }
  return jwks as JSONWebKeySet;
}

/** Null when neither a secret nor a JWKS is configured (no authentication). */
export function createTokenVerifier(options: { jwtSecret: string | null; jwks: JSONWebKeySet | null }): TokenVerifier | null {
  const secret = options.jwtSecret === null ? null : new TextEncoder().encode(options.jwtSecret);
  const jwks = options.jwks === null ? null : createLocalJWKSet(options.jwks);
  if (secret === null && jwks === null) return null;

  return {
    async verify(token: string): Promise<Grant> {
      if (token.length === 0) throw new AuthError('TOKEN_MISSING', 'no token was presented');
      if (token.length > MAX_TOKEN_LENGTH) throw new AuthError('TOKEN_INVALID', `the token is longer than ${MAX_TOKEN_LENGTH} characters`);
      let algorithm: string | undefined;
      try {
        algorithm = decodeProtectedHeader(token).alg;
      } catch {
        throw new AuthError('TOKEN_INVALID', 'the token is not a JWT');
      }
      let payload: JWTPayload;
      try {
        if (algorithm === 'HS256' && secret !== null) {
          ({ payload } = await jwtVerify(token, secret, { algorithms: ['HS256'], clockTolerance: CLOCK_TOLERANCE_SECONDS }));
        } else if (algorithm !== undefined && JWKS_ALGORITHMS.includes(algorithm) && jwks !== null) {
          ({ payload } = await jwtVerify(token, jwks, { algorithms: JWKS_ALGORITHMS, clockTolerance: CLOCK_TOLERANCE_SECONDS }));
        } else {
          throw new AuthError('TOKEN_INVALID', `tokens signed with ${algorithm ?? 'no algorithm'} are not accepted here`);
        }
      } catch (error) {
        if (error instanceof AuthError) throw error;
        const code = (error as { code?: string }).code;
        if (code === 'ERR_JWT_EXPIRED') throw new AuthError('TOKEN_EXPIRED', 'the token has expired');
        throw new AuthError('TOKEN_INVALID', `the token does not verify (${code ?? (error as Error).message})`);
      }
      return grantFromClaims(payload);
    },
  };
}

function grantFromClaims(payload: JWTPayload): Grant {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256) {
    throw new AuthError('TOKEN_CLAIMS_INVALID', 'the token needs a "sub" claim of 1-256 characters (the user id)');
  }
  const name = typeof payload.name === 'string' && payload.name.length <= 256 ? payload.name : null;
  let rules: PermissionRule[];
  try {
    rules = parsePermissionClaim(payload.docs);
  } catch (error) {
    if (error instanceof PermissionClaimError) throw new AuthError('TOKEN_CLAIMS_INVALID', error.message);
    throw error;
  }
  return { user: { id: payload.sub, name }, rules, expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null };
}

/** The token of an `Authorization: Bearer <token>` header, or '' when there is none. */
export function bearerToken(header: string | undefined): string {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1] ?? '';
}
