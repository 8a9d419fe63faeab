// The store the server hands to everything that writes (the durable log, the
// REST writes, restores, repairs): each append that logged an entry is
// reported once it has committed. It is the one place every append of this
// server passes through, so what counts appends (metrics) and what wakes
// readers (the change feed) sees every entry, whichever path wrote it, and
// each one once.

import type { AppendResult, EventStore } from '../persistence/index.js';

/** Called once per append that logged an entry (result.seq is set), after its commit. */
export type AppendListener = (doc: string, result: AppendResult & { seq: number }) => void;

export function observeAppends<S extends EventStore>(store: S, listener: AppendListener): S {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'append') {
        return async (...args: Parameters<EventStore['append']>) => {
          const result = await target.append(...args);
          if (result.seq !== null) listener(args[0], result as AppendResult & { seq: number });
          return result;
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
