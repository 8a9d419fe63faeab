// Signed client tokens for tests: HS256 with a shared secret and ES256 with a
// key pair whose public half is written as a JWKS file, as operators would.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';

export interface TokenClaims {
  sub: string;
  name?: string;
  docs?: Record<string, string>;
  /** Seconds from now; negative for an expired token; omitted: one hour. */
  expiresIn?: number;
}

export async function hs256Token(claims: TokenClaims, secret = TEST_SECRET): Promise<string> {
  return sign(claims, new TextEncoder().encode(secret), { alg: 'HS256' });
}

export interface Es256Issuer {
  jwksFile: string;
  token(claims: TokenClaims): Promise<string>;
}

/** A fresh ES256 key pair; the public key goes to `<dir>/jwks.json`. */
export async function es256Issuer(dir: string): Promise<Es256Issuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test-es256', alg: 'ES256', use: 'sig' };
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  return { jwksFile, token: (claims) => sign(claims, privateKey, { alg: 'ES256', kid: 'test-es256' }) };
}

async function sign(claims: TokenClaims, key: Uint8Array | CryptoKey, header: { alg: string; kid?: string }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ name: claims.name, docs: claims.docs })
    .setProtectedHeader(header)
    .setSubject(claims.sub)
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (claims.expiresIn ?? 3600));
  return jwt.sign(key);
}
