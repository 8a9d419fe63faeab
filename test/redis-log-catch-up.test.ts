// Instances on one host also share the log: an update one instance logged
// reaches the documents (and clients) of the others through the SQLite file,
// even when its Redis message never arrives — here because Redis is down.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { readiness, startInstances } from './helpers/redis-cluster.js';
import { startRedis } from './helpers/redis-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

test('an update whose Redis message is lost still reaches the other instance through the shared log', async (t) => {
  const data = join(tempDir(t), 'shared.db');
  const redis = await startRedis(t);
  const [east, west] = await startInstances(t, { data, redis: redis.url, names: ['east', 'west'] });
  await waitFor(async () => (await readiness(east)).status === 200 && (await readiness(west)).status === 200, { message: 'instances ready' });
  const writer = hocuspocusClient(t, east.url, 'catch-up');
  const reader = hocuspocusClient(t, west.url, 'catch-up');
  writer.doc.getText('text').insert(0, 'via redis. ');
  await waitSettled([writer, reader]);
  await waitFor(() => reader.doc.getText('text').toString() === 'via redis. ', { message: 'delivered through Redis' });

  await redis.kill();
  await waitFor(async () => (await readiness(west)).status === 503, { message: 'west sees the outage' });
  writer.doc.getText('text').insert(0, 'via the log. ');
  await waitSettled([writer]);
  await waitFor(() => reader.doc.getText('text').toString() === 'via the log. via redis. ',
    { timeoutMs: 10_000, message: 'the reader on the other instance got the update with Redis down' });
  assert.equal((await readiness(west)).status, 503, 'Redis was down all along');
});
