// Real clients for tests: @hocuspocus/provider and stock y-websocket, both on
// the `ws` package. Each returns its Y.Doc and a destroy registered on `t`.

import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { waitFor } from './wait.js';

/**
 * `ws` throws when a socket with no 'error' listener is closed while still
 * connecting, which random disconnects do; the close event reports it anyway.
 */
class TestWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on('error', () => undefined);
  }
}

export interface TestClient {
  kind: 'hocuspocus' | 'y-websocket';
  doc: Y.Doc;
  documentName: string;
  /** True when connected and the server holds everything this client sent. */
  settled(): boolean;
  /** Connection details for failure messages. */
  describe(): string;
  connect(): void;
  disconnect(): void;
  destroy(): void;
}

export function hocuspocusClient(
  t: Pick<TestContext, 'after'>, url: string, documentName: string,
  options: { token?: string | (() => Promise<string>); doc?: Y.Doc } = {},
): TestClient & { provider: HocuspocusProvider } {
  const doc = options.doc ?? new Y.Doc();
  const socket = new HocuspocusProviderWebsocket({
    url, WebSocketPolyfill: TestWebSocket as unknown as typeof globalThis.WebSocket,
    delay: 50, factor: 1.5, maxDelay: 500, minDelay: 20, jitter: true, maxAttempts: 0,
  });
  const provider = new HocuspocusProvider({ websocketProvider: socket, name: documentName, document: doc, token: options.token ?? '' });
  provider.attach();
  const client = {
    kind: 'hocuspocus' as const, doc, documentName, provider,
    settled: () => provider.isSynced && provider.unsyncedChanges === 0 && socket.status === 'connected',
    describe: () => `status=${socket.status} synced=${provider.isSynced} unsynced=${provider.unsyncedChanges}`,
    // The provider ignores connect() until a closing socket has closed.
    connect: () => {
      if (socket.status === 'connected' && !socket.shouldConnect) {
        const reconnect = () => {
          socket.off('disconnect', reconnect);
          void socket.connect();
        };
        socket.on('disconnect', reconnect);
      } else {
        void socket.connect();
      }
    },
    disconnect: () => socket.disconnect(),
    destroy: () => {
      provider.destroy();
      socket.destroy();
    },
  };
  t.after(() => client.destroy());
  return client;
}

export function yWebsocketClient(
  t: Pick<TestContext, 'after'>, url: string, documentName: string,
  /** `disableBc`: no BroadcastChannel, over which clients of one document in one process would otherwise reach each other without the server. */
  /** `unencodedName`: the name in the URL as it is, as stock y-websocket puts it there (":" and "/" included). */
  options: { token?: string; doc?: Y.Doc; disableBc?: boolean; unencodedName?: boolean } = {},
): TestClient & { provider: WebsocketProvider } {
  const doc = options.doc ?? new Y.Doc();
  const provider = new WebsocketProvider(`${url}/yjs`, options.unencodedName === true ? documentName : encodeURIComponent(documentName), doc, {
    WebSocketPolyfill: TestWebSocket as unknown as typeof globalThis.WebSocket,
    params: options.token === undefined ? {} : { token: options.token },
    maxBackoffTime: 500,
    disableBc: options.disableBc ?? false,
  });
  const client = {
    kind: 'y-websocket' as const, doc, documentName, provider,
    // y-websocket has no acknowledgement; "settled" is judged against the server by the tests.
    settled: () => provider.synced && provider.wsconnected,
    describe: () => `connected=${provider.wsconnected} synced=${provider.synced} shouldConnect=${provider.shouldConnect}`,
    connect: () => provider.connect(),
    disconnect: () => provider.disconnect(),
    destroy: () => {
      provider.destroy();
      // The provider's Awareness keeps an interval (and node) alive until it is destroyed too.
      provider.awareness.destroy();
    },
  };
  t.after(() => client.destroy());
  return client;
}

export async function waitSettled(clients: TestClient[], timeoutMs = 20_000): Promise<void> {
  await waitFor(() => clients.every((c) => c.settled()), { timeoutMs, message: 'clients settled' }).catch((error: Error) => {
    throw new Error(`${error.message}: ${clients.map((c) => `${c.kind}(${c.documentName}) ${c.describe()}`).join('; ')}`);
  });
}

/**
 * Waits until every doc holds the same items and the same deletions. The
 * state vector alone is not enough: a change that only deletes leaves it as
 * it was, and may still be on its way to some of the docs.
 */
export async function waitConverged(docs: Y.Doc[], timeoutMs = 20_000): Promise<void> {
  await waitFor(() => {
    const first = Y.snapshot(docs[0]);
    return docs.every((d) => Y.equalSnapshots(Y.snapshot(d), first));
  }, { timeoutMs, message: 'documents converged' });
}
