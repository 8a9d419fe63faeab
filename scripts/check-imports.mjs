#!/usr/bin/env node
// Import rules of the layout, checked by `npm run lint`:
//   1. no circular imports among the project's own modules;
//   2. outside persistence/, nothing imports a persistence/ module other than persistence/index.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const folders = ['server', 'persistence', 'test', 'bench', 'e2e', 'client-demo/src'];
const files = folders.flatMap((folder) => walk(join(root, folder))).filter((f) => /\.(ts|mts)$/.test(f) && !f.endsWith('.d.ts'));
const importPattern = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

const graph = new Map();
const problems = [];
for (const file of files) {
  const source = readFileSync(file, 'utf8');
  const targets = [];
  for (const match of source.matchAll(importPattern)) {
    const spec = match[1] ?? match[2];
    const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
    targets.push(target);
    const from = relative(root, file);
    const to = relative(root, target);
    if (!from.startsWith('persistence/') && to.startsWith('persistence/') && to !== 'persistence/index.ts') {
      problems.push(`${from} imports ${to}: import from persistence/index.ts instead`);
    }
  }
  graph.set(file, targets);
}

const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, 'visiting');
  stack.push(file);
  for (const target of graph.get(file) ?? []) {
    if (!graph.has(target)) continue;
    if (state.get(target) === 'visiting') {
      const cycle = stack.slice(stack.indexOf(target)).concat(target).map((f) => relative(root, f));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!state.has(target)) visit(target);
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
console.log(`imports: ${files.length} modules, no cycles, persistence/ entered only through its index`);

function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? (name === 'node_modules' ? [] : walk(path)) : [path];
  });
}
