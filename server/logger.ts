// JSON logs, one line per event (pino), to stdout. Every line carries the
// instance id so lines from several instances can be merged.

import { format } from 'node:util';
import { pino, type Logger } from 'pino';

export function createLogger(options: { level: string; instanceId: string }): Logger {
  return pino({
    level: options.level,
    base: { instanceId: options.instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/**
 * Hocuspocus reports some events with console.error/warn; route them into the
 * JSON log so stdout and stderr stay machine-readable.
 */
export function routeConsoleToLogger(logger: Logger): void {
  const child = logger.child({ source: 'hocuspocus' });
  console.error = (...args: unknown[]) => child.warn(format(...args.map(compactError)));
  console.warn = (...args: unknown[]) => child.warn(format(...args.map(compactError)));
  console.log = (...args: unknown[]) => child.info(format(...args));
}

function compactError(value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message}` : value;
}
