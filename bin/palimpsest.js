#!/usr/bin/env node
// Thin entry point: the command lives in server/cli.ts (built to dist/). The
// Node version is checked first, before the native SQLite addon is loaded.
import { nodeVersionProblem } from '../scripts/check-node.mjs';

const problem = nodeVersionProblem();
if (problem !== null) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
const { main } = await import('../dist/server/cli.js');
process.exitCode = await main(process.argv.slice(2));
