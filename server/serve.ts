// `palimpsest serve`: binds the port, opens the store, builds the server from
// the config on that socket, and shuts down cleanly on SIGTERM/SIGINT (stop taking connections,
// close sockets, commit pending appends, close the database, exit 0).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openEventStore, type OpenedEventStore } from '../persistence/index.js';
import { loadServeConfig, type ServeConfig } from './config.js';
import { bindHttpServer, createCollabServer, type CollabServer } from './index.js';
import { createLogger, routeConsoleToLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { createSecurity } from './security.js';
import { createRedisFanout, type RedisFanout } from './redis-fanout.js';

export const defaultStaticDir = fileURLToPath(new URL('../client-demo', import.meta.url));

export interface RunningServer {
  config: ServeConfig;
  server: CollabServer;
  port: number;
  stop(): Promise<void>;
}

export async function serve(argv: string[], env: Record<string, string | undefined>): Promise<RunningServer> {
  const config = loadServeConfig(argv, env, { staticDir: existsSync(defaultStaticDir) ? defaultStaticDir : null });
  const logger = createLogger({ level: config.logLevel, instanceId: config.instanceId });
  routeConsoleToLogger(logger);
  const metrics = createMetrics(config.instanceId);
  // Before the store opens: a bad --jwks-file must stop the start without touching the data.
  const security = await createSecurity({ config, logger, metrics });

  // The port next, before the store: a busy port must end the start before
  // the database file (and any folder on its way) is created. Until the server
  // below takes the socket over, requests are answered 503 STARTING.
  const httpServer = await bindHttpServer(config.port, config.host, config.instanceId);
  let store: OpenedEventStore | null = null;
  let fanout: RedisFanout | null = null;
  let server: CollabServer;
  let host: string;
  let port: number;
  try {
    store = openEventStore({
      data: config.store.data,
      synchronous: config.store.synchronous,
      retention: config.store.retention,
      compactAfterEntries: config.store.compactAfterEntries,
      compactAfterBytes: config.store.compactAfterBytes,
      background: true,
      onSyncFailure: (error) => {
        // Fail-stop: the kernel may have dropped the pages it could not write, so
        // nothing here can say what is on disk. Clients hold every update not yet
        // acknowledged and resend it to the next instance they reach.
        logger.fatal({ err: error.message }, 'the log could not be synced to disk; stopping. Check the disk, then start again');
        process.exit(1);
      },
      onCompaction: ({ doc, result, error, durationMs }) => {
        if (error !== undefined) {
          metrics.compactions.inc({ outcome: 'failed' });
          logger.error({ doc, err: error, durationMs }, 'compaction failed');
        } else if (result) {
          metrics.compactions.inc({ outcome: 'written' });
          logger.info({ doc, seq: result.seq, size: result.size, pruned: result.pruned, durationMs: Math.round(durationMs) }, 'snapshot written');
        }
      },
    });
    // PostgreSQL connects here: an unreachable host, a wrong password or a missing database stop the start.
    await store.opened();

    fanout = config.redis === null ? null
      : createRedisFanout({
        url: config.redis, instanceId: config.instanceId, logger, metrics,
        // Changes reach Redis only once committed; the server exists by the time any change is made.
        durable: (document) => server.durable(document),
      });
    server = createCollabServer({
      config, store, logger, metrics, httpServer,
      extensions: fanout === null ? [security.extension] : [security.extension, fanout.extension],
      readinessChecks: fanout === null ? [] : [fanout.readinessCheck],
      admit: security.admit, context: security.context, onFrame: security.onFrame,
      authorizeApi: security.authorizeApi, authorizeMetrics: security.authorizeMetrics, documentSize: security.documentSize,
    });
    ({ host, port } = await server.listen());
  } catch (error) {
    // Nothing may keep the process alive after a failed start (the bound socket;
    // Redis clients reconnect for ever).
    httpServer.closeAllConnections();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    await fanout?.close();
    await store?.close();
    throw error;
  }
  const opened = store;
  logger.info({ host, port, data: opened.path, backend: opened.backend, synchronous: config.store.synchronous, redis: config.redis !== null,
    auth: config.auth.jwtSecret !== null || config.auth.jwksFile !== null }, 'listening');
  if (config.auth.jwtSecret === null && config.auth.jwksFile === null) {
    logger.warn({ host }, 'no authentication configured: anyone who can reach this address can read and edit every document');
  }

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      logger.info('shutting down');
      await server.close();
      await fanout?.close();
      await opened.close();
      logger.info('stopped');
    })();
    return stopping;
  };
  return { config, server, port, stop };
}
