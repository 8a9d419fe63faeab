// Runs `palimpsest serve` (the built CLI) as a child process on a free port,
// as users run it, so tests can SIGKILL and restart it. Teardown is
// registered on the test context that started it.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const cliPath = fileURLToPath(new URL('../../../bin/palimpsest.js', import.meta.url));

export interface ServerProcess {
  port: number;
  /** ws://127.0.0.1:<port> */
  url: string;
  http: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Everything written to stderr so far. */
  stderr(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServerProcess(
  t: Pick<TestContext, 'after'>, args: string[], env: Record<string, string> = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0', '--log-level', 'info', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'listening') resolve(entry.port as number);
      } catch {
        logs.push({ raw: line });
      }
    });
    void exited.then((code) => reject(new Error(`palimpsest serve exited with ${code} before listening: ${stderr}`)));
  });
  const server: ServerProcess = {
    port,
    url: `ws://127.0.0.1:${port}`,
    http: `http://127.0.0.1:${port}`,
    child,
    logs,
    stderr: () => stderr,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
  t.after(() => server.kill('SIGKILL'));
  return server;
}
