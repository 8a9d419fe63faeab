// A plain static web server for a folder of pages, on its own port, as a
// product team's site would be. With `passLibraryTo`, it forwards /lib/ to a
// Palimpsest server, so its pages load the library from their own origin.

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

export interface StaticSite {
  origin: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };

export async function serveFolder(dir: string, options: { passLibraryTo?: string } = {}): Promise<StaticSite> {
  const server = createServer((request, response) => {
    const pathname = new URL(request.url ?? '/', 'http://site').pathname;
    if (options.passLibraryTo !== undefined && pathname.startsWith('/lib/')) {
      const upstream = httpRequest(new URL(pathname, options.passLibraryTo), (reply) => {
        response.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(response);
      });
      upstream.on('error', (error) => response.writeHead(502).end(String(error)));
      upstream.end();
      return;
    }
    const file = join(dir, normalize(decodeURIComponent(pathname)));
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    // "localhost", not 127.0.0.1: an origin other than the Palimpsest server's.
    origin: `http://localhost:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
