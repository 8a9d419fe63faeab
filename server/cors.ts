// CORS for the REST API (/api/...), so a page on another origin (an embed)
// can read history and state with its bearer token. Off unless origins are
// listed with --cors-origins: a server without authentication (loopback) must
// not let any website a person visits read its documents, nor change them: a
// POST from a page on an unlisted origin is refused outright, since some POSTs
// need no preflight (api.ts also takes JSON only as application/json, which
// does). Tokens travel in the Authorization header, never in cookies, so
// credentials are never allowed and "*" is safe to list where every caller
// needs a token anyway.

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

/** Every method but the reading ones (and a preflight's OPTIONS) may change something. */
function changesState(method: string | undefined): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes((method ?? 'GET').toUpperCase());
}

/** True when `origin` names the host the request was sent to (the demo editor served by this server). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false; // "null" (a sandboxed frame, a file) and anything unparsable
  }
}

function refuse(response: ServerResponse, message: string): void {
  const body = JSON.stringify({ error: { code: 'CORS_ORIGIN_REFUSED', message } });
  response.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

/**
 * Sets the CORS headers of an API answer (before the route writes it), or
 * answers a preflight in full. True when the request has been answered: a
 * preflight (204 for a listed origin, else 403 CORS_ORIGIN_REFUSED), or a
 * request that may change state (POST) from a page on another origin that is
 * not listed (403 CORS_ORIGIN_REFUSED). A request without an Origin header
 * (curl, a server, a same-origin GET) is not a browser page's and passes.
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
    } else if (changesState(request.method) && origin !== undefined && !sameOrigin(origin, request.headers.host)) {
      // A browser sends some cross-site POSTs without a preflight (a form, or
      // fetch with mode "no-cors" and a text/plain body); without this check
      // a page on any site could restore or compact a document on a server
      // without authentication. Browsers send Origin on every such request.
      refuse(response, corsOrigins.length === 0
        ? `a page on ${origin} may not change documents here; this server answers no cross-origin requests (list the origin with --cors-origins, PALIMPSEST_CORS_ORIGINS)`
        : `a page on ${origin} may not change documents here; it is not in --cors-origins`);
      return true;
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
    refuse(response, refusal);
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
