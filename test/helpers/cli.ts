// Runs the built `palimpsest` CLI as users do and captures what it prints.

import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { cliPath } from './server-process.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { env?: Record<string, string>; binary?: boolean } = {}): Promise<CliResult & { stdoutBytes: Buffer }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], {
      env: { ...process.env, ...options.env }, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024,
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8'), stdoutBytes: stdout });
    });
  });
}

/** A port that was free a moment ago (for servers that must restart on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
