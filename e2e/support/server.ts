// `palimpsest serve` as a child process, run the way users run it: the built
// CLI, port 0 (or a given port, to come back on the same one after a SIGKILL),
// a SQLite file of the test's own. Resolves once the "listening" line is logged.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../bin/palimpsest.js', import.meta.url));
const builtCli = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url));

export interface ServeOptions {
  dataFile: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  redis?: string;
  instanceId?: string;
  /** --jwt-secret: clients then need tokens. */
  jwtSecret?: string;
}

export interface ServerProcess {
  port: number;
  /** http://127.0.0.1:<port> */
  http: string;
  /** ws://127.0.0.1:<port>/ */
  ws: string;
  options: ServeOptions;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Sends `signal` and resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL if the process has not exited within `ms`. */
  stopWithin(ms: number): Promise<void>;
}

/** The environment without anything that would override the flags the tests pass. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('PALIMPSEST_') || ['HOST', 'PORT', 'REDIS_URL', 'LOG_LEVEL'].includes(name)) delete env[name];
  }
  return env;
}

export async function startServer(options: ServeOptions): Promise<ServerProcess> {
  if (!existsSync(builtCli)) throw new Error('dist/ is missing: run `npm run build` (or `npm run test:e2e`, which builds)');
  const args = ['serve', '--port', String(options.port ?? 0), '--data', options.dataFile, '--log-level', 'info'];
  if (options.redis !== undefined) args.push('--redis', options.redis);
  if (options.instanceId !== undefined) args.push('--instance-id', options.instanceId);
  if (options.jwtSecret !== undefined) args.push('--jwt-secret', options.jwtSecret);
  const child: ChildProcess = spawn(process.execPath, [cliPath, ...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { raw: line };
      }
      logs.push(entry);
      if (entry.msg === 'listening') resolve(entry.port as number);
    });
    void exited.then(() => reject(new Error(`palimpsest serve ${args.join(' ')} exited before listening: ${stderr}`)));
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  return {
    port,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/`,
    options,
    logs,
    stop,
    async stopWithin(ms) {
      const deadline = setTimeout(() => child.kill('SIGKILL'), ms);
      await stop('SIGTERM');
      clearTimeout(deadline);
    },
  };
}
