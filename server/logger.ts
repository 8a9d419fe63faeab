// JSON logs, one line per event (pino), to stdout. Every line carries the
// instance id so lines from several instances can be merged.

import { format } from 'node:util';
import { pino, type Logger } from 'pino';
import { CloseCodes, ConnectionRefusal } from './close-codes.js';

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
 *
 * A ConnectionRefusal is logged (and counted) where it is made, with the
 * document and socket it concerns. Hocuspocus repeats it on the console once
 * per extension left in the hook chain it failed (`[beforeSync] <message>`)
 * and once more as it closes the connection: those echoes are dropped, so
 * one refused frame is one log line.
 */
export function routeConsoleToLogger(logger: Logger): void {
  const child = logger.child({ source: 'hocuspocus' });
  console.error = (...args: unknown[]) => {
    if (!echoesRefusal(args)) child.warn(format(...args.map(compactError)));
  };
  console.warn = (...args: unknown[]) => {
    if (!echoesRefusal(args)) child.warn(format(...args.map(compactError)));
  };
  console.log = (...args: unknown[]) => child.info(format(...args));
}

const refusalPrefixes = Object.values(CloseCodes).map((close) => `${close.reason}: `);

/**
 * Whether a console call only repeats a refusal already logged: it carries the
 * ConnectionRefusal itself, or it is Hocuspocus' hook-chain report
 * `console.error('[<hook>]', error.message)` of one (whose message is
 * `<close reason>: <detail>`).
 */
function echoesRefusal(args: unknown[]): boolean {
  if (args.some((arg) => arg instanceof ConnectionRefusal)) return true;
  if (args.length !== 2 || typeof args[0] !== 'string' || typeof args[1] !== 'string') return false;
  const message = args[1];
  return /^\[[A-Za-z]+\]$/.test(args[0]) && refusalPrefixes.some((prefix) => message.startsWith(prefix));
}

function compactError(value: unknown): unknown {
  return value instanceof Error ? `${value.name}: ${value.message}` : value;
}
