// The mechanisms behind the resource limits (defaults and close codes are in
// config.ts, close-codes.ts and SECURITY.md): a token bucket that paces the
// messages of one connection, a counter of connections per client address and a running
// estimate of each document's size. security.ts decides when to consult them;
// nothing here does I/O.

import * as Y from 'yjs';

/**
 * `ratePerSecond` tokens a second up to `burst`; each message takes one.
 * Refilled lazily on take, so an idle connection costs no timer. A message
 * over the budget is still taken (the balance goes negative): the caller
 * stops reading the connection for the time the debt takes to repay, so a
 * fast sender is slowed by TCP backpressure and keeps every message.
 */
export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(private readonly ratePerSecond: number, private readonly burst: number, now = performance.now()) {
    this.tokens = burst;
    this.refilledAt = now;
  }

  /** Takes one token; returns how many milliseconds the sender must wait before its next message (0: none). */
  take(now = performance.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.ratePerSecond);
    this.refilledAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.ratePerSecond) * 1000;
  }
}

/** Open connections per client address; `max` 0 means unlimited. */
export class AddressLimiter {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /**
   * Takes a slot for `address`; false when the address is at its limit. Each
   * slot taken is given back with one release() (no closure per connection).
   */
  acquire(address: string): boolean {
    const count = this.open.get(address) ?? 0;
    if (this.max > 0 && count >= this.max) return false;
    this.open.set(address, count + 1);
    return true;
  }

  release(address: string): void {
    const left = (this.open.get(address) ?? 1) - 1;
    if (left === 0) this.open.delete(address);
    else this.open.set(address, left);
  }

  get addresses(): number {
    return this.open.size;
  }
}

/**
 * Keeps a cheap upper bound of each loaded document's encoded size: measured
 * once when the document is loaded, then grown by every update applied to it
 * (from clients, Redis or the API). Only when an update would cross the limit
 * is the document measured again exactly, and only the part of the update the
 * document lacks counts, so a reconnecting client's step 2 that repeats known
 * content is never refused.
 */
export class DocumentSizeGuard {
  private readonly estimates = new WeakMap<Y.Doc, { bytes: number }>();

  constructor(readonly maxBytes: number) {}

  track(document: Y.Doc): void {
    if (this.maxBytes === 0 || this.estimates.has(document)) return;
    const estimate = { bytes: Y.encodeStateAsUpdate(document).byteLength };
    this.estimates.set(document, estimate);
    document.on('update', (update: Uint8Array) => {
      estimate.bytes += update.byteLength;
    });
  }

  /** The size the document would reach with `update`, or null when that stays within the limit. */
  exceeds(document: Y.Doc, update: Uint8Array): number | null {
    if (this.maxBytes === 0) return null;
    this.track(document);
    const estimate = this.estimates.get(document)!;
    if (estimate.bytes + update.byteLength <= this.maxBytes) return null;
    estimate.bytes = Y.encodeStateAsUpdate(document).byteLength;
    let added = update.byteLength;
    try {
      if (Y.snapshotContainsUpdate(Y.snapshot(document), update)) return null;
      added = Y.diffUpdate(update, Y.encodeStateVector(document)).byteLength;
    } catch {
      // An update Yjs cannot decode is refused as malformed by the event store; measure it as sent.
    }
    const total = estimate.bytes + added;
    return total > this.maxBytes ? total : null;
  }
}
