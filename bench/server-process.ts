// Starts bench/server-child.js in its own process and talks to it: the port
// it listens on, its CPU time on request, and a clean stop. Extra node flags
// (e.g. --cpu-prof) pass through, so any scenario can be profiled.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const childPath = fileURLToPath(new URL('./server-child.js', import.meta.url));

export interface ServerUsage {
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** V8 heap pages held (used or not) and memory outside the heap that JS objects own (Buffers). */
  heapTotalBytes: number;
  externalBytes: number;
  /** The server's event-loop delay since the previous usage() call (p99 and max, ms). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export interface BenchServer {
  port: number;
  url: string;
  /** The child's process id (e.g. to send it SIGUSR2 for a heap snapshot with --heapsnapshot-signal). */
  pid: number;
  /** With `collectGarbage`, a child started with --expose-gc collects garbage first. */
  usage(collectGarbage?: boolean): Promise<ServerUsage>;
  /** Writes a heap snapshot of the server to `file` (a path without spaces); resolves when it is complete. */
  heapSnapshot(file: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startBenchServer(args: string[], nodeFlags: string[] = []): Promise<BenchServer> {
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, childPath, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiters: Array<(message: Record<string, unknown>) => void> = [];
  lines.on('line', (line) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not ours (a log line of the server)
    }
    if (typeof message.benchChild !== 'string') return;
    for (const waiter of waiters.splice(0)) waiter(message);
  });
  const next = (event: string) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const wait = (message: Record<string, unknown>) => {
      if (message.benchChild === event) resolve(message);
      else waiters.push(wait);
    };
    waiters.push(wait);
    void exited.then((code) => reject(new Error(`server child (${args.join(' ')}) exited with ${code}: ${stderr.trim()}`)));
  });

  const listening = await next('listening');
  const port = listening.port as number;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    pid: child.pid!,
    async usage(collectGarbage = false) {
      const reply = next('usage');
      child.stdin?.write(collectGarbage ? 'usage gc\n' : 'usage\n');
      const message = await reply;
      return {
        cpuUserMs: message.cpuUserMs as number, cpuSystemMs: message.cpuSystemMs as number,
        rssBytes: message.rssBytes as number, heapUsedBytes: message.heapUsedBytes as number,
        heapTotalBytes: message.heapTotalBytes as number, externalBytes: message.externalBytes as number,
        loopDelayP99Ms: message.loopDelayP99Ms as number, loopDelayMaxMs: message.loopDelayMaxMs as number,
      };
    },
    async heapSnapshot(file) {
      if (file.includes(' ')) throw new Error(`heap snapshot path must not contain spaces: ${file}`);
      const reply = next('heapsnapshot');
      child.stdin?.write(`heapsnapshot ${file}\n`);
      await reply;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
