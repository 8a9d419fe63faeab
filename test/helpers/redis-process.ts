// A real redis-server for tests, on a free loopback port, without persistence.
// kill() SIGKILLs it (an outage); restart() brings a fresh, empty one back on
// the same port, as an operator restarting Redis would. Teardown is
// registered on the test context that started it.

import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './cli.js';
import type { TestContext } from 'node:test';

export interface RedisProcess {
  port: number;
  /** redis://127.0.0.1:<port> */
  url: string;
  running(): boolean;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export async function startRedis(t: Pick<TestContext, 'after'>): Promise<RedisProcess> {
  const port = await freePort();
  let child: ChildProcess | null = null;

  async function launch(): Promise<void> {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          started.stdout?.off('data', onData);
          started.stdout?.resume();
          resolve();
        }
      };
      started.stdout?.on('data', onData);
      started.once('error', reject);
      started.once('exit', (code) => reject(new Error(`redis-server exited with ${code} before it was ready: ${output}`)));
    });
    started.removeAllListeners('exit');
  }

  async function kill(): Promise<void> {
    const running = child;
    child = null;
    if (running === null || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGKILL');
    await exited;
  }

  await launch();
  t.after(kill);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    running: () => child !== null,
    kill,
    async restart() {
      await kill();
      await launch();
    },
  };
}

/** A port that was free a moment ago (the OS picks it). */
