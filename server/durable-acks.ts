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
import { MessageType } from './frames.js';

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
}

export class DurableAcks implements WebSocketLike {
  private readonly queues = new Map<string, Expected[]>();
  private waiting = 0;
  private failed = false;

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
    let queue = this.queues.get(address);
    if (queue === undefined) {
      queue = [];
      this.queues.set(address, queue);
    }
    const expected: Expected = { durable: commit === null, ack: null };
    queue.push(expected);
    if (commit === null) return;
    this.setWaiting(this.waiting + 1);
    commit.then(() => {
      expected.durable = true;
      this.setWaiting(this.waiting - 1);
      this.release(address);
    }, (error: Error) => {
      this.setWaiting(this.waiting - 1);
      if (this.failed) return;
      this.failed = true;
      this.queues.clear();
      this.options.onFailure(error);
    });
  }

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (this.queues.size > 0 && ArrayBuffer.isView(data)) {
      const frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const decoder = decoding.createDecoder(frame);
      const address = decoding.readVarString(decoder);
      if (decoding.readVarUint(decoder) === MessageType.SyncStatus) {
        const queue = this.queues.get(address);
        const expected = queue?.find((entry) => entry.ack === null);
        if (expected !== undefined) {
          expected.ack = frame;
          this.release(address);
          return;
        }
      }
    }
    if (this.failed && ArrayBuffer.isView(data)) {
      // After a failed append nothing more may look acknowledged.
      const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      decoding.readVarString(decoder);
      if (decoding.readVarUint(decoder) === MessageType.SyncStatus) return;
    }
    this.inner.send(data);
  }

  close(code?: number, reason?: string): void {
    this.inner.close(code, reason);
  }

  /** Sends, in order, the acks at the head of `address`'s queue whose updates are durable. */
  private release(address: string): void {
    const queue = this.queues.get(address);
    if (queue === undefined) return;
    while (queue.length > 0 && queue[0].durable && queue[0].ack !== null) {
      const { ack } = queue.shift()!;
      if (this.failed) return;
      this.inner.send(ack!);
    }
    if (queue.length === 0) this.queues.delete(address);
  }

  private setWaiting(waiting: number): void {
    this.waiting = waiting;
    this.options.onBacklog?.(waiting);
  }
}
