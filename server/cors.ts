// CORS for the REST API (/api/...), so a page on another origin (an embed)
// can read history and state with its bearer token. Off unless origins are
// listed with --cors-origins: a server without authentication (loopback) must
// not let any website a person visits read its documents. Tokens travel in
// the Authorization header, never in cookies, so credentials are never
// allowed and "*" is safe to list where every caller needs a token anyway.

import type { IncomingMessage, ServerResponse } from 'node:http';

/** Headers a cross-origin script may read from API answers besides the CORS-safe ones. */
const EXPOSED_HEADERS = 'allow, retry-after, www-authenticate, x-palimpsest-exists, x-palimpsest-seq';
/** Request headers a preflight may ask for. */
const ALLOWED_HEADERS = new Set(['authorization', 'content-type', 'last-event-id']);
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/** The Access-Control-Allow-Origin value for `origin`, or null when it is not listed. */
function allowedOrigin(origin: string | undefined, corsOrigins: string[]): string | null {
  if (origin === undefined || corsOrigins.length === 0) return null;
  if (corsOrigins.includes('*')) return '*';
  return corsOrigins.includes(origin) ? origin : null;
}

/**
 * Sets the CORS headers of an API answer (before the route writes it), or
 * answers a preflight in full. True when the request was a preflight and has
 * been answered: 204 for a listed origin, else 403 CORS_ORIGIN_REFUSED.
 */
export function applyCors(request: IncomingMessage, response: ServerResponse, corsOrigins: string[]): boolean {
  const origin = request.headers.origin;
  const allowed = allowedOrigin(origin, corsOrigins);
  const preflight = request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined;
  if (corsOrigins.length > 0 && !corsOrigins.includes('*')) response.setHeader('vary', 'Origin');
  if (!preflight) {
    if (allowed !== null) {
      response.setHeader('access-control-allow-origin', allowed);
      response.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
    }
    return false;
  }
  const method = String(request.headers['access-control-request-method']).toUpperCase();
  const asked = String(request.headers['access-control-request-headers'] ?? '').split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== '');
  const refusedHeader = asked.find((header) => !ALLOWED_HEADERS.has(header));
  let refusal: string | null = null;
  if (allowed === null) {
    refusal = corsOrigins.length === 0
      ? 'this server answers no cross-origin requests; list the origin with --cors-origins (PALIMPSEST_CORS_ORIGINS)'
      : `origin ${origin ?? '(none)'} is not in --cors-origins`;
  } else if (method !== 'GET' && method !== 'POST') {
    refusal = `method ${method} is not used by this API (GET and POST are)`;
  } else if (refusedHeader !== undefined) {
    refusal = `request header ${refusedHeader} is not accepted (${[...ALLOWED_HEADERS].join(', ')} are)`;
  }
  if (refusal !== null) {
    const body = JSON.stringify({ error: { code: 'CORS_ORIGIN_REFUSED', message: refusal } });
    response.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    response.end(body);
    return true;
  }
  response.writeHead(204, {
    'access-control-allow-origin': allowed!,
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': [...ALLOWED_HEADERS].join(', '),
    'access-control-max-age': String(PREFLIGHT_MAX_AGE_SECONDS),
  });
  response.end();
  return true;
}
