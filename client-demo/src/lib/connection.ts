// The link between one Y.Doc and a Palimpsest server: a Hocuspocus provider on
// its own websocket (so "work offline" can drop and restore the socket), the
// reconnect policy, and the three connection states the status bar shows.

import { HocuspocusProvider, HocuspocusProviderWebsocket, WebSocketStatus } from '@hocuspocus/provider';
import type * as Y from 'yjs';

/** What a person is told about the link; also the stable `data-state` value. */
export type ConnectionState = 'connected' | 'connecting' | 'offline';

export interface ConnectionOptions {
  url: string;
  document: string;
  ydoc: Y.Doc;
  token?: string | undefined;
  /** Start without a socket; edits stay local (and in IndexedDB) until `goOnline()`. */
  offline?: boolean | undefined;
}

export interface Connection {
  provider: HocuspocusProvider;
  socket: HocuspocusProviderWebsocket;
  readonly state: ConnectionState;
  readonly workingOffline: boolean;
  goOffline(): void;
  goOnline(): void;
  onStateChange(listener: (state: ConnectionState) => void): () => void;
  destroy(): void;
}

// Reconnect policy. Exponential backoff (0.5 s, 1 s, 2 s … capped at 15 s) with
// full jitter between minDelay and the current step, so that when a server
// restarts, its clients do not all come back in the same millisecond.
// Retrying never stops (maxAttempts 0): an editor that gives up silently
// would leave edits stranded in IndexedDB.
const RECONNECT = {
  initialDelay: 0,
  delay: 500,
  factor: 2,
  minDelay: 250,
  maxDelay: 15_000,
  jitter: true,
  maxAttempts: 0,
} as const;

/** The default server address: the origin the page came from (the server serves the demo itself). */
export function defaultServerUrl(location: Location = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // Under `vite` dev the page origin is the dev server, which forwards /collab
  // to a Palimpsest server (see vite.config.ts); the path itself means nothing
  // to Palimpsest, which speaks Hocuspocus on every path except /yjs/….
  const path = import.meta.env.DEV ? '/collab' : '/';
  return `${scheme}//${location.host}${path}`;
}

export function openConnection(options: ConnectionOptions): Connection {
  let workingOffline = options.offline === true;
  let state: ConnectionState = workingOffline ? 'offline' : 'connecting';
  const listeners = new Set<(state: ConnectionState) => void>();

  const socket = new HocuspocusProviderWebsocket({
    url: options.url,
    autoConnect: !workingOffline,
    ...RECONNECT,
  });

  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name: options.document,
    document: options.ydoc,
    token: options.token ?? null,
  });
  // A provider given its own websocket does not attach itself.
  provider.attach();

  // `force` re-announces an unchanged state when only `workingOffline` flipped,
  // so the switch in the status bar follows API calls as well as clicks.
  const setState = (next: ConnectionState, force = false): void => {
    if (next === state && !force) return;
    state = next;
    for (const listener of listeners) listener(state);
  };

  // Between two reconnect attempts the socket reports "disconnected"; we call
  // that offline too, because that is what it is for the person typing: their
  // edits are kept locally and will be sent once a socket opens.
  const socketOnStatus = ({ status }: { status: WebSocketStatus }): void => {
    if (status === WebSocketStatus.Connected) setState('connected');
    else if (status === WebSocketStatus.Connecting && !workingOffline) setState('connecting');
    else setState('offline');
  };
  socket.on('status', socketOnStatus);

  return {
    provider,
    socket,
    get state() {
      return state;
    },
    get workingOffline() {
      return workingOffline;
    },
    goOffline() {
      workingOffline = true;
      socket.disconnect();
      // disconnect() on a socket that never opened emits nothing.
      setState('offline', true);
    },
    goOnline() {
      workingOffline = false;
      setState('connecting', true);
      void socket.connect();
    },
    onStateChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    destroy() {
      listeners.clear();
      socket.off('status', socketOnStatus);
      provider.destroy();
      // The provider only tears down sockets it created itself.
      socket.destroy();
    },
  };
}
