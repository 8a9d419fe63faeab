// Writing a document over HTTP with POST /api/documents/{doc}/updates: the
// update is logged with the token's user, connected editors see it at once,
// and bad input is refused with a 4xx that says what is wrong, changing nothing.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as Y from 'yjs';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

test('a posted Yjs update is logged with the token\'s user, answered with its seq, and seen by a connected editor at once', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'content.db'), '--jwt-secret', TEST_SECRET]);
  const writer = await hs256Token({ sub: 'ada', docs: { 'notes/*': 'write' } });
  const reader = await hs256Token({ sub: 'eve', docs: { 'notes/*': 'read' } });
  const poster = await hs256Token({ sub: 'bob', docs: { 'notes/*': 'write' } });
  const editor = hocuspocusClient(t, server.url, 'notes/post', { token: writer });
  editor.doc.getText('text').insert(0, 'typed');
  await waitSettled([editor]);

  const source = new Y.Doc();
  Y.applyUpdate(source, Y.encodeStateAsUpdate(editor.doc));
  const before = Y.encodeStateVector(source);
  source.getText('text').insert(5, ' and posted');
  const update = Y.encodeStateAsUpdate(source, before);
  const url = `${server.http}/api/documents/notes%2Fpost/updates`;
  const post = (body: Uint8Array | string, token: string, type = 'application/octet-stream') =>
    fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });

  assert.equal((await post(update, reader)).status, 403, 'read is not enough');
  const wrongType = await post(update, poster, 'text/plain');
  assert.equal(wrongType.status, 415);
  assert.match(((await wrongType.json()) as { error: { message: string } }).error.message, /application\/octet-stream/);
  const garbage = await post(new Uint8Array([1, 2, 3, 250, 251]), poster);
  assert.equal(garbage.status, 400);
  assert.equal(((await garbage.json()) as { error: { code: string } }).error.code, 'MALFORMED_UPDATE');
  const history = async () => (await (await fetch(`${server.http}/api/documents/notes%2Fpost/history`, { headers: { authorization: `Bearer ${reader}` } })).json()) as
    Array<{ seq: number; user: string | null }>;
  assert.equal((await history()).length, 1, 'refused input logged nothing');

  const answer = await post(update, poster);
  assert.equal(answer.status, 200);
  assert.deepEqual(await answer.json(), { doc: 'notes/post', seq: 2 });
  assert.deepEqual((await history()).map((e) => [e.seq, e.user]), [[1, 'ada'], [2, 'bob']]);
  await waitFor(() => editor.doc.getText('text').toString() === 'typed and posted', { message: 'the editor sees the posted update' });

  // Posting it again changes nothing and logs nothing: the answer is the seq that holds it.
  assert.deepEqual(await (await post(update, poster)).json(), { doc: 'notes/post', seq: 2 });
  assert.equal((await history()).length, 2);
});
