// Lets a stock y-websocket client edit the same documents as
// @hocuspocus/provider clients. y-websocket frames are `varUint(type) · body`
// for one document named by the URL (/yjs/<document>); Hocuspocus frames carry
// the document name first. The bridge adds the name on the way in, strips it
// on the way out, and drops what y-websocket does not understand (SyncStatus
// acks, stateless messages, auth replies).
//
// Hocuspocus only opens a document after an Auth message, so the bridge sends
// one on the client's behalf with the `?token=` of the URL.
//
// y-websocket sends every awareness change it applies back to the server,
// peers' states it has just received from us included (@hocuspocus/provider
// does not): each awareness renewal on a document of n clients comes back n-1
// times. Hocuspocus builds a scratch Y.Doc and Awareness for every awareness
// frame, so those echoes, which change nothing, cost n times what the renewal
// itself does, and y-websocket clients started together renew together. The
// bridge drops an awareness frame in which the document's awareness would
// ignore every entry (see repeatsKnownAwareness).

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import type { WebSocketLike } from '@hocuspocus/server';
import type { WebSocket } from 'ws';
import type { Awareness } from 'y-protocols/awareness';
import { CloseCodes, type CloseCode } from './close-codes.js';
import { MessageType } from './frames.js';

/** The close code Hocuspocus itself sends for an idle connection. */
const HOCUSPOCUS_CONNECTION_TIMEOUT = 4408;

/** Hocuspocus auth sub-messages sent by the server. */
const AuthPermissionDenied = 1;

export class YWebsocketBridge implements WebSocketLike {
  private opened = false;

  /**
   * `awarenessOf` is the awareness of the loaded document, undefined while it is not loaded;
   * `onOpened` runs once, when the server first syncs the document with the client (it is loaded then).
   */
  constructor(
    private readonly ws: WebSocket, readonly documentName: string, private readonly awarenessOf: () => Awareness | undefined,
    private readonly onOpened: () => void = () => undefined,
  ) {}

  get readyState(): number {
    return this.ws.readyState;
  }

  /**
   * A y-websocket frame as the Hocuspocus frame it stands for. (The encoded
   * name is not kept between frames: an idle connection need not hold it.)
   */
  frameFromClient(frame: Uint8Array): Uint8Array {
    const encoder = encoding.createEncoder();
    encoding.writeVarString(encoder, this.documentName);
    encoding.writeUint8Array(encoder, frame);
    return encoding.toUint8Array(encoder);
  }

  /**
   * Whether `frame` (a y-websocket frame that passed inspectFrame) is an
   * awareness update of which the document's awareness would apply nothing:
   * y-protocols applies an entry only when its clock is newer than the one it
   * holds, or equal with a null state for a client it still has a state of.
   * Dropping such a frame changes no state and broadcasts nothing, exactly as
   * applying it would.
   */
  repeatsKnownAwareness(frame: Uint8Array): boolean {
    if (frame[0] !== MessageType.Awareness) return false;
    const awareness = this.awarenessOf();
    if (awareness === undefined) return false;
    const outer = decoding.createDecoder(frame);
    decoding.readVarUint(outer);
    const decoder = decoding.createDecoder(decoding.readVarUint8Array(outer));
    const entries = decoding.readVarUint(decoder);
    for (let i = 0; i < entries; i++) {
      const clientId = decoding.readVarUint(decoder);
      const clock = decoding.readVarUint(decoder);
      const state = decoding.readVarString(decoder);
      const known = awareness.meta.get(clientId)?.clock ?? 0;
      if (known < clock) return false;
      if (known === clock && awareness.states.has(clientId) && JSON.parse(state) === null) return false;
    }
    return true;
  }

  authFrame(token: string): Uint8Array {
    const encoder = encoding.createEncoder();
    encoding.writeVarString(encoder, this.documentName);
    encoding.writeVarUint(encoder, MessageType.Auth);
    encoding.writeVarUint(encoder, 0); // token
    encoding.writeVarString(encoder, token);
    return encoding.toUint8Array(encoder);
  }

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (!ArrayBuffer.isView(data)) return;
    const frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const decoder = decoding.createDecoder(frame);
    decoding.readVarString(decoder);
    const bodyStart = decoder.pos;
    const type = decoding.readVarUint(decoder);
    switch (type) {
      case MessageType.Sync:
      case MessageType.SyncReply:
      case MessageType.Awareness:
      case MessageType.QueryAwareness: {
        if (!this.opened && (type === MessageType.Sync || type === MessageType.SyncReply)) {
          this.opened = true;
          this.onOpened();
        }
        if (type === MessageType.SyncReply) {
          // y-websocket knows SyncReply as a plain sync message. Copy: Hocuspocus
          // may share one buffer between the connections it broadcasts to.
          const body = frame.slice(bodyStart);
          body[0] = MessageType.Sync;
          this.ws.send(body);
        } else {
          this.ws.send(frame.subarray(bodyStart));
        }
        return;
      }
      case MessageType.Auth:
        if (decoding.readVarUint(decoder) === AuthPermissionDenied) {
          const denial = closeCodeForDenial(decoding.hasContent(decoder) ? decoding.readVarString(decoder) : '');
          this.ws.close(denial.code, denial.reason);
        }
        return;
      case MessageType.Close:
        this.ws.close(1000, 'closed-by-server');
        return;
      default:
        // SyncStatus, Stateless, Ping: no y-websocket equivalent.
        return;
    }
  }

  close(code?: number, reason?: string): void {
    // Hocuspocus closes idle connections with 4408, which y-websocket would take as final.
    if (code === HOCUSPOCUS_CONNECTION_TIMEOUT) this.ws.close(CloseCodes.ConnectionTimeout.code, CloseCodes.ConnectionTimeout.reason);
    else this.ws.close(code, reason);
  }
}

/**
 * y-websocket only sees close codes, so a PermissionDenied becomes the close
 * code whose reason it carries (security.ts denies with 'unauthorized',
 * 'forbidden' or 'try-again-later', a failed load with 'storage-unavailable').
 * Any other reason is Hocuspocus' own answer to an error it did not expect
 * ('permission-denied'): that may pass, so 1011, which y-websocket retries.
 */
function closeCodeForDenial(reason: string): CloseCode {
  return Object.values(CloseCodes).find((close: CloseCode) => close.reason === reason) ?? CloseCodes.InternalError;
}
