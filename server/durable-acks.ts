// Holds each SyncStatus ack until the update it acknowledges is durable.
//
// Hocuspocus applies a client's update (and fans it out to the document's
// other clients) right after the durable log's beforeSync hook, then sends the
// sender a SyncStatus ack. The durable log starts the append in beforeSync
// without waiting for its commit, so one connection's updates that arrive
// faster than a commit are committed together and reach the other clients
// without waiting on fsync; this gate stands between Hocuspocus and the socket
// and lets each ack out only once its append has committed, in the order the
// updates came. An append that fails closes the socket without any further
// ack: the client resends everything unacknowledged after it reconnects.
//
// One gate per socket; on a multiplexed socket each document (message address)
// keeps its own order. Invariant: every `expect` is matched by exactly one
// SyncStatus frame, because Hocuspocus answers each sync step 2 and update it
// lets through beforeSync with one SyncStatus (refused ones close the socket).

import * as decoding from 'lib0/decoding';
import type { WebSocketLike } from '@hocuspocus/server';
import { CloseCodes } from './close-codes.js';
import { MessageType } from './frames.js';

/** Hocuspocus' auth sub-message that refuses a document. */
const AUTH_PERMISSION_DENIED = 1;

interface Expected {
  /** Settled: committed (or nothing to commit). */
  durable: boolean;
  /** The SyncStatus frame Hocuspocus sent for this update, held until `durable`. */
  ack: Uint8Array | null;
}

export interface DurableAcksOptions {
  /** Called once when an append fails: close the socket without acknowledging anything more. */
  onFailure(error: Error): void;
  /** Called when the number of updates waiting for their commit changes. */
  onBacklog?(waiting: number): void;
  /** Runs `send` calls so that their frames reach the socket in one write. */
  corked?(run: () => void): void;
}

/** One document address: updates in order; the first `acked` of them have their SyncStatus frame. */
interface AddressQueue {
  entries: Expected[];
  acked: number;
}

export class DurableAcks implements WebSocketLike {
  /** Created with the first update and dropped when all are acknowledged: an idle socket holds none. */
  private queues: Map<string, AddressQueue> | null = null;
  private waiting = 0;
  private failed = false;
  /** Addresses with acks that became releasable in this tick; released together at its end. */
  private releasing: Set<string> | null = null;

  constructor(private readonly inner: WebSocketLike, private readonly options: DurableAcksOptions) {}

  get readyState(): number {
    return this.inner.readyState;
  }

  /** Updates of this socket whose commit has not been confirmed yet. */
  get backlog(): number {
    return this.waiting;
  }

  /**
   * Registers the update Hocuspocus is about to apply for `address`; its ack
   * waits for `commit` (null: nothing to wait for, e.g. a read-only refusal).
   */
  expect(address: string, commit: Promise<unknown> | null): void {
    this.queues ??= new Map();
    let queue = this.queues.get(address);
    if (queue === undefined) {
      queue = { entries: [], acked: 0 };
      this.queues.set(address, queue);
    }
    const expected: Expected = { durable: commit === null, ack: null };
    queue.entries.push(expected);
    if (commit === null) return;
    this.setWaiting(this.waiting + 1);
    commit.then(() => {
      expected.durable = true;
      this.setWaiting(this.waiting - 1);
      this.releaseSoon(address);
    }, (error: Error) => {
      this.setWaiting(this.waiting - 1);
      if (this.failed) return;
      this.failed = true;
      this.queues = null;
      this.options.onFailure(error);
    });
  }

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (!ArrayBuffer.isView(data)) {
      this.inner.send(data);
      return;
    }
    const frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const decoder = decoding.createDecoder(frame);
    // Most frames are broadcasts (Sync, Awareness) that pass as they are: the
    // address is skipped, not decoded, to reach the type.
    const addressLength = decoding.readVarUint(decoder);
    decoder.pos += addressLength;
    const type = decoding.readVarUint(decoder);
    if (type !== MessageType.SyncStatus && type !== MessageType.Close && type !== MessageType.Auth) {
      this.inner.send(data);
      return;
    }
    const address = decoding.readVarString(decoding.createDecoder(frame));
    if (type === MessageType.SyncStatus) {
      // After a failed append nothing more may look acknowledged.
      if (this.failed) return;
      const queue = this.queues?.get(address);
      if (queue !== undefined && queue.acked < queue.entries.length) {
        queue.entries[queue.acked++].ack = frame;
        this.release(address);
        return;
      }
    } else if (type === MessageType.Close) {
      // The document's connection ends (Hocuspocus closed it): nothing of it is waited for any more.
      this.forget(address);
    }
    this.inner.send(data);
    if (type === MessageType.Auth && decoding.readVarUint(decoder) === AUTH_PERMISSION_DENIED && decoding.hasContent(decoder) &&
        decoding.readVarString(decoder) === CloseCodes.StorageUnavailable.reason) {
      // A document that could not be loaded: a condition that passes. Hocuspocus only refuses
      // the document, which a provider takes as final; closing the socket makes it reconnect.
      setImmediate(() => this.inner.close(CloseCodes.StorageUnavailable.code, CloseCodes.StorageUnavailable.reason));
    }
  }

  close(code?: number, reason?: string): void {
    this.inner.close(code, reason);
  }

  /**
   * The updates of one commit settle together, each in its own microtask:
   * their acks go out at the end of the tick, in one write to the socket
   * instead of one each (a write is a system call: with one connection
   * flooding at 2,000 updates/s, its acks' writes took 0.29 s of the
   * server's 5.2 s of busy time).
   */
  private releaseSoon(address: string): void {
    if (this.releasing !== null) {
      this.releasing.add(address);
      return;
    }
    this.releasing = new Set([address]);
    process.nextTick(() => {
      const addresses = this.releasing!;
      this.releasing = null;
      const run = () => {
        for (const one of addresses) this.release(one);
      };
      if (this.options.corked === undefined) run();
      else this.options.corked(run);
    });
  }

  /** Sends, in order, the acks at the head of `address`'s queue whose updates are durable. */
  private release(address: string): void {
    const queue = this.queues?.get(address);
    if (queue === undefined) return;
    let released = 0;
    while (released < queue.acked && queue.entries[released].durable && !this.failed) {
      this.inner.send(queue.entries[released].ack!);
      released += 1;
    }
    if (released > 0) {
      queue.entries.splice(0, released);
      queue.acked -= released;
    }
    if (queue.entries.length === 0) this.forget(address);
  }

  private forget(address: string): void {
    if (this.queues?.delete(address) === true && this.queues.size === 0) this.queues = null;
  }

  private setWaiting(waiting: number): void {
    this.waiting = waiting;
    this.options.onBacklog?.(waiting);
  }
}
