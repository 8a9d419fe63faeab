// Bad input: malformed frames close only the connection that sent them, with
// the documented close code, while the server and every other client carry
// on, and nothing of them reaches the log.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as encoding from 'lib0/encoding';
import * as prng from 'lib0/prng';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { runCli } from './helpers/cli.js';
import { hocuspocusClient, waitConverged, waitSettled, yWebsocketClient } from './helpers/clients.js';
import { authFrame, syncFrame } from './helpers/raw-client.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

function frame(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

/** Sends `frames` after authenticating `doc` and resolves with the close code the server chose. */
async function sendAndWaitForClose(url: string, doc: string, frames: Uint8Array[], options: { text?: boolean } = {}): Promise<number> {
  const socket = new WebSocket(url);
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve) => socket.once('open', () => resolve()));
  socket.send(authFrame(doc));
  for (const f of frames) socket.send(options.text === true ? Buffer.from(f).toString('latin1') : f);
  return closed;
}

const validUpdate = (() => {
  const doc = new Y.Doc();
  doc.getText('text').insert(0, 'this must never be stored');
  return Y.encodeStateAsUpdate(doc);
})();

const malformed: Record<string, { frames: (doc: string) => Uint8Array[]; code: number; text?: boolean }> = {
  'a truncated update': { code: 4400, frames: (doc) => [syncFrame(doc, 2, validUpdate).slice(0, -4)] },
  'an update whose bytes are not a Yjs update': { code: 4400, frames: (doc) => [syncFrame(doc, 2, new Uint8Array([5, 200, 1, 7, 7, 7, 7]))] },
  'a varint that never ends': { code: 4400, frames: (doc) => [frame((e) => { encoding.writeVarString(e, doc); encoding.writeUint8Array(e, new Uint8Array(12).fill(0xff)); })] },
  'an unknown message type': { code: 4400, frames: (doc) => [frame((e) => { encoding.writeVarString(e, doc); encoding.writeVarUint(e, 42); })] },
  'an unknown sync step': { code: 4400, frames: (doc) => [frame((e) => { encoding.writeVarString(e, doc); encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 9); encoding.writeVarUint8Array(e, validUpdate); })] },
  'trailing bytes after a valid update': { code: 4400, frames: (doc) => [new Uint8Array([...syncFrame(doc, 2, validUpdate), 1, 2, 3])] },
  'a server-only message type': { code: 4400, frames: (doc) => [frame((e) => { encoding.writeVarString(e, doc); encoding.writeVarUint(e, 6); encoding.writeVarString(e, 'x'); })] },
  'awareness that is not JSON': { code: 4400, frames: (doc) => [frame((e) => {
    encoding.writeVarString(e, doc);
    encoding.writeVarUint(e, 1);
    encoding.writeVarUint8Array(e, frame((a) => { encoding.writeVarUint(a, 1); encoding.writeVarUint(a, 5); encoding.writeVarUint(a, 1); encoding.writeVarString(a, '{not json'); }));
  })] },
  'a text frame': { code: 4400, text: true, frames: (doc) => [syncFrame(doc, 2, validUpdate)] },
  'an invalid document name': { code: 4422, frames: () => [syncFrame('not a valid name!', 2, validUpdate)] },
  'an empty frame': { code: 4400, frames: () => [new Uint8Array(0)] },
};

test('each kind of malformed frame closes its connection with the documented code and stores nothing', async (t) => {
  const data = join(tempDir(t), 'bad.db');
  const server = await startServerProcess(t, ['--data', data]);
  for (const [name, { frames, code, text }] of Object.entries(malformed)) {
    const doc = `victim-${name.replaceAll(' ', '-')}`;
    assert.equal(await sendAndWaitForClose(server.url, doc, frames(doc), { text }), code, name);
  }
  const history = await runCli(['history', 'victim-a-truncated-update', '--json', '--data', data]);
  assert.equal(history.stdout.trim(), '[]');
  const documents = JSON.parse((await (await fetch(`${server.http}/api/documents`)).text()) as string) as { documents: string[] };
  assert.deepEqual(documents.documents, [], 'no malformed frame created a document in the log');
});

// One refused frame is one event: one warn line (Hocuspocus' own console
// reports of the refusal are not repeated into the log) and one count.
for (const protocol of ['y-websocket', 'hocuspocus'] as const) {
  test(`one malformed update from a ${protocol} client is one warn line and one refusal counted`, async (t) => {
    const server = await startServerProcess(t, ['--data', join(tempDir(t), 'one-line.db')]);
    const doc = `one-line-${protocol}`;
    const notYjs = new Uint8Array([5, 200, 1, 7, 7, 7, 7]);
    let code: number;
    if (protocol === 'y-websocket') {
      const socket = new WebSocket(`${server.url}/yjs/${doc}`);
      socket.on('error', () => undefined);
      const closed = new Promise<number>((resolve) => socket.on('close', (c) => resolve(c)));
      // As y-websocket does: sync step 1 first; the server's answer says the document is open for this socket.
      const synced = new Promise<void>((resolve) => socket.once('message', () => resolve()));
      await new Promise<void>((resolve) => socket.once('open', () => resolve()));
      socket.send(frame((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc())); }));
      await synced;
      socket.send(frame((e) => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 2); encoding.writeVarUint8Array(e, notYjs); }));
      code = await closed;
    } else {
      code = await sendAndWaitForClose(server.url, doc, [syncFrame(doc, 2, notYjs)]);
    }
    assert.equal(code, 4400);
    const metrics = await (await fetch(`${server.http}/metrics`)).text();
    const counted = /^palimpsest_refusals_total\{reason="malformed-frame"[^}]*\} (\d+)$/m.exec(metrics);
    assert.equal(counted?.[1], '1', 'the refusal is counted once');
    // Everything the refused frame made the server log is out once it has stopped.
    assert.equal(await server.kill('SIGTERM'), 0);
    await waitFor(() => server.logs.some((line) => line.msg === 'stopped'), { message: 'the "stopped" log line' });
    const warnings = server.logs.filter((line) => (line.level === 'warn' || line.level === 'error') && line.msg !== undefined &&
      !String(line.msg).startsWith('no authentication configured'));
    assert.deepEqual(warnings.map((line) => line.msg), ['malformed update refused'], JSON.stringify(warnings));
    assert.equal(warnings[0].doc, doc);
  });
}

test('random and mutated frames against a live server: it stays up, other clients keep editing, nothing bad is stored', async (t) => {
  const seed = Number(process.env.PALIMPSEST_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  const rng = prng.create(seed);
  const data = join(tempDir(t), 'fuzz.db');
  const server = await startServerProcess(t, ['--data', data]);
  const good = [hocuspocusClient(t, server.url, 'good'), yWebsocketClient(t, server.url, 'good'), hocuspocusClient(t, server.url, 'good')];
  await waitSettled(good);

  // Valid frames of every kind, recorded from a real document, to mutate.
  const source = new Y.Doc();
  const sourceUpdates: Uint8Array[] = [];
  source.on('update', (u: Uint8Array) => sourceUpdates.push(u));
  for (let i = 0; i < 20; i++) source.getText('text').insert(0, prng.word(rng, 1, 10));
  const seeds = [
    ...sourceUpdates.map((u) => syncFrame('fuzz', 2, u)),
    syncFrame('fuzz', 1, Y.encodeStateAsUpdate(source)),
    syncFrame('fuzz', 0, Y.encodeStateVector(source)),
    authFrame('fuzz', 'token'),
    frame((e) => { encoding.writeVarString(e, 'fuzz'); encoding.writeVarUint(e, 3); }),
  ];

  const closeCodes = new Map<number, number>();
  let sent = 0;
  for (let connection = 0; connection < 40; connection++) {
    const socket = new WebSocket(server.url);
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve) => socket.once('open', () => resolve()));
    socket.send(authFrame('fuzz'));
    for (let i = 0; i < 60 && socket.readyState === WebSocket.OPEN; i++) {
      const base = prng.oneOf(rng, seeds);
      const mutated = new Uint8Array(base);
      const kind = prng.uint32(rng, 0, 3);
      if (kind === 0) mutated[prng.uint32(rng, 0, mutated.length - 1)] = prng.uint32(rng, 0, 255);
      else if (kind === 1) socket.send(mutated.slice(0, prng.uint32(rng, 0, mutated.length - 1)));
      else if (kind === 2) socket.send(prng.uint8Array(rng, prng.uint32(rng, 1, 64)));
      if (kind === 0 || kind === 3) socket.send(mutated);
      sent++;
      // The good clients keep typing during the attack.
      if (i % 20 === 0) prng.oneOf(rng, good).doc.getText('text').insert(0, `${connection}.${i} `);
    }
    if (socket.readyState === WebSocket.OPEN) socket.close();
    const code = await closed;
    closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
  }
  t.diagnostic(`${sent} fuzz frames; close codes ${JSON.stringify([...closeCodes])}`);
  assert.ok((closeCodes.get(4400) ?? 0) > 0, 'malformed frames were refused with 4400');

  const health = await fetch(`${server.http}/healthz`);
  assert.equal(health.status, 200);
  // Let the edits made during the attack settle first, so the next one is not concurrent with them.
  await waitSettled(good);
  await waitConverged(good.map((c) => c.doc));
  good[0].doc.getText('text').insert(0, 'after the attack ');
  await waitSettled(good);
  await waitConverged(good.map((c) => c.doc));
  assert.ok(good[1].doc.getText('text').toString().startsWith('after the attack '));

  // The log of the good document holds only what good clients wrote.
  const goodClientIds = new Set(good.map((c) => c.doc.clientID));
  const history = JSON.parse((await runCli(['history', 'good', '--json', '--data', data])).stdout) as Array<{ update: string }>;
  for (const entry of history) {
    for (const struct of Y.decodeUpdate(Buffer.from(entry.update, 'base64')).structs) {
      assert.ok(goodClientIds.has(struct.id.client), `struct of client ${struct.id.client} in the good document (seed ${seed})`);
    }
  }
  // Whatever the fuzzer got logged was a well-formed update, and the log replays cleanly.
  const verify = await runCli(['verify', '--data', data]);
  assert.equal(verify.code, 0, `${verify.stdout}${verify.stderr} (seed ${seed})`);
});
