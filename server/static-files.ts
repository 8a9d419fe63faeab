// Serves the built demo editor (dist/client-demo) at / and the embeddable
// library (dist/client-demo-lib) at /lib/. Read-only, no directory listings,
// no path can leave the two folders.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

export interface StaticMount {
  /** URL prefix, ending in '/'. */
  prefix: string;
  dir: string;
  /** File served for the bare prefix. */
  index?: string;
  /** Let pages of any origin load these files (the embeddable library). */
  crossOrigin?: boolean;
}

/** Serves the request from one of `mounts`; resolves false when no file matches. */
export async function serveStatic(request: IncomingMessage, response: ServerResponse, pathname: string, mounts: StaticMount[]): Promise<boolean> {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  for (const mount of mounts) {
    if (!pathname.startsWith(mount.prefix)) continue;
    let relative = decodeURIComponentSafe(pathname.slice(mount.prefix.length));
    if (relative === null) return false;
    if (relative === '' && mount.index !== undefined) relative = mount.index;
    const root = resolve(mount.dir);
    const file = resolve(root, normalize(join('.', relative)));
    if (file !== root && !file.startsWith(root + sep)) return false;
    let info;
    try {
      info = await stat(file);
    } catch {
      continue;
    }
    if (!info.isFile()) continue;
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': info.size,
      // Vite names assets by content hash; everything else must revalidate.
      'cache-control': relative.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      ...(mount.crossOrigin === true ? { 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' } : {}),
    });
    if (request.method === 'HEAD') {
      response.end();
      return true;
    }
    // A file removed between stat and read (a rebuild) ends this response, not the process.
    pipeline(createReadStream(file), response, () => undefined);
    return true;
  }
  return false;
}

function decodeURIComponentSafe(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}
