// A peer's sync step 1 is answered only once everything the document holds is
// logged; on a document whose appends never stop, the wait is bounded: after a
// few rounds the step 1 is left unanswered (the peer gets those updates from
// the log and as published updates). Two in-process Hocuspocus instances on a
// real Redis; the first one's durable() stands for a log that is always busy.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Hocuspocus } from '@hocuspocus/server';
import { pino } from 'pino';
import { createMetrics } from '../server/metrics.js';
import { createRedisFanout } from '../server/redis-fanout.js';
import { startRedis } from './helpers/redis-process.js';
import { waitFor } from './helpers/wait.js';

test('a sync step 1 from a peer is left unanswered after a bounded wait while appends keep starting, and own step 1 frames are not waited on', async (t) => {
  const redis = await startRedis(t);
  const lines: Array<{ msg?: string; doc?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as { msg?: string });
      done();
    },
  });
  // Appends that never stop: each promise durable() hands out is followed by a newer one once it settles.
  let busy = true;
  let calls = 0;
  let current: Promise<void> = Promise.resolve();
  const nextAppend = (): Promise<void> => new Promise<void>((resolve) => setImmediate(() => {
    if (busy) current = nextAppend();
    resolve();
  }));
  current = nextAppend();
  t.after(() => { busy = false; });

  const first = createRedisFanout({
    url: redis.url, instanceId: 'first', logger: pino({ level: 'debug' }, sink), metrics: createMetrics('first'), antiEntropyMs: 0,
    durable: () => {
      calls++;
      return current;
    },
  });
  const second = createRedisFanout({
    url: redis.url, instanceId: 'second', logger: pino({ level: 'silent' }), metrics: createMetrics('second'), antiEntropyMs: 0,
  });
  t.after(() => Promise.all([first.close(), second.close()]));
  await waitFor(() => first.linkUp() && second.linkUp(), { message: 'both instances linked to redis' });
  const connection = { readOnly: false, isAuthenticated: true };
  const one = new Hocuspocus({ extensions: [first.extension], quiet: true } as ConstructorParameters<typeof Hocuspocus>[0]);
  const two = new Hocuspocus({ extensions: [second.extension], quiet: true } as ConstructorParameters<typeof Hocuspocus>[0]);
  await one.createDocument('steady', {} as never, 'socket-one', connection);
  // Loading it on the second instance publishes its sync step 1.
  await two.createDocument('steady', {} as never, 'socket-two', connection);

  await waitFor(() => lines.some((l) => l.msg?.startsWith('a peer\'s sync step 1 left unanswered')),
    { timeoutMs: 20_000, message: 'the first instance stops waiting on appends that keep coming' });
  const after = calls;
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calls, after, 'nothing waits on the appends any more');
  // One look and three more rounds for the peer's frame; none for this instance's own step 1, published on load.
  assert.ok(calls <= 4, `a bounded number of rounds, own frames not waited on (${calls} looks at the log)`);
});
