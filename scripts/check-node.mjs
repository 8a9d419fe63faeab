// Refuses to go on under a Node.js older than package.json's `engines`, before
// anything loads the native SQLite addon (built for Node >= 22, it crashes an
// older Node with a bare segmentation fault). Run by bin/palimpsest.js and as
// the npm `pre*` scripts of start, test, test:e2e and bench.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** The minimum major version from engines.node (">=22"), or null when it cannot be read. */
function requiredMajor() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const match = /^>=\s*(\d+)/.exec(pkg.engines?.node ?? '');
  return match === null ? null : Number(match[1]);
}

/** Null when Node `version` (default: this one) is new enough, else the one line that says what to do. */
export function nodeVersionProblem(version = process.version) {
  const required = requiredMajor();
  const major = Number(version.replace(/^v/, '').split('.')[0]);
  if (required === null || major >= required) return null;
  return `palimpsest needs Node.js ${required} or newer; this is ${version}. ` +
    `Install Node.js 24 LTS (e.g. \`nvm install 24\`, or \`npm install -g --prefix ~/.node24 node@24\` and put ~/.node24/bin first on PATH), then run \`npm ci\` again.`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const problem = nodeVersionProblem();
  if (problem !== null) {
    process.stderr.write(`${problem}\n`);
    process.exit(1);
  }
}
