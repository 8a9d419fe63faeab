// The command line with --data set to a PostgreSQL URL: every command reads
// and writes the database as it does a SQLite file, and a database that
// cannot be used ends the command with exit 1 and one line naming the host
// and the cause; a malformed URL is a usage error (exit 2) naming --data.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { freePort, runCli } from './helpers/cli.js';
import { postgresForSuite } from './helpers/postgres-process.js';

/** One line, no stack trace. */
function assertOneLine(stderr: string): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got: ${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

describe('palimpsest commands on PostgreSQL', () => {
  const postgres = postgresForSuite();

  test('history, export, compact and verify work on a postgres:// URL as on a file', async () => {
    const url = await postgres().createDatabase();
    const store = openEventStore({ data: url, compactAfterEntries: 0 });
    await store.opened();
    const doc = new Y.Doc();
    const updates: Uint8Array[] = [];
    doc.on('update', (u: Uint8Array) => updates.push(u));
    doc.getText('text').insert(0, 'hello');
    doc.getText('text').insert(5, ' world');
    for (const u of updates) await store.append('notes', u, { instanceId: 'cli-test', user: 'ada' });
    await store.close();

    const history = await runCli(['history', 'notes', '--json', '--data', url]);
    assert.equal(history.code, 0, history.stderr);
    const entries = JSON.parse(history.stdout) as Array<{ seq: number; user: string; instanceId: string }>;
    assert.deepEqual(entries.map((e) => [e.seq, e.user, e.instanceId]), [[1, 'ada', 'cli-test'], [2, 'ada', 'cli-test']]);
    const exported = await runCli(['export', 'notes', '--at', '1', '--json'], { env: { PALIMPSEST_DATA: url.replace('postgres://', 'postgresql://') } });
    assert.equal(exported.code, 0, exported.stderr);
    const state = new Y.Doc();
    Y.applyUpdate(state, Buffer.from((JSON.parse(exported.stdout) as { update: string }).update, 'base64'));
    assert.equal(state.getText('text').toString(), 'hello');
    const compact = await runCli(['compact', '--json', '--data', url]);
    assert.equal(compact.code, 0, compact.stderr);
    assert.deepEqual((JSON.parse(compact.stdout) as Array<{ seq: number }>).map((r) => r.seq), [2]);
    const verify = await runCli(['verify', '--data', url]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /1 document, 2 log entries, 1 snapshot checked/);
  });

  test('an unreachable host, a wrong password or a missing database exit 1 with one line naming the host and the cause', async () => {
    const closedPort = await freePort();
    const cases: Array<{ data: string; host: string; cause: RegExp }> = [
      { data: `postgres://postgres@127.0.0.1:${closedPort}/postgres`, host: `127.0.0.1:${closedPort}`, cause: /connection refused/ },
      { data: `postgres://${postgres().passwordRole.user}:wrong@127.0.0.1:${postgres().port}/postgres`, host: `127.0.0.1:${postgres().port}`, cause: /password/ },
      { data: postgres().url('no_such_database'), host: `127.0.0.1:${postgres().port}`, cause: /"no_such_database" does not exist/ },
      // A server that asks for a password, and a URL without one.
      { data: `postgres://${postgres().passwordRole.user}@127.0.0.1:${postgres().port}/postgres`, host: `127.0.0.1:${postgres().port}`, cause: /asks for a password/ },
    ];
    for (const { data, host, cause } of cases) {
      for (const args of [['verify'], ['history', 'doc'], ['serve', '--port', '0']]) {
        const started = Date.now();
        const result = await runCli([...args, '--data', data]);
        // Not a measure of speed: a command that has said why it cannot go on must not then sit there.
        assert.ok(Date.now() - started < 20_000, `${args[0]} ${data} took ${Date.now() - started} ms to exit after: ${result.stderr}`);
        assert.equal(result.code, 1, `${args[0]} ${data}: ${result.stderr}`);
        assertOneLine(result.stderr);
        assert.ok(result.stderr.includes(host), result.stderr);
        assert.match(result.stderr, cause);
        assert.doesNotMatch(result.stderr, /wrong@/, 'the password is not printed');
      }
    }
    // The right password gets in.
    const right = await runCli(['history', 'doc', '--json', '--data',
      `postgres://${postgres().passwordRole.user}:${postgres().passwordRole.password}@127.0.0.1:${postgres().port}/postgres`]);
    assert.equal(right.code, 0, right.stderr);
  });

  test('a malformed URL exits 2 naming --data', async () => {
    // A scheme that is not PostgreSQL's (a typo among them) is not taken for a file path.
    for (const data of ['postgres://user@127.0.0.1:99999/db', 'postgresql://[oops/db', 'postgres://u@h/db?sslmode=sometimes', 'postgress://u@127.0.0.1/db', 'mysql://u@127.0.0.1/x']) {
      for (const args of [['verify'], ['export', 'doc'], ['serve', '--port', '0']]) {
        const result = await runCli([...args, '--data', data]);
        assert.equal(result.code, 2, `${args[0]} ${data}: ${result.stderr}`);
        assert.match(result.stderr, /--data/);
        assert.doesNotMatch(result.stderr, /^\s+at /m);
      }
    }
    assert.equal(existsSync('postgress:') || existsSync('mysql:'), false, 'no folder named after the scheme');
  });
});
