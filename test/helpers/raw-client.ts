// A bare Hocuspocus-protocol client on `ws`: it sends exactly the frames a
// test asks for and records every frame and ack it receives. Used where the
// stock provider hides what matters (resends after a lost ack, SIGKILL right
// after an ack, malformed frames).

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import WebSocket from 'ws';
import { waitFor } from './wait.js';

const MessageType = { Sync: 0, Awareness: 1, Auth: 2, SyncStatus: 8 } as const;

export function authFrame(documentName: string, token = ''): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, documentName);
  encoding.writeVarUint(encoder, MessageType.Auth);
  encoding.writeVarUint(encoder, 0);
  encoding.writeVarString(encoder, token);
  return encoding.toUint8Array(encoder);
}

/** step: 0 = step 1 (state vector), 1 = step 2, 2 = update. */
export function syncFrame(documentName: string, step: 0 | 1 | 2, body: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, documentName);
  encoding.writeVarUint(encoder, MessageType.Sync);
  encoding.writeVarUint(encoder, step);
  encoding.writeVarUint8Array(encoder, body);
  return encoding.toUint8Array(encoder);
}

export interface RawClient {
  socket: WebSocket;
  /** Resolves with true (applied) or false (refused) when the server acks this update. */
  sendUpdate(update: Uint8Array, step?: 1 | 2): Promise<boolean>;
  send(frame: Uint8Array): void;
  acks: boolean[];
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** Connects and authenticates `documentName`; resolves once the server said "authenticated". */
export async function connectRaw(url: string, documentName: string, options: { token?: string } = {}): Promise<RawClient> {
  const socket = new WebSocket(url);
  const pendingAcks: Array<(applied: boolean) => void> = [];
  const acks: boolean[] = [];
  let authenticated = false;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.on('close', (code, reason) => {
      for (const pending of pendingAcks.splice(0)) pending(false);
      resolve({ code, reason: reason.toString() });
    });
  });
  socket.on('error', () => undefined); // the close event carries what tests check
  socket.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data));
    if (data.length === 1) return; // bare ping
    decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type === MessageType.Auth) {
      authenticated = decoding.readVarUint(decoder) === 2;
    } else if (type === MessageType.SyncStatus) {
      const applied = decoding.readVarUint(decoder) === 1;
      acks.push(applied);
      pendingAcks.shift()?.(applied);
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.send(authFrame(documentName, options.token));
  await waitFor(() => authenticated || socket.readyState !== WebSocket.OPEN, { message: `authentication of ${documentName}` });
  return {
    socket,
    acks,
    closed,
    send: (frame) => socket.send(frame),
    sendUpdate(update, step = 2) {
      return new Promise<boolean>((resolve) => {
        pendingAcks.push(resolve);
        socket.send(syncFrame(documentName, step, update));
      });
    },
    close: () => socket.close(),
  };
}
