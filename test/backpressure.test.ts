// Bursts are slowed, never cut off: a connection over its message rate stops
// being read for a while (TCP pushes back on the sender) and keeps every
// message, in order, one log entry per update. Against a real `palimpsest
// serve`, real clients and the CLI reading the same SQLite file.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';
import { runCli } from './helpers/cli.js';
import { hocuspocusClient, yWebsocketClient } from './helpers/clients.js';
import { frames, rawSocket } from './helpers/raw-socket.js';
import { startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { loadTrace, traceUpdates } from './helpers/traces.js';
import { waitFor } from './helpers/wait.js';

interface HistoryEntry { seq: number; update: string }

async function history(data: string, doc: string): Promise<HistoryEntry[]> {
  const result = await runCli(['history', doc, '--json', '--data', data]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as HistoryEntry[];
}

function replayText(entries: HistoryEntry[], field: string): string {
  const doc = new Y.Doc();
  for (const entry of entries) Y.applyUpdate(doc, Buffer.from(entry.update, 'base64'));
  return doc.getText(field).toString();
}

async function metric(http: string, name: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))) total += Number(match[1]);
  return total;
}

/** `count` one-character edits typed at the end of a new document's text "text", one update each. */
function typedUpdates(count: number): { source: Y.Doc; updates: Uint8Array[] } {
  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on('update', (update: Uint8Array) => updates.push(update));
  for (let i = 0; i < count; i++) source.getText('text').insert(source.getText('text').length, `${i % 10}`);
  return { source, updates };
}

/** Delivery time of one edit from `from` to `to`, from `to`'s update event. */
function deliveryMs(from: Y.Doc, to: Y.Doc, marker: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const onUpdate = () => {
      if (!to.getText('t').toString().includes(marker)) return;
      to.off('update', onUpdate);
      resolve(performance.now() - started);
    };
    to.on('update', onUpdate);
    from.getText('t').insert(0, marker);
  });
}

test('a flooding connection is slowed, not closed: all its updates are logged in order while other clients keep editing', async (t) => {
  const data = join(tempDir(t), 'flood.db');
  const server = await startServerProcess(t, ['--data', data, '--max-messages-per-second', '500', '--message-burst', '100']);
  const a = hocuspocusClient(t, server.url, 'flood/shared');
  const b = hocuspocusClient(t, server.url, 'flood/shared');
  await waitFor(() => a.provider.isSynced && b.provider.isSynced, { message: 'honest clients synced' });

  // The flooder writes 3,000 updates of its own document at once, as raw frames.
  const flooder = rawSocket(t, server.url);
  await flooder.opened;
  flooder.ws.send(frames.auth('flood/doc', ''));
  const { source, updates } = typedUpdates(3000);
  for (const update of updates) flooder.ws.send(frames.update('flood/doc', update));
  let closedWith: number | null = null;
  void flooder.closed.then(({ code }) => { closedWith = code; });

  // Meanwhile the honest clients keep editing, and see each other's edits.
  const during: number[] = [];
  for (let i = 0; i < 20; i++) during.push(await deliveryMs(a.doc, b.doc, `during${i};`));

  const acks = () => flooder.received.filter((frame) => frame[frame[0] + 1] === 8).length;
  await waitFor(() => closedWith === null && acks() >= updates.length, {
    timeoutMs: 60_000, message: `all ${updates.length} updates acknowledged (closed with ${closedWith})`,
  });
  assert.equal(closedWith, null, 'the flooder was never closed');
  assert.ok(await metric(server.http, 'palimpsest_throttled_total') >= 1, 'the flooder was slowed');

  const entries = await history(data, 'flood/doc');
  assert.equal(entries.length, updates.length, 'one log entry per update');
  assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => i + 1));
  assert.equal(replayText(entries, 'text'), source.getText('text').toString(), 'the log replays to what was sent, in order');
  during.sort((x, y) => x - y);
  t.diagnostic(`honest delivery during the flood: p50 ${during[10].toFixed(1)} ms, max ${during[19].toFixed(1)} ms`);
  assert.equal(a.provider.configuration.websocketProvider.status, 'connected');
});

test('a paused connection\'s frames already read are handed over at its rate too, not at full speed when the pause ends', async (t) => {
  // ws reads up to 64 KiB at a time (about 1,800 of these frames) and hands over all of it even while the
  // socket is paused; handled at once, a flooder's every pause ended in a burst at full speed.
  const data = join(tempDir(t), 'paced.db');
  const rate = 1000;
  const burst = 100;
  const server = await startServerProcess(t, ['--data', data, '--max-messages-per-second', String(rate), '--message-burst', String(burst)]);
  const flooder = rawSocket(t, server.url);
  await flooder.opened;
  const ackTimes: number[] = [];
  flooder.ws.on('message', (frame: Buffer) => {
    if (frame[frame[0] + 1] === 8) ackTimes.push(performance.now());
  });
  flooder.ws.send(frames.auth('paced/doc', ''));
  const { source, updates } = typedUpdates(3000);
  for (const update of updates) flooder.ws.send(frames.update('paced/doc', update));
  await waitFor(() => ackTimes.length >= updates.length, { timeoutMs: 60_000, message: `all ${updates.length} updates acknowledged` });

  // The most acks in any half second: the rate's share plus the burst allowance, and some slack.
  const windowMs = 500;
  let most = 0;
  for (let first = 0, last = 0; last < ackTimes.length; last++) {
    while (ackTimes[last] - ackTimes[first] > windowMs) first++;
    most = Math.max(most, last - first + 1);
  }
  const allowed = (rate * windowMs) / 1000 + burst + 300;
  t.diagnostic(`most acks in ${windowMs} ms: ${most} (allowed ${allowed}); all ${updates.length} in ${(ackTimes[ackTimes.length - 1] - ackTimes[0]).toFixed(0)} ms`);
  assert.ok(most <= allowed, `${most} acks in ${windowMs} ms at ${rate} messages/s`);
  const entries = await history(data, 'paced/doc');
  assert.equal(entries.length, updates.length, 'one log entry per update');
  assert.equal(replayText(entries, 'text'), source.getText('text').toString(), 'the log replays to what was sent, in order');
});

test('a stock provider replaying a real trace at full speed against default flags gets every update acknowledged, one entry each', async (t) => {
  const data = join(tempDir(t), 'replay.db');
  const server = await startServerProcess(t, ['--data', data]);
  const count = 20_000;
  const { texts } = traceUpdates(loadTrace('friendsforever_flat'), count);
  const writer = hocuspocusClient(t, server.url, 'replay/trace');
  const closes: number[] = [];
  writer.provider.configuration.websocketProvider.on('close', ({ event }: { event: { code: number } }) => closes.push(event.code));
  await waitFor(() => writer.provider.isSynced, { message: 'provider synced' });

  // The same transactions as the trace, made on the provider's document one after another.
  const ytext = writer.doc.getText('text');
  const trace = loadTrace('friendsforever_flat');
  for (const txn of trace.txns.slice(0, count)) {
    writer.doc.transact(() => {
      for (const [pos, del, ins] of txn.patches) {
        if (del > 0) ytext.delete(pos, del);
        if (ins.length > 0) ytext.insert(pos, ins);
      }
    });
  }
  assert.equal(ytext.toString(), texts[count - 1]);
  await waitFor(() => writer.provider.unsyncedChanges === 0, {
    timeoutMs: 60_000, message: `every update acknowledged (unsynced ${writer.provider.unsyncedChanges})`,
  });
  assert.deepEqual(closes, [], 'never disconnected');

  const entries = await history(data, 'replay/trace');
  assert.equal(entries.length, count, 'one log entry per transaction');
  const seed = Number(process.env.PALIMPSEST_SEED ?? Math.floor(Math.random() * 1e6));
  t.diagnostic(`seed ${seed} (replay with PALIMPSEST_SEED=${seed})`);
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 5; i++) {
    const seq = 1 + Math.floor(random() * count);
    const exported = await runCli(['export', 'replay/trace', '--at', String(seq), '--json', '--data', data]);
    assert.equal(exported.code, 0, exported.stderr);
    const doc = new Y.Doc();
    Y.applyUpdate(doc, Buffer.from((JSON.parse(exported.stdout) as { update: string }).update, 'base64'));
    assert.equal(doc.getText('text').toString(), texts[seq - 1], `export --at ${seq} equals the plain replay`);
  }
});

test('a stock y-websocket client typing faster than the rate limit keeps every edit and is never closed', async (t) => {
  const data = join(tempDir(t), 'yws.db');
  const server = await startServerProcess(t, ['--data', data, '--max-messages-per-second', '200', '--message-burst', '50']);
  const typist = yWebsocketClient(t, server.url, 'burst/yws');
  const reader = hocuspocusClient(t, server.url, 'burst/yws');
  const closes: number[] = [];
  typist.provider.on('connection-close', (event: CloseEvent | null) => { if (event !== null) closes.push(event.code); });
  await waitFor(() => typist.provider.synced && reader.provider.isSynced, { message: 'both synced' });
  const ytext = typist.doc.getText('text');
  for (let i = 0; i < 1500; i++) ytext.insert(ytext.length, String.fromCharCode(97 + (i % 26)));
  const expected = ytext.toString();
  await waitFor(() => reader.doc.getText('text').toString() === expected, {
    timeoutMs: 60_000, message: `the reader sees all 1,500 characters (has ${reader.doc.getText('text').length})`,
  });
  assert.deepEqual(closes, [], 'the y-websocket client was never closed');
  await waitFor(async () => replayText(await history(data, 'burst/yws'), 'text') === expected, { message: 'the log holds every edit' });
});

test('a burst is handed over a few frames a turn: another client\'s update is served within it, and the burst reaches readers merged', async (t) => {
  const data = join(tempDir(t), 'pace.db');
  const server = await startServerProcess(t, ['--data', data, '--max-messages-per-second', '0']);
  // A reader of the document that counts the update frames it is sent.
  const reader = rawSocket(t, server.url);
  await reader.opened;
  reader.ws.send(frames.auth('pace/doc', ''));
  reader.ws.send(frames.syncStep1('pace/doc'));
  const replica = new Y.Doc();
  let updateFrames = 0;
  reader.ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    decoding.readVarString(decoder);
    if (decoding.readVarUint(decoder) !== 0) return; // Sync
    const step = decoding.readVarUint(decoder);
    if (step === 0) return;
    if (step === 2) updateFrames += 1;
    Y.applyUpdate(replica, decoding.readVarUint8Array(decoder));
  });
  await waitFor(() => reader.received.length > 0, { message: 'the reader is answered' });

  const burster = rawSocket(t, server.url);
  const other = rawSocket(t, server.url);
  await Promise.all([burster.opened, other.opened]);
  burster.ws.send(frames.auth('pace/doc', ''));
  other.ws.send(frames.auth('pace/doc', ''));
  const source = new Y.Doc();
  const updates: Uint8Array[] = [];
  source.on('update', (update: Uint8Array) => updates.push(update));
  const count = 2000;
  for (let i = 0; i < count; i++) source.getText('t').insert(i, 'b');
  const otherDoc = new Y.Doc();
  const otherUpdates: Uint8Array[] = [];
  otherDoc.on('update', (update: Uint8Array) => otherUpdates.push(update));
  otherDoc.getText('t').insert(0, 'X');

  // The burst goes out in one write, about 60 KiB (one read of the
  // server's), and the other client's update right after it.
  const burstSocket = (burster.ws as unknown as { _socket: import('node:net').Socket })._socket;
  burstSocket.cork();
  for (const update of updates) burster.ws.send(frames.update('pace/doc', update));
  burstSocket.uncork();
  other.ws.send(frames.update('pace/doc', otherUpdates[0]));
  let burstBeforeOther: number | null = null;
  replica.on('update', () => {
    if (burstBeforeOther === null && replica.getText('t').toString().includes('X')) {
      burstBeforeOther = replica.getText('t').toString().split('').filter((c) => c === 'b').length;
    }
  });
  await waitFor(() => replica.getText('t').length === count + 1, {
    timeoutMs: 60_000, message: `the reader holds the burst and the other update (has ${replica.getText('t').length})`,
  });
  assert.notEqual(burstBeforeOther, null);
  t.diagnostic(`burst updates applied before the other client's: ${burstBeforeOther}; update frames the reader got for ${count + 1} updates: ${updateFrames}`);
  // All at once, the whole read (about 2,000 frames) would go before the other client's frame.
  assert.ok(burstBeforeOther! < count / 10, `the other client's update waited for ${burstBeforeOther} of the burst's`);
  // One a turn, every update would reach the reader on its own.
  assert.ok(updateFrames <= count / 3, `${updateFrames} update frames for ${count + 1} updates: the burst was not merged`);
  assert.equal((await history(data, 'pace/doc')).length, count + 1, 'one log entry per update');
});
