// Token lifetime on open connections: shortly before a token expires the
// server asks the client for a fresh one; a client that sends one stays, one
// that does not is closed with 4401 when the token expires.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { connectRaw } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';

test('a connection whose token expires is closed with 4401 unless the client presents a fresh token', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'expiry.db'), '--jwt-secret', TEST_SECRET]);
  const docs = { 'expiry/*': 'write' };
  // A raw client keeps its token, which expires in two seconds.
  const stale = await connectRaw(server.url, 'expiry/doc', { token: await hs256Token({ sub: 'old', docs, expiresIn: 2 }) });
  // A provider fetches its token from a function: the first expires in two seconds, later ones in an hour.
  let issued = 0;
  const fresh = hocuspocusClient(t, server.url, 'expiry/doc', {
    token: async () => hs256Token({ sub: 'ada', docs, expiresIn: issued++ === 0 ? 2 : 3600 }),
  });
  await waitSettled([fresh]);
  const closed = await stale.closed;
  assert.equal(closed.code, 4401);
  assert.equal(closed.reason, 'token-expired');
  assert.ok(issued >= 2, 'the server asked the provider for a fresh token');
  // Past the first token's expiry, the provider still edits and is acknowledged.
  fresh.doc.getText('text').insert(0, 'still here');
  await waitSettled([fresh]);
  assert.equal(fresh.provider.configuration.websocketProvider.status, 'connected');
});
