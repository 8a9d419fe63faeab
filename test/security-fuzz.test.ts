// A seeded mutation fuzzer against a real `palimpsest serve`: frames recorded
// from real clients (@hocuspocus/provider and y-websocket: auth, sync steps,
// updates, awareness, stateless, token refresh, close) are replayed, mutated
// (bit flips, truncation, splices, varint bombs, wrong types) and sprayed over
// many connections, while honest clients keep editing. The server must stay
// up, honest edits must keep flowing and be logged, memory must stay bounded,
// and the fuzzer may reach the log only where its token lets it write.
//
// Replay a failure with FUZZ_SEED=<seed printed in the diagnostics>.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as prng from 'lib0/prng';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { hocuspocusClient, waitConverged, waitSettled, yWebsocketClient } from './helpers/clients.js';
import { frames as frameOf, rawSocket } from './helpers/raw-socket.js';
import { cliPath, startServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

const TARGET_FRAMES = Number(process.env.FUZZ_FRAMES ?? 100_000);
const WORKERS = 8;
const BATCH = 40;
const MUTATION_RATE = 0.3;

/** Frames a real client sent, captured by wrapping its WebSocket. */
function recordingWebSocket(sink: Uint8Array[]): typeof WebSocket {
  return class RecordingWebSocket extends WebSocket {
    override send(data: unknown, ...rest: unknown[]): void {
      if (ArrayBuffer.isView(data)) sink.push(new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
      else if (data instanceof ArrayBuffer) sink.push(new Uint8Array(data.slice(0)));
      (super.send as (...args: unknown[]) => void)(data, ...rest);
    }
  } as unknown as typeof WebSocket;
}

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]);
}

/** Rewrites the document name of a Hocuspocus frame (frames that do not decode are kept as they are). */
function readdress(frame: Uint8Array, documentName: string): Uint8Array {
  try {
    const decoder = decoding.createDecoder(frame);
    decoding.readVarString(decoder);
    const encoder = encoding.createEncoder();
    encoding.writeVarString(encoder, documentName);
    encoding.writeUint8Array(encoder, frame.subarray(decoder.pos));
    return encoding.toUint8Array(encoder);
  } catch {
    return frame;
  }
}

function mutate(gen: prng.PRNG, frame: Uint8Array, corpus: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(frame);
  switch (prng.uint32(gen, 0, 8)) {
    case 0: { // flip a few bytes
      for (let i = prng.uint32(gen, 1, 4); i > 0 && bytes.length > 0; i--) bytes[prng.uint32(gen, 0, bytes.length - 1)] ^= 1 << prng.uint32(gen, 0, 7);
      return bytes;
    }
    case 1: // truncate
      return bytes.subarray(0, prng.uint32(gen, 0, Math.max(0, bytes.length - 1)));
    case 2: { // splice the head of this frame onto the tail of another
      const other = prng.oneOf(gen, corpus);
      const cut = prng.uint32(gen, 0, bytes.length);
      const from = prng.uint32(gen, 0, other.length);
      return concat(bytes.subarray(0, cut), other.subarray(from));
    }
    case 3: { // a varint bomb: continuation bytes where a length or type is read
      const at = prng.uint32(gen, 0, bytes.length);
      const bomb = new Uint8Array(prng.uint32(gen, 1, 12)).fill(0xff);
      return concat(bytes.subarray(0, at), bomb, bytes.subarray(at));
    }
    case 4: { // a huge or wrong length: overwrite one byte with a large varint start
      if (bytes.length === 0) return bytes;
      bytes[prng.uint32(gen, 0, bytes.length - 1)] = prng.uint32(gen, 0x80, 0xff);
      return bytes;
    }
    case 5: { // duplicate a section
      const start = prng.uint32(gen, 0, bytes.length);
      const end = prng.uint32(gen, start, bytes.length);
      return concat(bytes.subarray(0, end), bytes.subarray(start));
    }
    case 6: { // another message type right after the name
      try {
        const decoder = decoding.createDecoder(bytes);
        decoding.readVarString(decoder);
        if (decoder.pos < bytes.length) bytes[decoder.pos] = prng.uint32(gen, 0, 12);
      } catch {
        bytes[0] = prng.uint32(gen, 0, 255);
      }
      return bytes;
    }
    case 7: // random bytes
      return prng.uint8Array(gen, prng.uint32(gen, 0, 64));
    default: { // append junk
      return concat(bytes, prng.uint8Array(gen, prng.uint32(gen, 1, 16)));
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

test('a seeded mutation fuzzer over 100,000 frames leaves the server up, honest editors editing, memory bounded and the log clean', { timeout: 180_000 }, async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`FUZZ_SEED=${seed}`);
  console.log(`security-fuzz: FUZZ_SEED=${seed}`);
  const gen = prng.create(seed);
  const dir = tempDir(t);
  const data = join(dir, 'fuzz.db');
  const server = await startServerProcess(t, ['--data', data, '--jwt-secret', TEST_SECRET,
    // Rate limiting would end most fuzz connections before their frames are parsed.
    '--max-messages-per-second', '0', '--max-connections-per-address', '0', '--max-message-bytes', '262144', '--auth-timeout-ms', '2000']);
  const pid = server.child.pid!;
  const admin = await hs256Token({ sub: 'admin', docs: { '*': 'write' } });
  const honestToken = await hs256Token({ sub: 'honest', docs: { 'honest/*': 'write' } });
  const tokens = {
    ro: await hs256Token({ sub: 'fuzzer-ro', docs: { 'fuzz-ro/*': 'read' } }),
    rw: await hs256Token({ sub: 'fuzzer-rw', docs: { 'fuzz-rw/*': 'write' } }),
  };

  // 1. Record real traffic of both client kinds.
  const hocuspocusCorpus: Uint8Array[] = [];
  const yCorpus: Uint8Array[] = [];
  {
    const socket = new HocuspocusProviderWebsocket({ url: server.url, WebSocketPolyfill: recordingWebSocket(hocuspocusCorpus) as unknown as typeof globalThis.WebSocket });
    const provider = new HocuspocusProvider({ websocketProvider: socket, name: 'fuzz-rw/record', document: new Y.Doc(), token: tokens.rw });
    provider.attach();
    await waitFor(() => provider.isSynced, { message: 'recorder synced' });
    const text = provider.document.getText('t');
    for (let i = 0; i < 30; i++) {
      text.insert(prng.uint32(gen, 0, text.length), prng.word(gen, 1, 8));
      if (i % 3 === 0 && text.length > 2) text.delete(0, 2);
      provider.document.getMap('m').set(`k${i % 4}`, { i, s: 'v' });
      provider.setAwarenessField('cursor', { anchor: i, head: i + 1 });
    }
    provider.sendStateless(JSON.stringify({ hello: 'world' }));
    await provider.sendToken();
    await waitFor(() => provider.unsyncedChanges === 0, { message: 'recorder acknowledged' });
    provider.destroy();
    socket.destroy();

    const ydoc = new Y.Doc();
    const yProvider = new WebsocketProvider(`${server.url}/yjs`, encodeURIComponent('fuzz-rw/record-y'), ydoc, {
      WebSocketPolyfill: recordingWebSocket(yCorpus) as unknown as typeof globalThis.WebSocket, params: { token: tokens.rw }, disableBc: true,
    });
    await waitFor(() => yProvider.synced, { message: 'y-websocket recorder synced' });
    for (let i = 0; i < 20; i++) {
      ydoc.getText('t').insert(0, prng.word(gen, 1, 6));
      yProvider.awareness.setLocalStateField('cursor', { i });
    }
    await waitFor(() => yCorpus.length >= 40, { message: 'y-websocket frames recorded' });
    yProvider.destroy();
    yProvider.awareness.destroy();
  }
  const corpusTypes = new Set(hocuspocusCorpus.map((frame) => {
    const decoder = decoding.createDecoder(frame);
    decoding.readVarString(decoder);
    return decoding.readVarUint(decoder);
  }));
  console.log(`security-fuzz: recorded ${hocuspocusCorpus.length} + ${yCorpus.length} frames`);
  t.diagnostic(`recorded ${hocuspocusCorpus.length} Hocuspocus frames (types ${[...corpusTypes].sort().join(',')}) and ${yCorpus.length} y-websocket frames`);
  // The provider's Close frame (type 7) is sent on destroy; add one by hand if the socket was gone first.
  hocuspocusCorpus.push(frameOf.queryAwareness('fuzz-rw/record'));

  // 2. Honest editors on their own document, editing throughout.
  const honest = [
    hocuspocusClient(t, server.url, 'honest/doc', { token: honestToken }),
    hocuspocusClient(t, server.url, 'honest/doc', { token: honestToken }),
    yWebsocketClient(t, server.url, 'honest/doc', { token: honestToken }),
  ];
  await waitSettled(honest);
  let honestEdits = 0;
  const editing = setInterval(() => {
    const client = honest[honestEdits % honest.length];
    client.doc.getText('t').insert(0, `${honestEdits % 10}`);
    honestEdits += 1;
  }, 20);
  t.after(() => clearInterval(editing));

  await waitFor(() => { global.gc?.(); return true; });
  const rssBefore = rssKb(pid);

  // 3. Spray.
  let sent = 0;
  let connections = 0;
  const closeCodes = new Map<number, number>();
  async function worker(index: number): Promise<void> {
    while (sent < TARGET_FRAMES) {
      const population = prng.oneOf(gen, ['ro', 'rw', 'none'] as const);
      const yjsPath = prng.bool(gen) && prng.bool(gen); // a quarter of the connections speak y-websocket
      const doc = `${population === 'rw' ? 'fuzz-rw' : 'fuzz-ro'}/w${index}-${connections}`;
      const token = population === 'none' ? '' : tokens[population];
      const url = yjsPath ? `${server.url}/yjs/${encodeURIComponent(doc)}?token=${token}` : server.url;
      const socket = rawSocket(t, url);
      connections += 1;
      try {
        await socket.opened;
      } catch {
        continue;
      }
      if (!yjsPath) socket.ws.send(frameOf.auth(doc, token));
      const corpus = yjsPath ? yCorpus : hocuspocusCorpus;
      let alive = true;
      void socket.closed.then(({ code }) => {
        alive = false;
        closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
      });
      while (alive && sent < TARGET_FRAMES) {
        for (let i = 0; i < BATCH && socket.ws.readyState === socket.ws.OPEN; i++) {
          let frame = prng.oneOf(gen, corpus);
          if (!yjsPath) frame = readdress(frame, doc);
          if (prng.real53(gen) < MUTATION_RATE) frame = mutate(gen, frame, corpus);
          socket.ws.send(frame);
          sent += 1;
        }
        // A sync step 1 is answered once everything before it was handled: pace on that, not on time.
        const answered = socket.received.length;
        if (socket.ws.readyState !== socket.ws.OPEN) break;
        socket.ws.send(yjsPath ? frameOf.syncStep1('').subarray(1) : frameOf.syncStep1(doc));
        await Promise.race([socket.closed, waitFor(() => socket.received.length > answered || !alive, { timeoutMs: 5000, intervalMs: 2 })
          .catch(() => undefined)]);
        if (prng.uint32(gen, 0, 9) === 0) break; // sometimes hang up ourselves
      }
      socket.ws.terminate();
      await socket.closed;
    }
  }
  const started = performance.now();
  const editsBefore = honestEdits;
  const progress = setInterval(() => console.log(`security-fuzz: ${sent} frames, ${connections} connections, ${JSON.stringify(Object.fromEntries(closeCodes))}`), 5000);
  t.after(() => clearInterval(progress));
  await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)));
  clearInterval(progress);
  const seconds = (performance.now() - started) / 1000;
  const editsDuring = honestEdits - editsBefore;
  t.diagnostic(`sent ${sent} frames over ${connections} connections in ${seconds.toFixed(1)} s; close codes ${JSON.stringify(Object.fromEntries(closeCodes))}`);
  assert.ok(sent >= TARGET_FRAMES);

  // 4. The server is up, honest clients converge and are acknowledged.
  clearInterval(editing);
  assert.equal(server.child.exitCode, null, 'server still running');
  assert.equal((await fetch(`${server.http}/readyz`)).status, 200);
  await waitSettled(honest.filter((c) => c.kind === 'hocuspocus'), 30_000);
  await waitConverged(honest.map((c) => c.doc), 30_000);
  assert.ok(editsDuring > 10, `honest clients made ${editsDuring} edits during the fuzzing`);
  const honestText = honest[0].doc.getText('t').toString();
  assert.equal(honestText.length, honestEdits);

  // 5. Memory: once the fuzz sockets are gone the server is back near where it started.
  await waitFor(async () => {
    const metrics = await (await fetch(`${server.http}/metrics`)).text();
    const open = [...metrics.matchAll(/palimpsest_connections\{[^}]*\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    return open === honest.length;
  }, { message: 'only the honest connections remain', timeoutMs: 30_000 });
  const rssAfter = rssKb(pid);
  t.diagnostic(`server RSS ${(rssBefore / 1024).toFixed(0)} MiB before, ${(rssAfter / 1024).toFixed(0)} MiB after`);
  assert.ok(rssAfter - rssBefore < 150 * 1024, `RSS grew by ${((rssAfter - rssBefore) / 1024).toFixed(0)} MiB`);

  // 6. The log: honest entries are all by "honest" and rebuild the honest text; the read-only
  //    fuzzer left nothing; whatever the read-write fuzzer got in is attributed to it and in its documents.
  const api = async (path: string) => (await fetch(`${server.http}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json();
  const documents = ((await api('/api/documents')) as { documents: string[] }).documents;
  const strays = documents.filter((doc) => doc !== 'honest/doc' && !doc.startsWith('fuzz-rw/'));
  assert.deepEqual(strays, [], 'no document outside the fuzzer\'s writable namespace was created');
  const honestEntries = (await api('/api/documents/honest%2Fdoc/history?limit=10000')) as Array<{ user: string; update: string }>;
  assert.deepEqual([...new Set(honestEntries.map((entry) => entry.user))], ['honest']);
  const rebuilt = new Y.Doc();
  for (const entry of honestEntries) Y.applyUpdate(rebuilt, Buffer.from(entry.update, 'base64'));
  assert.equal(rebuilt.getText('t').toString(), honestText);
  let fuzzEntries = 0;
  for (const doc of documents.filter((d) => d.startsWith('fuzz-rw/'))) {
    const entries = (await api(`/api/documents/${encodeURIComponent(doc)}/history?limit=10000`)) as Array<{ user: string }>;
    fuzzEntries += entries.length;
    assert.ok(entries.every((entry) => entry.user === 'fuzzer-rw'), `entries of ${doc} are the read-write fuzzer's`);
  }
  t.diagnostic(`the read-write fuzzer got ${fuzzEntries} entries into its own documents; the read-only fuzzer none`);

  // 7. Everything logged replays and matches its snapshots.
  assert.equal(await server.kill('SIGTERM'), 0);
  const verify = spawnSync(process.execPath, [cliPath, 'verify', '--data', data, '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
});
