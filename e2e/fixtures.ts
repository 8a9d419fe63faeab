// Test fixtures: a document name of the test's own, a SQLite file of its own,
// a `palimpsest serve` on it, browsers as separate contexts (separate people:
// separate IndexedDB, separate presence), and TCP proxies to cut the network.
// Everything started here is stopped here, after the test.

import { test as base, type BrowserContext, type Page } from '@playwright/test';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type ServeOptions, type ServerProcess } from './support/server.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

export { expect } from '@playwright/test';

interface Fixtures {
  /** A fresh document name, e.g. `e2e-typing-4f9c21ab`. */
  docName: string;
  /** A fresh SQLite file (not created yet). */
  dataFile: string;
  /** Starts `palimpsest serve` (on `dataFile` unless told otherwise); stopped after the test. */
  launchServer: (options?: Partial<ServeOptions>) => Promise<ServerProcess>;
  /** One server on `dataFile`, for tests that need just one. */
  server: ServerProcess;
  /** Opens `url` in a new browser context: a separate person. `prepare` runs on the context first (routes, …). */
  openPeer: (url: string, prepare?: (context: BrowserContext) => Promise<void>) => Promise<Page>;
  /** A TCP proxy to the given port; closed after the test. */
  proxyTo: (port: number) => Promise<TcpProxy>;
}

export const test = base.extend<Fixtures>({
  docName: async ({}, use, testInfo) => {
    const slug = testInfo.titlePath.at(-1)!.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/-+$/, '');
    await use(`e2e-${slug}-${randomBytes(4).toString('hex')}`);
  },

  dataFile: async ({}, use, testInfo) => {
    const dir = mkdtempSync(join(tmpdir(), 'palimpsest-e2e-'));
    const file = join(dir, 'palimpsest.db');
    await use(file);
    // Runs after the servers are stopped (they depend on this fixture).
    if (testInfo.status !== testInfo.expectedStatus && existsSync(file)) {
      await testInfo.attach('palimpsest.db', { path: file });
    }
    rmSync(dir, { recursive: true, force: true });
  },

  launchServer: async ({ dataFile }, use, testInfo) => {
    const starting: Array<Promise<ServerProcess>> = [];
    await use((options = {}) => {
      const server = startServer({ dataFile, ...options });
      starting.push(server);
      return server;
    });
    // Includes servers still starting when the test failed (e.g. a sibling did not start).
    const started = (await Promise.allSettled(starting))
      .flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    // SIGTERM first, so the SQLite file is whole if it is attached below.
    await Promise.all(started.map((server) => server.stopWithin(5_000)));
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const [index, server] of started.entries()) {
        const body = server.logs.map((entry) => JSON.stringify(entry)).join('\n');
        await testInfo.attach(`server-${index + 1}-port-${server.port}.log`, { body, contentType: 'text/plain' });
      }
    }
  },

  server: async ({ launchServer }, use) => {
    await use(await launchServer());
  },

  openPeer: async ({ browser }, use) => {
    const contexts: BrowserContext[] = [];
    await use(async (url, prepare) => {
      const context = await browser.newContext();
      contexts.push(context);
      await prepare?.(context);
      const page = await context.newPage();
      await page.goto(url);
      return page;
    });
    await Promise.all(contexts.map((context) => context.close()));
  },

  proxyTo: async ({}, use) => {
    const proxies: TcpProxy[] = [];
    await use(async (port) => {
      const proxy = await startTcpProxy(port);
      proxies.push(proxy);
      return proxy;
    });
    await Promise.all(proxies.map((proxy) => proxy.close()));
  },
});
