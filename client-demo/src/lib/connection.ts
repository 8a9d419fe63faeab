// The link between one Y.Doc and a Palimpsest server: a Hocuspocus provider on
// its own websocket (so "work offline" can drop and restore the socket), the
// reconnect policy, and the connection states the status bar shows.

import { HocuspocusProvider, HocuspocusProviderWebsocket, WebSocketStatus } from '@hocuspocus/provider';
import type * as Y from 'yjs';

/**
 * What a person is told about the link; also the stable `data-state` value.
 * `new`: a document held back by `deferUntilFirstEdit`, no socket yet.
 */
export type ConnectionState = 'connected' | 'connecting' | 'offline' | 'new';

export interface ConnectionOptions {
  url: string;
  document: string;
  ydoc: Y.Doc;
  token?: string | undefined;
  /** Start without a socket; edits stay local (and in IndexedDB) until `goOnline()`. */
  offline?: boolean | undefined;
  /**
   * No socket while the Y.Doc is empty: the document is opened on the server
   * at its first change (or `openDocument()`).
   */
  deferUntilFirstEdit?: boolean | undefined;
}

export interface Connection {
  provider: HocuspocusProvider;
  socket: HocuspocusProviderWebsocket;
  readonly state: ConnectionState;
  readonly workingOffline: boolean;
  /** False while `deferUntilFirstEdit` keeps the document off the server. */
  readonly documentOpened: boolean;
  /** Opens the document on the server now (unless working offline); does nothing once it is open. */
  openDocument(): void;
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
  // Held back only while there is nothing to send: content restored before
  // this point (the unload backup) must reach the server like an edit.
  let documentOpened = !(options.deferUntilFirstEdit === true && options.ydoc.store.clients.size === 0);
  let state: ConnectionState = workingOffline ? 'offline' : documentOpened ? 'connecting' : 'new';
  const listeners = new Set<(state: ConnectionState) => void>();

  // A held-back document gets no socket at all, rather than an idle one: the
  // server closes a socket that authenticates no document within its
  // --auth-timeout-ms, and the provider would reconnect and be closed again.
  const socket = new HocuspocusProviderWebsocket({
    url: options.url,
    autoConnect: !workingOffline && documentOpened,
    ...RECONNECT,
  });

  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name: options.document,
    document: options.ydoc,
    token: options.token ?? null,
  });
  // A provider given its own websocket does not attach itself.
  if (documentOpened) provider.attach();

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

  const openDocument = (): void => {
    if (documentOpened) return;
    documentOpened = true;
    options.ydoc.off('update', ydocOnFirstUpdate);
    provider.attach();
    if (workingOffline) return;
    setState('connecting');
    void socket.connect();
  };
  // Any first change counts, whatever its origin: typing, and also a local
  // copy coming back from IndexedDB, which the server must then receive.
  const ydocOnFirstUpdate = (): void => openDocument();
  if (!documentOpened) options.ydoc.on('update', ydocOnFirstUpdate);

  return {
    provider,
    socket,
    get state() {
      return state;
    },
    get workingOffline() {
      return workingOffline;
    },
    get documentOpened() {
      return documentOpened;
    },
    openDocument,
    goOffline() {
      workingOffline = true;
      socket.disconnect();
      // disconnect() on a socket that never opened emits nothing.
      setState('offline', true);
    },
    goOnline() {
      workingOffline = false;
      if (!documentOpened) {
        setState('new', true);
        return;
      }
      setState('connecting', true);
      void socket.connect();
    },
    onStateChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    destroy() {
      listeners.clear();
      options.ydoc.off('update', ydocOnFirstUpdate);
      socket.off('status', socketOnStatus);
      provider.destroy();
      // The provider only tears down sockets it created itself.
      socket.destroy();
    },
  };
}
