#!/usr/bin/env node
// Thin entry point: the command lives in server/cli.ts (built to dist/).
import { main } from '../dist/server/cli.js';

process.exitCode = await main(process.argv.slice(2));
