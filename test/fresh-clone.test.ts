// What a user's clone needs and meets before anything else: the inputs the
// tests and benchmark read live inside the repository, and an unsupported
// Node.js is told what to do instead of crashing in the native SQLite addon.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { cliPath } from './helpers/server-process.js';
import { loadTrace, tracesDir } from './helpers/traces.js';

const repository = fileURLToPath(new URL('../../', import.meta.url));
const checkNodeModule = `${repository}scripts/check-node.mjs`;

interface NodeCheck {
  nodeVersionProblem(version?: string): string | null;
}

test('the traces the tests and the benchmark replay are inside the repository', () => {
  if (process.env.PALIMPSEST_TRACES === undefined) assert.equal(tracesDir, `${repository}traces`);
  for (const name of ['automerge-paper', 'seph-blog1', 'friendsforever_flat']) {
    const trace = loadTrace(name);
    assert.ok(trace.txns.length > 1000, `${name} has its transactions`);
    assert.equal(typeof trace.endContent, 'string');
  }
  assert.ok(existsSync(`${repository}traces/README.md`), 'the traces keep their attribution (CC BY 4.0)');
});

test('a Node.js older than package.json engines gets one line saying what to do', async () => {
  const { nodeVersionProblem } = await import(pathToFileURL(checkNodeModule).href) as NodeCheck;
  assert.equal(nodeVersionProblem(process.version), null, `this Node (${process.version}) is supported`);
  const problem = nodeVersionProblem('v20.20.2');
  assert.ok(problem !== null);
  assert.match(problem, /needs Node\.js 22 or newer; this is v20\.20\.2\..*Node\.js 24/);
  assert.equal(problem.includes('\n'), false);
});

test('the palimpsest command under an old Node exits 1 with that line instead of a segmentation fault', async (t) => {
  // Debian's own Node is the old one on the machines this project is built on; elsewhere there may be none.
  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((path) => existsSync(path) && path !== process.execPath);
  const version = oldNode === undefined ? null : await run(oldNode, ['--version']);
  if (oldNode === undefined || version === null || Number(version.stdout.trim().slice(1).split('.')[0]) >= 22) {
    t.skip('no Node.js older than 22 on this machine to try it with');
    return;
  }
  const result = await run(oldNode, [cliPath, 'history', 'hello']);
  assert.ok(result !== null, `${oldNode} could not be started`);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^palimpsest needs Node\.js 22 or newer; this is v\d+/);
  assert.equal(result.stderr.trim().split('\n').length, 1);
});

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string } | null> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== 'number') resolve(null);
      else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
    });
  });
}
