// The few Hocuspocus-framed messages the burst and flood loads write by hand,
// and the message types they read back.

import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';

export const MessageType = { Sync: 0, Auth: 2, SyncReply: 4, SyncStatus: 8 } as const;
const SyncUpdate = 2;

function hocuspocusFrame(doc: string, write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, doc);
  write(encoder);
  return encoding.toUint8Array(encoder);
}

/** Authentication with an empty token. */
export const authFrame = (doc: string) => hocuspocusFrame(doc, (e) => {
  encoding.writeVarUint(e, MessageType.Auth);
  encoding.writeVarUint(e, 0);
  encoding.writeVarString(e, '');
});

export const updateFrame = (doc: string, update: Uint8Array) => hocuspocusFrame(doc, (e) => {
  encoding.writeVarUint(e, MessageType.Sync);
  encoding.writeVarUint(e, SyncUpdate);
  encoding.writeVarUint8Array(e, update);
});

/** Sync step 1 of an empty document: the server answers with everything it holds. */
export const step1Frame = (doc: string) => hocuspocusFrame(doc, (e) => {
  encoding.writeVarUint(e, MessageType.Sync);
  encoding.writeVarUint(e, 0);
  encoding.writeVarUint8Array(e, Y.encodeStateVector(new Y.Doc()));
});
