// The `palimpsest` command as scripts use it: --help everywhere, the JSON
// shapes of history/export/compact/verify, and the exit codes (0 success,
// 1 runtime failure naming the path, 2 bad usage naming the flag).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { runCli } from './helpers/cli.js';
import { startRedis } from './helpers/redis-process.js';
import { cliPath, startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

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
    assert.deepEqual(Object.keys(entry).sort(), ['displayName', 'instanceId', 'receivedAt', 'seq', 'size', 'update', 'user']);
    assert.equal(entry.displayName, null, 'no display name was announced');
    assert.equal(entry.seq, i + 1);
    assert.equal(entry.instanceId, 'cli-test');
    assert.equal(entry.user, 'ada');
    assert.equal(new Date(entry.receivedAt as string).toISOString(), entry.receivedAt);
    const update = Buffer.from(entry.update as string, 'base64');
    assert.equal(entry.size, update.length);
    Y.applyUpdate(replay, update);
    assert.equal(replay.getText('text').toString(), texts[i]);
  });
  // --help describes the same fields.
  const help = await runCli(['history', '--help']);
  const described = /--json\s+One JSON array of \{ ([^}]*) \}/.exec(help.stdout)?.[1];
  assert.ok(described !== undefined, help.stdout);
  assert.deepEqual(described.split(', ').map((field) => field.replace(/ \(.*\)$/, '')).sort(), Object.keys(entries[0]).sort(), described);
  const tail = JSON.parse((await runCli(['history', 'team/notes', '--json', '--after', '2', '--limit', '1', '--data', data])).stdout) as Array<{ seq: number }>;
  assert.deepEqual(tail.map((e) => e.seq), [3]);
  const none = await runCli(['history', 'team/notes', '--json', '--limit', '0', '--data', data]);
  assert.equal(none.code, 2, 'at least one entry, as the REST history route asks (limit=0 is 400 there)');
  assert.match(none.stderr, /--limit: must be between 1 and/);
  const human = await runCli(['history', 'team/notes', '--data', data]);
  assert.equal(human.code, 0);
  assert.equal(human.stdout.trim().split('\n').length, 5);
});

test('history of an unknown document prints [] and exits 0; an invalid name exits 2', async (t) => {
  const { data } = await seededDatabase(tempDir(t));
  const unknown = await runCli(['history', 'nobody', '--json', '--data', data]);
  assert.deepEqual([unknown.code, unknown.stdout.trim()], [0, '[]']);
  assert.ok(unknown.stderr.includes(`nobody: no document of that name in ${data} (never written)`), unknown.stderr);
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
  assert.equal(again.stdout, 'team/notes: already compact (latest snapshot at seq 4)\n');
  const againJson = await runCli(['compact', 'team/notes', '--json', '--data', data]);
  assert.deepEqual(JSON.parse(againJson.stdout), [{ doc: 'team/notes', seq: 4, compacted: false }]);
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
    [['export', 'doc', '--at', '-1'], /^palimpsest export: --at: expected a whole number, got "-1"\n/],
    [['export', 'doc', '--at'], /^palimpsest export: --at: needs a value/],
    [['history', 'doc', '--lmit', '3'], /^palimpsest history: --lmit: unknown flag; did you mean --limit\?\n/],
    [['history', 'doc', '--data', '--json'], /^palimpsest history: --data: needs a value/],
    [['compact', '--jsno'], /^palimpsest compact: --jsno: unknown flag; did you mean --json\?\n/],
    [['history', 'doc', '-n', '3'], /^palimpsest history: -n: unknown flag/],
    [['histroy', 'doc'], /unknown command "histroy"; did you mean history\?/],
    [['frobnicate'], /unknown command/],
  ];
  for (const [args, flag] of cases) {
    const result = await runCli([...args, ...(args[0] === 'frobnicate' ? [] : ['--data', join(dir, 'x.db')])]);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, flag, args.join(' '));
    // Node's parseArgs wording (and its unbalanced quote) no longer leaks through.
    assert.doesNotMatch(result.stderr, /ambiguous|XYZ|as in '--|Unknown option/, args.join(' '));
  }
  // A value from the environment is named after the variable: the user may not know it is set.
  const fromEnv: Array<[Record<string, string>, string[], RegExp]> = [
    [{ PORT: 'abc' }, ['serve'], /^palimpsest serve: PORT \(environment variable; --port overrides it\): expected a whole number, got "abc"\n/],
    [{ PALIMPSEST_SYNCHRONOUS: 'sometimes' }, ['serve'], /^palimpsest serve: PALIMPSEST_SYNCHRONOUS \(environment variable; --synchronous overrides it\): expected one of/],
    [{ PALIMPSEST_INSECURE: 'maybe' }, ['serve'], /^palimpsest serve: PALIMPSEST_INSECURE: expected true or false, got "maybe"\n/],
  ];
  for (const [env, args, message] of fromEnv) {
    const result = await runCli([...args, '--data', join(dir, 'x.db')], { env });
    assert.equal(result.code, 2, JSON.stringify(env));
    assert.match(result.stderr, message, JSON.stringify(env));
  }
  // The same value given as a flag is named after the flag, even with the variable set.
  const flagWins = await runCli(['serve', '--port', 'abc', '--data', join(dir, 'x.db')], { env: { PORT: '1234' } });
  assert.match(flagWins.stderr, /^palimpsest serve: --port: expected a whole number, got "abc"\n/);
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

test('a --data path that does not exist exits 1 for every reading command, naming the path and what to do', async (t) => {
  const dir = tempDir(t);
  const mistyped = join(dir, 'mistyped', 'x.db');
  const runs: string[][] = [
    ['history', 'hello'], ['history', 'hello', '--json'], ['export', 'hello'], ['export', 'hello', '--json'],
    ['export', 'hello', '--out', join(dir, 'out.bin')], ['compact'], ['compact', 'hello'], ['verify'], ['verify', '--json'],
  ];
  for (const args of runs) {
    const result = await runCli([...args, '--data', mistyped]);
    assert.equal(result.code, 1, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
    assert.equal(result.stdout, '', args.join(' '));
    assert.ok(result.stderr.includes(`no database at ${mistyped} (given by --data); check the path, or pass --data <file|url>`), result.stderr);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.equal(existsSync(join(dir, 'out.bin')), false, 'nothing written for a missing database');
  assert.equal(existsSync(join(dir, 'mistyped')), false, 'a reading command creates no database');
  const viaEnv = await runCli(['history', 'hello'], { env: { PALIMPSEST_DATA: mistyped } });
  assert.equal(viaEnv.code, 1);
  assert.match(viaEnv.stderr, /no database at .*x\.db \(from PALIMPSEST_DATA\)/);
});

test('a document never written reads as the empty document at seq 0 on every command, and each says so', async (t) => {
  const dir = tempDir(t);
  const { data } = await seededDatabase(dir);
  const never = `${'nobody'}: no document of that name in ${data} (never written)`;

  const history = await runCli(['history', 'nobody', '--data', data]);
  assert.deepEqual([history.code, history.stdout], [0, `${never}\n`]);
  // A document that exists but has nothing after --after says that instead.
  const pastEnd = await runCli(['history', 'team/notes', '--after', '4', '--data', data]);
  assert.deepEqual([pastEnd.code, pastEnd.stdout], [0, 'team/notes: no log entries after seq 4 (its log ends at seq 4)\n']);

  const binary = await runCli(['export', 'nobody', '--data', data]);
  assert.equal(binary.code, 0);
  assert.deepEqual([...binary.stdoutBytes], [...Y.encodeStateAsUpdate(new Y.Doc())]);
  assert.ok(binary.stderr.includes(never), binary.stderr);
  const json = await runCli(['export', 'nobody', '--json', '--data', data]);
  assert.deepEqual(JSON.parse(json.stdout), { doc: 'nobody', seq: 0, update: Buffer.from(Y.encodeStateAsUpdate(new Y.Doc())).toString('base64'), exists: false });
  assert.ok(json.stderr.includes(never), json.stderr);
  const known = JSON.parse((await runCli(['export', 'team/notes', '--json', '--data', data])).stdout) as { exists: boolean };
  assert.equal(known.exists, true);
  const out = join(dir, 'empty.bin');
  const toFile = await runCli(['export', 'nobody', '--out', out, '--data', data]);
  assert.equal(toFile.code, 0);
  assert.ok(toFile.stderr.includes(`wrote nobody at seq 0 (2 bytes) to ${out} (${never}: the empty document)`), toFile.stderr);
  const beyond = await runCli(['export', 'nobody', '--at', '3', '--data', data]);
  assert.equal(beyond.code, 1);
  assert.ok(beyond.stderr.includes(`${never}, so it has no seq 3`), beyond.stderr);

  const compact = await runCli(['compact', 'nobody', '--data', data]);
  assert.deepEqual([compact.code, compact.stdout], [0, `nothing to compact: ${never}\n`]);
  const compactJson = await runCli(['compact', 'nobody', '--json', '--data', data]);
  assert.deepEqual(JSON.parse(compactJson.stdout), [{ doc: 'nobody', seq: 0, compacted: false, exists: false }]);

  // Reading it did not create it.
  const verify = JSON.parse((await runCli(['verify', '--json', '--data', data])).stdout) as { documents: number };
  assert.equal(verify.documents, 1);
});

test('output piped into a reader that stops early (| head) ends quietly with exit 0, without an EPIPE trace', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'long.db');
  const store = openEventStore({ path: data, compactAfterEntries: 0 });
  const doc = new Y.Doc();
  const updates: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => updates.push(u));
  for (let i = 0; i < 300; i++) doc.getText('text').insert(0, `line ${i} `.repeat(40));
  for (const update of updates) await store.append('long', update, { instanceId: 'cli-test', user: null });
  await store.close();
  // Far more than a pipe buffer (64 KiB) in both forms, so the writer is still writing when head exits.
  for (const format of [[], ['--json']]) {
    const { stdout, stderr, status } = await new Promise<{ stdout: string; stderr: string; status: string }>((resolve) => {
      execFile('bash', ['-c', `"$0" "$1" history long ${format.join(' ')} --data "$2" | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"`,
        process.execPath, cliPath, data], (_error, out, err) => resolve({ stdout: out, stderr: err, status: out.trim() }));
    });
    assert.equal(status, '0', `history ${format.join(' ')} | head: exit status ${stdout}, stderr ${stderr}`);
    assert.equal(stderr, '', `history ${format.join(' ')} | head`);
  }
});

test('serve warns once, naming the Redis URL without its password and the cause, while Redis is unreachable, and says when it connects', async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const url = `redis://:hunter2@127.0.0.1:${redis.port}`;
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'redis.db'), '--redis', url, '--log-level', 'debug']);
  const lines = (msg: string) => server.logs.filter((line) => line.msg === msg);
  // Several reconnect attempts fail, and one warning says so.
  await waitFor(() => lines('redis connection error').length >= 3, { message: 'reconnect attempts' });
  assert.equal(lines('redis unreachable').length, 1);
  const warning = lines('redis unreachable')[0];
  assert.equal(warning.level, 'warn');
  assert.equal(warning.url, `redis://:***@127.0.0.1:${redis.port}`);
  assert.match(String(warning.err), /ECONNREFUSED/);
  assert.ok(!server.logs.some((line) => JSON.stringify(line).includes('hunter2')), 'the password is never logged');

  await redis.restart();
  await waitFor(() => lines('redis link established').length === 1, { message: 'redis link established' });
  assert.equal(lines('redis link established')[0].url, `redis://:***@127.0.0.1:${redis.port}`);

  const errorsBefore = lines('redis connection error').length;
  await redis.kill();
  await waitFor(() => lines('redis connection error').length >= errorsBefore + 3, { message: 'reconnect attempts after the drop' });
  assert.equal(lines('redis link lost').length, 1);
  assert.equal(lines('redis link lost')[0].url, `redis://:***@127.0.0.1:${redis.port}`);
  assert.equal(lines('redis unreachable').length, 1, 'one warning per outage, not one per attempt');
  await redis.restart();
  await waitFor(() => lines('redis link restored').length === 1, { message: 'redis link restored' });
  assert.ok(!server.logs.some((line) => JSON.stringify(line).includes('hunter2')), 'the password is never logged');
});
