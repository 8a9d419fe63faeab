// Several `palimpsest serve` processes sharing one SQLite file and one Redis,
// as a scaled-out deployment on one host runs them, plus what the Redis tests
// read back: the log of a document and the readiness of an instance.

import type { TestContext } from 'node:test';
import * as Y from 'yjs';
import { openEventStore, type LogEntry } from '../../persistence/index.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

export async function startInstances(
  t: Pick<TestContext, 'after'>, options: { data: string; redis: string; names: string[]; args?: string[] },
): Promise<ServerProcess[]> {
  return Promise.all(options.names.map((name) => startServerProcess(t, [
    '--data', options.data, '--redis', options.redis, '--instance-id', name, ...(options.args ?? []),
  ])));
}

/** Every log entry of `doc`, oldest first, read from the shared file while the instances run. */
export async function logEntries(data: string, doc: string): Promise<LogEntry[]> {
  const store = openEventStore({ path: data, readonly: true, compactAfterEntries: 0, compactAfterBytes: 0 });
  try {
    return await store.entries(doc);
  } finally {
    await store.close();
  }
}

/**
 * Replays the log into a fresh document. Also returns how many entries were
 * redundant, i.e. held nothing the entries before them had not already
 * logged: a duplicate append would show up there.
 */
export function replayLog(entries: LogEntry[]): { doc: Y.Doc; redundant: string[] } {
  const doc = new Y.Doc();
  const redundant: string[] = [];
  for (const entry of entries) {
    if (Y.snapshotContainsUpdate(Y.snapshot(doc), entry.update)) {
      redundant.push(`seq ${entry.seq} by ${entry.instanceId} (${entry.size} bytes): ${JSON.stringify(Y.decodeUpdate(entry.update))}`);
    }
    Y.applyUpdate(doc, entry.update);
  }
  return { doc, redundant };
}

export async function readiness(server: ServerProcess): Promise<{ status: number; body: { problems: Array<{ check: string; problem: string }> } }> {
  const response = await fetch(`${server.http}/readyz`);
  return { status: response.status, body: await response.json() as { problems: Array<{ check: string; problem: string }> } };
}

export function hasLogLine(server: ServerProcess, msg: string): boolean {
  return server.logs.some((line) => line.msg === msg);
}
