// A start-up that cannot hang: a --data folder that cannot be created fails at
// once naming the path, and a stop signal while the start waits (here on a
// database file another process holds locked) ends it promptly. A start that
// fails on a busy port leaves no store behind: the port is bound before the
// database is opened.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import * as Y from 'yjs';
import { freePort, runCli } from './helpers/cli.js';
import { cliPath, startServerProcess } from './helpers/server-process.js';
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
  // Stuck: the server has bound its port and has the file open, and has not logged `listening`.
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

/** A port another program holds for the rest of the test. */
async function busyPort(t: TestContext): Promise<number> {
  const holder: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.listen(0, '127.0.0.1', () => resolve());
  });
  t.after(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  return (holder.address() as { port: number }).port;
}

async function serveOnBusyPort(t: TestContext, data: string): Promise<void> {
  const port = await busyPort(t);
  const result = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port), '--data', data]);
  assert.equal(result.code, 1, `exit code (stderr: ${result.stderr})`);
  assert.match(result.stderr, /cannot listen: .*EADDRINUSE.*\(choose another --port or --host\)/);
  t.diagnostic(result.stderr.trim());
}

test('serve on a busy port exits 1 and creates neither the database file nor its folders', async (t) => {
  const dir = tempDir(t);
  const before = readdirSync(dir);
  await serveOnBusyPort(t, join(dir, 'new', 'sub', 'y.db'));
  assert.equal(existsSync(join(dir, 'new')), false, 'the folder --data would have needed was not created');
  assert.deepEqual(readdirSync(dir), before, 'nothing was added beside it');
});

test('serve on a busy port leaves an existing database file as it was', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'kept.db');
  // A real store with one entry, written by a server that then stopped cleanly.
  const first = await startServerProcess(t, ['--data', data]);
  const update = (() => {
    const doc = new Y.Doc();
    doc.getText('text').insert(0, 'kept');
    return Y.encodeStateAsUpdate(doc);
  })();
  const posted = await fetch(`${first.http}/api/documents/kept/updates`, {
    method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: update,
  });
  assert.equal(posted.status, 200, await posted.text());
  assert.equal(await first.kill('SIGTERM'), 0);
  const files = readdirSync(dir).sort();
  const bytes = readFileSync(data);

  await serveOnBusyPort(t, data);
  assert.deepEqual(readdirSync(dir).sort(), files, 'no file was added or removed');
  assert.ok(readFileSync(data).equals(bytes), 'the database file is unchanged');
  const history = await runCli(['history', 'kept', '--json', '--data', data]);
  assert.equal((JSON.parse(history.stdout) as unknown[]).length, 1, history.stderr);
});

test('while the start waits for its database, the bound port answers 503 STARTING and a stop signal still ends it at once', async (t) => {
  // A "PostgreSQL" that accepts connections and never answers: the start waits (asynchronously) for it.
  const silent = createServer((socket) => socket.on('error', () => undefined));
  const sockets = new Set<Socket>();
  silent.on('connection', (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy();
    silent.close(() => resolve());
  }));
  const database = `postgres://nobody@127.0.0.1:${(silent.address() as { port: number }).port}/none`;
  const port = await freePort();
  const child = spawn(process.execPath, [cliPath, 'serve', '--port', String(port), '--data', database], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  await waitFor(() => sockets.size > 0, { message: 'the start connects to the database' });
  const starting = await waitFor(async () => {
    try {
      return await fetch(`http://127.0.0.1:${port}/api/documents`);
    } catch {
      return null; // not bound yet
    }
  }, { message: 'the port answers' });
  assert.equal(starting.status, 503);
  assert.equal(starting.headers.get('retry-after'), '1');
  assert.equal(((await starting.json()) as { error: { code: string } }).error.code, 'STARTING');
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, 'starting');
  assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503);
  // A request target new URL() cannot read is answered, not the end of the process.
  const odd = await rawRequest(port, 'GET // HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(odd, /^HTTP\/1\.1 503/);
  // A WebSocket client that is refused and keeps its side open does not hold the stop up.
  const upgrade = await rawRequest(port, 'GET /doc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', { keepOpen: true });
  assert.match(upgrade, /^HTTP\/1\.1 503/);

  const signalled = performance.now();
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  const elapsed = performance.now() - signalled;
  assert.ok(code !== 0 || signal !== null, 'the start was aborted, not completed');
  assert.ok(elapsed < 2000, `ended ${elapsed.toFixed(0)} ms after the signal, before the 10 s connect timeout`);
});

/** Writes `request` on a new connection and resolves with what the server answers first; keepOpen: the client never closes its side. */
function rawRequest(port: number, request: string, options: { keepOpen?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    socket.allowHalfOpen = options.keepOpen === true;
    socket.once('data', (data) => {
      resolve(data.toString('latin1'));
      if (options.keepOpen !== true) socket.destroy();
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('the connection closed without an answer')));
  });
}
