// The store the server hands to everything that writes (the durable log, the
// REST writes, restores, repairs): each append is reported as it settles. It
// is the one place every append of this server passes through, so what
// counts appends (metrics) and what wakes readers (the change feed) sees
// every one, whichever path wrote it, and each one once.

import { MalformedUpdateError, type AppendResult, type EventStore } from '../persistence/index.js';

export interface AppendObserver {
  /** An append that logged an entry (result.seq is set), after its commit. */
  logged(doc: string, result: AppendResult & { seq: number }): void;
  /** An append the log already held: nothing was written. */
  skipped(doc: string): void;
  /** An append that could not be written (not one refused as malformed). */
  failed(doc: string, error: Error): void;
}

export function observeAppends<S extends EventStore>(store: S, observer: AppendObserver): S {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'append') {
        return async (...args: Parameters<EventStore['append']>) => {
          let result: AppendResult;
          try {
            result = await target.append(...args);
          } catch (error) {
            if (!(error instanceof MalformedUpdateError)) observer.failed(args[0], error as Error);
            throw error;
          }
          if (result.seq !== null) observer.logged(args[0], result as AppendResult & { seq: number });
          else observer.skipped(args[0]);
          return result;
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
