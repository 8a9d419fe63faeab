// A start-up that cannot hang: a --data folder that cannot be created fails at
// once naming the path, and a stop signal while the start waits (here on a
// database file another process holds locked) ends it promptly.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { runCli } from './helpers/cli.js';
import { cliPath } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

async function serveFails(t: TestContext, data: string): Promise<void> {
  const started = performance.now();
  const result = await runCli(['serve', '--port', '0', '--data', data]);
  const elapsed = performance.now() - started;
  assert.equal(result.code, 1, `exit code (stderr: ${result.stderr})`);
  assert.ok(result.stderr.includes(data), `the message names ${data}: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(elapsed < 10_000, `exited after ${elapsed.toFixed(0)} ms`);
  t.diagnostic(`${data}: ${result.stderr.trim()}`);
}

test('serve --data under /proc exits 1 at once, naming the path', async (t) => {
  await serveFails(t, '/proc/palimpsest-test/x.db');
});

test('serve --data under a file exits 1 at once, naming the path', async (t) => {
  const file = join(tempDir(t), 'a-file');
  writeFileSync(file, 'not a folder');
  await serveFails(t, join(file, 'sub', 'x.db'));
});

test('serve --data in a folder without write permission exits 1, naming the path', async (t) => {
  if (process.getuid?.() === 0) {
    t.skip('running as root: every folder is writable');
    return;
  }
  const { chmodSync, mkdirSync } = await import('node:fs');
  const folder = join(tempDir(t), 'read-only');
  mkdirSync(folder);
  chmodSync(folder, 0o555);
  await serveFails(t, join(folder, 'sub', 'x.db'));
});

test('SIGTERM while the start waits on a locked database file ends the process promptly', async (t) => {
  const data = join(tempDir(t), 'locked.db');
  // Another process' exclusive lock: every other connection waits on it (busy timeout 5 s).
  const holder = new Database(data);
  holder.pragma('locking_mode = EXCLUSIVE');
  holder.exec('CREATE TABLE held (x); BEGIN EXCLUSIVE; INSERT INTO held VALUES (1)');
  t.after(() => holder.close());

  const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0', '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // Stuck: the server has the file open and has not started listening.
  await waitFor(() => readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${child.pid}/fd/${fd}`) === data;
    } catch {
      return false;
    }
  }), { message: 'the server opened the locked file' });
  const signalled = performance.now();
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  const elapsed = performance.now() - signalled;
  t.diagnostic(`ended ${elapsed.toFixed(0)} ms after SIGTERM (code ${code}, signal ${signal})`);
  assert.ok(code !== 0 || signal !== null, 'the start was aborted, not completed');
  assert.ok(elapsed < 2000, `ended ${elapsed.toFixed(0)} ms after the signal, before the 5 s busy timeout`);
});
