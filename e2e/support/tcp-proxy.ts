// A TCP proxy between one browser and the server, so a test can cut the
// network for real. (Chromium's context.setOffline() leaves open WebSockets
// alone.) While severed, open connections are destroyed and new ones are
// accepted and dropped at once, as a peer that vanished would look.

import { createConnection, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** ws://127.0.0.1:<proxy port>/ */
  ws: string;
  /** Drops every open connection and refuses new ones until `restore()`. */
  sever(): void;
  restore(): void;
  /** Connections currently passed through. */
  readonly open: number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let severed = false;
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((client) => {
    if (severed) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const teardown = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // Errors here are the expected ends of a connection (reset, refused while
    // the server restarts); either way both halves go.
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const dropAll = () => {
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    ws: `ws://127.0.0.1:${port}/`,
    sever() {
      severed = true;
      dropAll();
    },
    restore() {
      severed = false;
    },
    get open() {
      return pairs.size;
    },
    async close() {
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
