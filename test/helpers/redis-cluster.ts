// Several `palimpsest serve` processes sharing one SQLite file and one Redis,
// as a scaled-out deployment on one host runs them (or one PostgreSQL, as on
// several hosts), plus what the multi-instance tests do and read back: seeded
// edits, the log of a document checked against the clients, readiness.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import * as prng from 'lib0/prng';
import * as Y from 'yjs';
import { openEventStore, type LogEntry } from '../../persistence/index.js';
import type { TestClient } from './clients.js';
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

/** One seeded edit of a client's `text`: mostly an insert naming the client, sometimes a short delete. */
export function randomEdit(rng: prng.PRNG, doc: Y.Doc, name: string, counter: number): void {
  const text = doc.getText('text');
  doc.transact(() => {
    if (prng.uint32(rng, 0, 9) < 7 || text.length < 4) text.insert(prng.uint32(rng, 0, text.length), `${name}${counter}${prng.word(rng, 1, 3)} `);
    else {
      const index = prng.uint32(rng, 0, text.length - 2);
      text.delete(index, prng.uint32(rng, 1, Math.min(4, text.length - index)));
    }
  });
}

/**
 * Checks the log of `documentName` against converged clients: no entry repeats
 * another, seqs have no gaps, it replays to the live text, and it holds
 * everything each client made. Returns the number of entries.
 */
export async function assertLogMatches(data: string, documentName: string, clients: TestClient[]): Promise<number> {
  const entries = await logEntries(data, documentName);
  const { doc: rebuilt, redundant } = replayLog(entries);
  assert.deepEqual(redundant, [], 'no log entry repeats what was already logged');
  assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => i + 1), 'gap-free seqs');
  const text = clients[0].doc.getText('text').toString();
  assert.equal(rebuilt.getText('text').toString(), text, 'replaying the log gives the live text');
  for (const client of clients) {
    assert.ok(Y.snapshotContainsUpdate(Y.snapshot(rebuilt), Y.encodeStateAsUpdate(client.doc)), `the log holds everything ${client.kind} made`);
  }
  return entries.length;
}
