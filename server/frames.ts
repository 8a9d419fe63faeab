// Structural check of every incoming Hocuspocus frame before Hocuspocus sees
// it: `varString(documentName[\0sessionId]) · varUint(type) · body`.
//
// A frame that does not decode (truncated, bad varint, unknown type, trailing
// bytes, invalid awareness JSON) or names an invalid document is refused here,
// so nothing of it reaches a document or the log. Update bodies are decoded
// fully later, by the event store, right before they are appended.

import * as decoding from 'lib0/decoding';
import { CloseCodes, ConnectionRefusal } from './close-codes.js';
import { documentNameProblem } from './document-name.js';

/** Hocuspocus message types (see @hocuspocus/server types.ts). */
export const MessageType = {
  Sync: 0,
  Awareness: 1,
  Auth: 2,
  QueryAwareness: 3,
  SyncReply: 4,
  Stateless: 5,
  BroadcastStateless: 6,
  Close: 7,
  SyncStatus: 8,
  Ping: 9,
  Pong: 10,
} as const;

export const SyncStep = { Step1: 0, Step2: 1, Update: 2 } as const;

export interface FrameSummary {
  documentName: string;
  type: number;
  /** For Sync frames: the step; for Auth frames: the auth message type. */
  subtype: number | null;
  /** For Sync step 2 and update frames: the update bytes. */
  update: Uint8Array | null;
}

/** A Pong from @hocuspocus/provider is a bare type byte with no document name. */
export function isBarePong(frame: Uint8Array): boolean {
  return frame.length === 1 && frame[0] === MessageType.Pong;
}

export function inspectFrame(frame: Uint8Array): FrameSummary {
  try {
    return readFrame(frame);
  } catch (error) {
    if (error instanceof ConnectionRefusal) throw error;
    throw new ConnectionRefusal(CloseCodes.MalformedFrame, `frame does not decode (${(error as Error).message})`);
  }
}

function readFrame(frame: Uint8Array): FrameSummary {
  const decoder = decoding.createDecoder(frame);
  const address = decoding.readVarString(decoder);
  const separator = address.indexOf('\0');
  const documentName = separator === -1 ? address : address.slice(0, separator);
  const nameProblem = documentNameProblem(documentName);
  if (nameProblem !== null) throw new ConnectionRefusal(CloseCodes.InvalidDocumentName, nameProblem);
  const type = decoding.readVarUint(decoder);
  let subtype: number | null = null;
  let update: Uint8Array | null = null;
  switch (type) {
    case MessageType.Sync:
    case MessageType.SyncReply: {
      subtype = decoding.readVarUint(decoder);
      const body = decoding.readVarUint8Array(decoder);
      if (subtype === SyncStep.Step1) checkStateVector(body);
      else if (subtype === SyncStep.Step2 || subtype === SyncStep.Update) update = body;
      else throw new Error(`unknown sync step ${subtype}`);
      break;
    }
    case MessageType.Awareness:
      checkAwarenessUpdate(decoding.readVarUint8Array(decoder));
      break;
    case MessageType.Auth:
      subtype = decoding.readVarUint(decoder);
      if (subtype !== 0) throw new Error(`unknown auth message ${subtype}`);
      decoding.readVarString(decoder);
      if (decoding.hasContent(decoder)) decoding.readVarString(decoder); // provider version
      break;
    case MessageType.QueryAwareness:
      break;
    case MessageType.Stateless:
      decoding.readVarString(decoder);
      break;
    case MessageType.Close:
      if (decoding.hasContent(decoder)) decoding.readVarString(decoder);
      break;
    default:
      throw new Error(`message type ${type} is not accepted from clients`);
  }
  if (decoding.hasContent(decoder)) throw new Error('trailing bytes after the message');
  return { documentName, type, subtype, update };
}

function checkStateVector(bytes: Uint8Array): void {
  const decoder = decoding.createDecoder(bytes);
  const count = decoding.readVarUint(decoder);
  for (let i = 0; i < count; i++) {
    decoding.readVarUint(decoder);
    decoding.readVarUint(decoder);
  }
  if (decoding.hasContent(decoder)) throw new Error('trailing bytes after the state vector');
}

function checkAwarenessUpdate(bytes: Uint8Array): void {
  const decoder = decoding.createDecoder(bytes);
  const count = decoding.readVarUint(decoder);
  for (let i = 0; i < count; i++) {
    decoding.readVarUint(decoder); // client id
    decoding.readVarUint(decoder); // clock
    const state: unknown = JSON.parse(decoding.readVarString(decoder));
    if (state !== null && typeof state !== 'object') throw new Error('awareness state is not an object');
  }
  if (decoding.hasContent(decoder)) throw new Error('trailing bytes after the awareness update');
}
