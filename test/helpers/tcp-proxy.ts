// A TCP proxy in front of a server, for tests of a network cut: clients
// connect to the proxy's port, each connection is piped to the target.
// cut() breaks the path: every open connection is destroyed (both sides), and
// new ones are refused (closed at once) or held (accepted, then never
// answered, as a black hole would); or, in 'stall' mode, open connections
// stay open but carry nothing either way (a silent cut: no reset reaches
// anyone) and new ones are held. heal() forwards again: stalled connections
// resume with what was sent meanwhile (as TCP retransmits after a partition),
// connections held meanwhile are dropped (their clients gave up on them).
// Teardown is registered on the test context that started it.

import { createConnection, createServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

export type CutMode = 'refuse' | 'hold' | 'stall';

export interface TcpProxy {
  port: number;
  /** Connections piped to the target right now. */
  open(): number;
  /** Connections accepted and held since the cut. */
  held(): number;
  /** Connections accepted since the start, cut or not. */
  accepted(): number;
  /**
   * Held connections their client gave up on (closed while held: its connect
   * time-out fired), counting only those accepted after the `since`-th
   * connection (a value of accepted()).
   */
  abandoned(since?: number): number;
  cut(mode: CutMode): void;
  heal(): void;
}

export async function startTcpProxy(t: Pick<TestContext, 'after'>, target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const holding = new Set<Socket>();
  let cutMode: CutMode | null = null;
  let accepted = 0;
  /** The number (in accept order) of each held connection its client closed. */
  const abandoned: number[] = [];

  const server = createServer((client) => {
    accepted += 1;
    // Errors are expected here (the cut destroys sockets mid-stream); the close that follows cleans up.
    client.on('error', () => undefined);
    if (cutMode === 'refuse') {
      client.destroy();
      return;
    }
    if (cutMode === 'hold' || cutMode === 'stall') {
      holding.add(client);
      // Read and dropped, never answered: read, so that the client closing its end is seen.
      client.on('data', () => undefined);
      const number = accepted;
      // Still held when it closes: its client closed it (heal() and teardown take it out first).
      client.on('close', () => {
        if (holding.delete(client)) abandoned.push(number);
      });
      return;
    }
    const upstream = createConnection(target);
    upstream.on('error', () => undefined);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
    if (cutMode === null) {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };

  const dropHeld = () => {
    const dropping = [...holding];
    holding.clear();
    for (const socket of dropping) socket.destroy();
  };
  t.after(async () => {
    cutMode = 'refuse';
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
    dropHeld();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  return {
    port,
    open: () => pairs.size,
    held: () => holding.size,
    accepted: () => accepted,
    abandoned: (since = 0) => abandoned.filter((number) => number > since).length,
    cut(mode) {
      cutMode = mode;
      for (const { client, upstream } of [...pairs]) {
        if (mode === 'stall') {
          // Nothing read, so nothing forwarded; what arrives stays in the socket buffers.
          client.unpipe(upstream);
          upstream.unpipe(client);
          client.pause();
          upstream.pause();
        } else {
          client.destroy();
          upstream.destroy();
        }
      }
    },
    heal() {
      const stalled = cutMode === 'stall';
      cutMode = null;
      dropHeld();
      if (stalled) {
        for (const { client, upstream } of pairs) {
          client.pipe(upstream);
          upstream.pipe(client);
        }
      }
    },
  };
}
