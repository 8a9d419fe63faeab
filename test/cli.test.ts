// The `palimpsest` command as scripts use it: --help everywhere, the JSON
// shapes of history/export/compact/verify, and the exit codes (0 success,
// 1 runtime failure naming the path, 2 bad usage naming the flag).

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { runCli } from './helpers/cli.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';

async function seededDatabase(dir: string): Promise<{ data: string; doc: Y.Doc; texts: string[] }> {
  const data = join(dir, 'cli.db');
  const store = openEventStore({ path: data, compactAfterEntries: 0 });
  const doc = new Y.Doc();
  const texts: string[] = [];
  const updates: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => updates.push(u));
  for (const word of ['alpha', ' beta', ' gamma', ' delta']) {
    doc.getText('text').insert(doc.getText('text').length, word);
    texts.push(doc.getText('text').toString());
  }
  for (const update of updates) await store.append('team/notes', update, { instanceId: 'cli-test', user: 'ada' });
  await store.close();
  return { data, doc, texts };
}

test('every command answers --help with its usage and exits 0', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  for (const command of ['serve', 'history', 'export', 'compact', 'verify']) {
    assert.match(top.stdout, new RegExp(`\\b${command}\\b`));
    const help = await runCli([command, '--help']);
    assert.equal(help.code, 0, command);
    assert.match(help.stdout, new RegExp(`^palimpsest ${command}`), command);
    assert.match(help.stdout, /--data/, command);
  }
  const serveHelp = await runCli(['serve', '--help']);
  for (const flag of ['--host', '--port', '--redis', '--instance-id', '--synchronous']) assert.match(serveHelp.stdout, new RegExp(flag));
});

test('history --json prints the log entries, oldest first, in the documented shape', async (t) => {
  const { data, texts } = await seededDatabase(tempDir(t));
  const result = await runCli(['history', 'team/notes', '--json', '--data', data]);
  assert.equal(result.code, 0, result.stderr);
  const entries = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
  assert.equal(entries.length, 4);
  const replay = new Y.Doc();
  entries.forEach((entry, i) => {
    assert.deepEqual(Object.keys(entry).sort(), ['instanceId', 'receivedAt', 'seq', 'size', 'update', 'user']);
    assert.equal(entry.seq, i + 1);
    assert.equal(entry.instanceId, 'cli-test');
    assert.equal(entry.user, 'ada');
    assert.equal(new Date(entry.receivedAt as string).toISOString(), entry.receivedAt);
    const update = Buffer.from(entry.update as string, 'base64');
    assert.equal(entry.size, update.length);
    Y.applyUpdate(replay, update);
    assert.equal(replay.getText('text').toString(), texts[i]);
  });
  const tail = JSON.parse((await runCli(['history', 'team/notes', '--json', '--after', '2', '--limit', '1', '--data', data])).stdout) as Array<{ seq: number }>;
  assert.deepEqual(tail.map((e) => e.seq), [3]);
  const human = await runCli(['history', 'team/notes', '--data', data]);
  assert.equal(human.code, 0);
  assert.equal(human.stdout.trim().split('\n').length, 5);
});

test('history of an unknown document prints [] and exits 0; an invalid name exits 2', async (t) => {
  const { data } = await seededDatabase(tempDir(t));
  const unknown = await runCli(['history', 'nobody', '--json', '--data', data]);
  assert.deepEqual([unknown.code, unknown.stdout.trim()], [0, '[]']);
  const missingFile = await runCli(['history', 'nobody', '--json', '--data', join(tempDir(t), 'absent.db')]);
  assert.deepEqual([missingFile.code, missingFile.stdout.trim()], [0, '[]']);
  for (const name of ['/leading-slash', 'spaces are not allowed', 'x'.repeat(256), '']) {
    const invalid = await runCli(['history', name, '--json', '--data', data]);
    assert.equal(invalid.code, 2, `"${name.slice(0, 20)}"`);
    assert.match(invalid.stderr, /document name|<doc>/);
  }
});

test('export writes the state at a seq as binary, to a file, or as JSON', async (t) => {
  const dir = tempDir(t);
  const { data, texts } = await seededDatabase(dir);
  const textOf = (bytes: Uint8Array) => {
    const doc = new Y.Doc();
    Y.applyUpdate(doc, bytes);
    return doc.getText('text').toString();
  };
  const binary = await runCli(['export', 'team/notes', '--data', data]);
  assert.equal(binary.code, 0);
  assert.equal(textOf(binary.stdoutBytes), texts[3]);
  const json = JSON.parse((await runCli(['export', 'team/notes', '--at', '2', '--json', '--data', data])).stdout) as { doc: string; seq: number; update: string };
  assert.deepEqual([json.doc, json.seq], ['team/notes', 2]);
  assert.equal(textOf(Buffer.from(json.update, 'base64')), texts[1]);
  const out = join(dir, 'state.bin');
  assert.equal((await runCli(['export', 'team/notes', '--at', '3', '--out', out, '--data', data])).code, 0);
  assert.equal(textOf(readFileSync(out)), texts[2]);
  const beyond = await runCli(['export', 'team/notes', '--at', '99', '--data', data]);
  assert.equal(beyond.code, 1);
  assert.match(beyond.stderr, /no seq 99/);
});

test('compact and verify report in JSON; verify exits 1 on a damaged snapshot', async (t) => {
  const { data } = await seededDatabase(tempDir(t));
  const compact = await runCli(['compact', '--json', '--data', data]);
  assert.equal(compact.code, 0, compact.stderr);
  assert.deepEqual(JSON.parse(compact.stdout), [{ doc: 'team/notes', seq: 4, size: (JSON.parse(compact.stdout) as Array<{ size: number }>)[0].size, pruned: 0 }]);
  const again = await runCli(['compact', 'team/notes', '--data', data]);
  assert.match(again.stdout, /already compact/);
  const verify = await runCli(['verify', '--json', '--data', data]);
  assert.equal(verify.code, 0);
  assert.deepEqual(JSON.parse(verify.stdout), { documents: 1, entries: 4, snapshots: 1, problems: [] });

  const { default: Database } = await import('better-sqlite3');
  const db = new Database(data);
  db.prepare('UPDATE snapshots SET state = ?').run(Buffer.from([0, 1, 2, 3, 4, 5, 6]));
  db.close();
  const damaged = await runCli(['verify', '--data', data]);
  assert.equal(damaged.code, 1);
  assert.match(damaged.stdout, /PROBLEM team\/notes at seq 4/);
});

test('bad usage exits 2 naming the flag; an unusable data file exits 1 naming the path', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['serve', '--port', 'eighty'], /--port/],
    [['serve', '--port', '70000'], /--port/],
    [['serve', '--synchronous', 'sometimes'], /--synchronous/],
    [['serve', '--redis', 'localhost:6379'], /--redis/],
    [['serve', '--host', '0.0.0.0'], /--host/],
    [['serve', '--no-such-flag'], /--no-such-flag/],
    [['history'], /<doc>/],
    [['export', 'doc', '--at', '-1'], /--at/],
    [['frobnicate'], /unknown command/],
  ];
  for (const [args, flag] of cases) {
    const result = await runCli([...args, ...(args[0] === 'frobnicate' ? [] : ['--data', join(dir, 'x.db')])]);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, flag, args.join(' '));
  }
  const notADatabase = join(dir, 'notes.txt');
  writeFileSync(notADatabase, 'these are my notes, not a database\n'.repeat(200));
  const garbage = await runCli(['serve', '--port', '0', '--data', notADatabase]);
  assert.equal(garbage.code, 1);
  assert.ok(garbage.stderr.includes(notADatabase), garbage.stderr);
  assert.doesNotMatch(garbage.stderr, /\n\s+at /, 'no stack trace');
  // A folder that cannot be created (a file is in the way): fails even for root.
  const unwritable = join(notADatabase, 'sub', 'data.db');
  const denied = await runCli(['serve', '--port', '0', '--data', unwritable]);
  assert.equal(denied.code, 1);
  assert.ok(denied.stderr.includes(unwritable), denied.stderr);
  const verifyMissing = await runCli(['verify', '--data', join(dir, 'absent.db')]);
  assert.equal(verifyMissing.code, 1);
  assert.match(verifyMissing.stderr, /absent\.db/);
});

test('serve logs a listening line with the port and exits 0 on SIGTERM and on SIGINT', async (t) => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const data = join(tempDir(t), 'serve.db');
    const server = await startServerProcess(t, ['--data', data]);
    const listening = server.logs.find((line) => line.msg === 'listening');
    assert.equal(listening?.port, server.port);
    assert.equal(listening?.host, '127.0.0.1');
    assert.equal((await fetch(`${server.http}/healthz`)).status, 200);
    assert.equal(await server.kill(signal), 0, signal);
    assert.ok(server.logs.some((line) => line.msg === 'stopped'), 'logged that it stopped');
  }
});

test('a port already in use exits 1 with a message, also with --redis configured', async (t) => {
  const dir = tempDir(t);
  const first = await startServerProcess(t, ['--data', join(dir, 'first.db')]);
  for (const extra of [[], ['--redis', 'redis://127.0.0.1:1']]) {
    const second = await runCli(['serve', '--port', String(first.port), '--data', join(dir, 'second.db'), ...extra]);
    assert.equal(second.code, 1, extra.join(' '));
    assert.match(second.stderr, /cannot listen.*--port/);
  }
});
