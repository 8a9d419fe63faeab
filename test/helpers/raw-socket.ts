// A bare WebSocket speaking Hocuspocus framing by hand, for tests that must
// send what no real client would (floods, malformed or oversize frames), and
// builders for the frames real clients send.

import type { TestContext } from 'node:test';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { authFrame, syncFrame } from './raw-client.js';

export interface RawSocket {
  ws: WebSocket;
  /** Resolves with the close code and reason once the socket is closed. */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves once open; rejects if it closes first. */
  opened: Promise<void>;
  received: Uint8Array[];
}

export function rawSocket(t: Pick<TestContext, 'after'>, url: string, headers: Record<string, string> = {}): RawSocket {
  const ws = new WebSocket(url, { headers });
  const received: Uint8Array[] = [];
  ws.on('message', (data: Buffer) => received.push(new Uint8Array(data)));
  ws.on('error', () => undefined); // the close event carries what the tests look at
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    void closed.then(({ code }) => reject(new Error(`closed with ${code} before opening`)));
  });
  opened.catch(() => undefined);
  t.after(() => ws.terminate());
  return { ws, closed, opened, received };
}

function frame(documentName: string, write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, documentName);
  write(encoder);
  return encoding.toUint8Array(encoder);
}

export const frames = {
  auth: (doc: string, token: string) => authFrame(doc, token),
  syncStep1: (doc: string, ydoc = new Y.Doc()) => syncFrame(doc, 0, Y.encodeStateVector(ydoc)),
  update: (doc: string, update: Uint8Array) => syncFrame(doc, 2, update),
  queryAwareness: (doc: string) => frame(doc, (e) => encoding.writeVarUint(e, 3)),
};
