// Webhooks: every document change is posted to each --webhook-url as a
// Standard Webhooks event (headers webhook-id, webhook-timestamp,
// webhook-signature), changes to one document within --webhook-coalesce-ms
// going out as one event { fromSeq, toSeq }.
//
// Delivery is at least once and, per document, in seq order: an endpoint has
// at most one event per document in flight, and the next is built only once
// that one is confirmed (a 2xx) or dead-lettered. What must survive a crash
// is in the store (readState/writeState): the feed cursor up to which entries
// were taken in, per document the seq delivered and the event in flight (id,
// range, body), and the dead letters. An event is written before its first
// attempt, and a dead letter before its document goes on. A server killed
// mid-way therefore sends the same event again, with the same webhook-id and
// body, and receivers de-duplicate on the id.
//
// What a crash can only repeat is written lazily, so that webhooks cost
// little per commit: a confirmation, the cursor and the targets it raised
// ride along with the next write that must happen, or are written within
// LAZY_WRITE_MS (and on close). After a crash, a confirmed event whose
// confirmation was not written yet goes out again (same id and body), and the
// feed is read again from the last cursor written. State writes asked for in
// one event-loop turn share one transaction (persist).
//
// Of several instances on one store only the holder of the store's
// "webhooks" lease delivers; another takes over once it stops renewing it.
//
// Failed attempts (non-2xx, no answer within --webhook-timeout-ms, a refused
// or dropped connection) are retried after --webhook-retry-base-ms, about
// doubling each time with jitter up to --webhook-retry-cap-ms, until
// --webhook-retry-total-ms have passed since the first attempt; then the event
// is dead-lettered (logged, counted, listed by GET /api/webhooks/dead-letters,
// re-sent by POST …/{id}/redeliver) and the document's later changes go on.

import { createHash, createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { EventStore } from '../persistence/index.js';
import type { WebhookConfig } from './config.js';

export type WebhookEventType = 'document.changed' | 'document.restored';

/** The event in flight to one endpoint for one document. */
interface PendingEvent {
  id: string;
  type: WebhookEventType;
  fromSeq: number;
  toSeq: number;
  /** The exact JSON body: sent unchanged on every attempt. */
  body: string;
  firstAttemptAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
}

interface DocumentDelivery {
  /** Highest seq confirmed (or dead-lettered). */
  delivered: number;
  /** Highest seq taken in from the feed. */
  target: number;
  pending: PendingEvent | null;
}

export interface DeadLetter {
  id: string;
  url: string;
  doc: string;
  type: WebhookEventType;
  fromSeq: number;
  toSeq: number;
  body: string;
  attempts: number;
  firstAttemptAt: string;
  deadAt: string;
  lastError: string | null;
}

export interface WebhooksOptions {
  store: EventStore;
  config: WebhookConfig;
  instanceId: string;
  logger: Logger;
  registry: Registry;
  /** How long the delivery lease lasts unless renewed (default 10 s); renewed every third of it. */
  leaseTtlMs?: number;
}

export interface Webhooks {
  /** Starts delivering (the server calls it once listening). */
  start(): void;
  /**
   * Something may have committed (to `docs`, when known): look at the feed
   * now, unless each of those documents already waits for its coalescing
   * window or has an event in flight (the round that ends those reads it).
   */
  wake(docs?: ReadonlySet<string> | null): void;
  /** The API restored `doc`: the event holding `seq` is a document.restored. */
  noteRestore(doc: string, seq: number): void;
  deadLetters(): Promise<DeadLetter[]>;
  /** Sends a dead letter once more (same id and body); true when it was confirmed (and is no longer listed). */
  redeliver(id: string): Promise<{ found: boolean; delivered: boolean; error: string | null }>;
  close(): Promise<void>;
}

const LEASE = 'webhooks';
/** The longest a confirmation (or a cursor) waits to be written when nothing else is. */
const LAZY_WRITE_MS = 1000;
const PAGE = 1000;

export function createWebhooks(options: WebhooksOptions): Webhooks {
  const { store, config, logger } = options;
  const secret = config.secret!;
  const leaseTtlMs = options.leaseTtlMs ?? 10_000;
  const attemptsCounter = new Counter({
    name: 'palimpsest_webhook_attempts_total', help: 'Webhook delivery attempts, by outcome (delivered, failed)',
    labelNames: ['outcome'], registers: [options.registry],
  });
  const deadCounter = new Counter({
    name: 'palimpsest_webhook_dead_letters_total', help: 'Webhook events given up on after the retry limit', registers: [options.registry],
  });

  const endpoints = config.urls.map((url) => ({
    url,
    /** State keys are under this prefix: a hash, so that any URL makes a short key. */
    prefix: `webhook/${createHash('sha256').update(url).digest('hex').slice(0, 16)}/`,
    cursor: null as string | null,
    docs: new Map<string, DocumentDelivery>(),
    /** When a document first had undelivered changes (the coalescing window starts). */
    waitingSince: new Map<string, number>(),
    inFlight: new Set<string>(),
    /** Documents with something to do: changes not yet confirmed, or an event pending. */
    active: new Set<string>(),
    /** Documents whose record in the store is behind the one here; written by the next persist. */
    dirty: new Set<string>(),
    /** The cursor here is ahead of the store's. */
    cursorDirty: false,
  }));
  type Endpoint = (typeof endpoints)[number];
  const restores = new Map<string, Set<number>>();
  let leader = false;
  /** When the lease was last taken or renewed (or tried for). */
  let leaseTriedAt = -Infinity;
  let closed = false;
  let running: Promise<void> | null = null;
  let again = false;
  let timer: NodeJS.Timeout | null = null;
  const sends = new Set<Promise<void>>();
  /** Aborts attempts in flight on close: their events stay pending in the store and go out again. */
  const closing = new AbortController();

  /**
   * The next write, not started yet: the dirty records of every endpoint, and
   * `extra`. It starts once the write before it has settled (and at the
   * earliest on the next event-loop turn), so that no two writes of these
   * records are ever in flight together: an older one committing last would
   * leave a record behind a newer cursor. What is asked for meanwhile joins it.
   */
  let batch: { extra: Array<{ key: string; value: string | null }>; written: Promise<void> } | null = null;
  /** The write started last, settled either way: the next one starts after it. */
  let lastWrite: Promise<void> = Promise.resolve();
  /** Records (dead letters) of a write that failed: the next one carries them. */
  const unwritten: Array<{ key: string; value: string | null }> = [];
  let lazyTimer: NodeJS.Timeout | null = null;
  /** Writes what is dirty within LAZY_WRITE_MS, unless another write takes it first. */
  function persistSoon(): void {
    if (lazyTimer !== null || closed) return;
    lazyTimer = setTimeout(() => {
      lazyTimer = null;
      // Once the lease is lost, the store is another instance's to write.
      if (!leader) return;
      persist().catch((error: Error) => logger.warn({ err: error.message }, 'writing webhook delivery state failed; written with the next change'));
    }, LAZY_WRITE_MS);
    lazyTimer.unref();
  }

  /** Writes every dirty record (and `extra`) in one transaction with the other writes asked for before it starts. */
  function persist(extra: Array<{ key: string; value: string | null }> = []): Promise<void> {
    if (batch === null) {
      const next: { extra: Array<{ key: string; value: string | null }>; written: Promise<void> } = { extra: [], written: Promise.resolve() };
      const previous = lastWrite;
      next.written = previous.then(() => new Promise<void>((resolve, reject) => setImmediate(() => {
        batch = null;
        const changes: Array<{ key: string; value: string | null }> = [];
        const written: Array<{ endpoint: Endpoint; docs: string[]; cursor: boolean }> = [];
        for (const endpoint of endpoints) {
          for (const doc of endpoint.dirty) changes.push({ key: `${endpoint.prefix}doc/${doc}`, value: JSON.stringify(endpoint.docs.get(doc)) });
          if (endpoint.cursorDirty && endpoint.cursor !== null) changes.push({ key: `${endpoint.prefix}cursor`, value: endpoint.cursor });
          written.push({ endpoint, docs: [...endpoint.dirty], cursor: endpoint.cursorDirty });
          endpoint.dirty.clear();
          endpoint.cursorDirty = false;
        }
        const extra = [...unwritten.splice(0), ...next.extra];
        changes.push(...extra);
        store.writeState(changes).then(resolve, (error: Error) => {
          unwritten.push(...extra);
          // Still to be written: the next persist tries again.
          for (const { endpoint, docs, cursor } of written) {
            for (const doc of docs) endpoint.dirty.add(doc);
            endpoint.cursorDirty ||= cursor;
          }
          reject(error);
        });
      })));
      lastWrite = next.written.catch(() => undefined);
      batch = next;
    }
    batch.extra.push(...extra);
    return batch.written;
  }

  function schedule(delayMs: number): void {
    if (closed) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => run(), Math.max(0, delayMs));
    timer.unref();
  }

  function run(): void {
    if (closed) return;
    if (running !== null) {
      again = true;
      return;
    }
    running = tick().catch((error: Error) => {
      logger.warn({ err: error.message }, 'webhook delivery round failed; trying again shortly');
      return 1000;
    }).then((nextInMs) => {
      running = null;
      if (again) {
        again = false;
        run();
      } else {
        schedule(nextInMs);
      }
    });
  }

  /** One round: hold the lease, take in the feed, start what is due; returns when to look again. */
  async function tick(): Promise<number> {
    const renewIn = Math.max(100, Math.floor(leaseTtlMs / 3));
    // Wake-ups come with every commit: the lease is written only when it is due, not on each of them.
    const sinceLeaseTry = Date.now() - leaseTriedAt;
    if (sinceLeaseTry < renewIn && !leader) return renewIn - sinceLeaseTry;
    const holds = sinceLeaseTry < renewIn ? true : await store.takeLease(LEASE, options.instanceId, leaseTtlMs);
    if (sinceLeaseTry >= renewIn) leaseTriedAt = Date.now();
    if (!holds) {
      if (leader) logger.warn('webhook delivery lease lost to another instance');
      leader = false;
      return renewIn;
    }
    if (!leader) {
      // Another instance may have delivered meanwhile: start from what the store says.
      for (const endpoint of endpoints) await loadEndpoint(endpoint);
      leader = true;
      logger.info({ endpoints: endpoints.length }, 'delivering webhooks (holding the lease)');
    }
    const now = Date.now();
    let next = Math.max(10, leaseTriedAt + renewIn - now);
    const ready: Array<{ endpoint: Endpoint; doc: string; delivery: DocumentDelivery }> = [];
    let built = false;
    for (const endpoint of endpoints) {
      await takeInFeed(endpoint);
      for (const doc of endpoint.active) {
        if (endpoint.inFlight.has(doc)) continue;
        const delivery = endpoint.docs.get(doc)!;
        if (delivery.pending === null) {
          if (delivery.target <= delivery.delivered) {
            endpoint.active.delete(doc);
            continue;
          }
          const since = endpoint.waitingSince.get(doc) ?? now;
          endpoint.waitingSince.set(doc, since);
          if (now - since < config.coalesceMs) {
            next = Math.min(next, since + config.coalesceMs - now);
            continue;
          }
          delivery.pending = await buildEvent(doc, delivery);
          endpoint.waitingSince.delete(doc);
          endpoint.dirty.add(doc);
          built = true;
        }
        const due = delivery.pending.nextAttemptAt - now;
        if (due > 0) {
          next = Math.min(next, due);
          continue;
        }
        ready.push({ endpoint, doc, delivery });
      }
    }
    // Written before the first attempt: a crash after it sends these same events again
    // (also an event built in a round whose write failed).
    if (built || ready.some(({ endpoint, doc }) => endpoint.dirty.has(doc))) await persist();
    for (const { endpoint, doc, delivery } of ready) {
      endpoint.inFlight.add(doc);
      const send = attempt(endpoint, doc, delivery).catch((error: Error) => {
        // What the attempt changed stays marked dirty: the next write takes it.
        logger.warn({ doc, url: endpoint.url, err: error.message }, 'writing a webhook outcome failed; written with the next change');
      }).finally(() => {
        endpoint.inFlight.delete(doc);
        sends.delete(send);
        run();
      });
      sends.add(send);
    }
    return next;
  }

  async function loadEndpoint(endpoint: Endpoint): Promise<void> {
    endpoint.docs.clear();
    endpoint.waitingSince.clear();
    endpoint.active.clear();
    endpoint.dirty.clear();
    endpoint.cursorDirty = false;
    endpoint.cursor = null;
    for (const record of await store.readState(endpoint.prefix)) {
      const rest = record.key.slice(endpoint.prefix.length);
      if (rest === 'cursor') endpoint.cursor = record.value;
      else if (rest.startsWith('doc/')) {
        const doc = rest.slice(4);
        const delivery = JSON.parse(record.value) as DocumentDelivery;
        endpoint.docs.set(doc, delivery);
        if (delivery.pending !== null || delivery.target > delivery.delivered) endpoint.active.add(doc);
      }
    }
  }

  /**
   * Raises each document's target to what the feed holds and moves the cursor
   * on, here; both are written together by the next persist (lazily).
   */
  async function takeInFeed(endpoint: Endpoint): Promise<void> {
    for (;;) {
      const page = await store.feed(endpoint.cursor, { limit: PAGE });
      if (page.entries.length === 0) return;
      for (const entry of page.entries) {
        const delivery = endpoint.docs.get(entry.doc) ?? { delivered: 0, target: 0, pending: null };
        endpoint.docs.set(entry.doc, delivery);
        if (entry.seq > delivery.target) {
          delivery.target = entry.seq;
          endpoint.dirty.add(entry.doc);
          endpoint.active.add(entry.doc);
        }
      }
      endpoint.cursor = page.cursor;
      endpoint.cursorDirty = true;
      persistSoon();
      if (page.entries.length < PAGE) return;
    }
  }

  async function buildEvent(doc: string, delivery: DocumentDelivery): Promise<PendingEvent> {
    const fromSeq = delivery.delivered + 1;
    const toSeq = delivery.target;
    const entries = await store.entries(doc, { afterSeq: delivery.delivered, limit: toSeq - delivery.delivered });
    const users = [...new Set(entries.map((e) => e.user).filter((user): user is string => user !== null))];
    const restoredSeqs = restores.get(doc);
    const restored = restoredSeqs !== undefined && [...restoredSeqs].some((seq) => seq >= fromSeq && seq <= toSeq);
    const type: WebhookEventType = restored ? 'document.restored' : 'document.changed';
    const last = entries[entries.length - 1];
    const now = Date.now();
    const body = JSON.stringify({
      type,
      timestamp: new Date(now).toISOString(),
      data: { doc, fromSeq, toSeq, users, at: (last?.receivedAt ?? new Date(now)).toISOString() },
    });
    return { id: `msg_${randomUUID().replaceAll('-', '')}`, type, fromSeq, toSeq, body, firstAttemptAt: now, attempts: 0, nextAttemptAt: now, lastError: null };
  }

  async function attempt(endpoint: Endpoint, doc: string, delivery: DocumentDelivery): Promise<void> {
    const pending = delivery.pending!;
    const error = await post(endpoint.url, pending.id, pending.body);
    if (closed) return;
    endpoint.dirty.add(doc);
    if (error === null) {
      attemptsCounter.inc({ outcome: 'delivered' });
      delivery.delivered = pending.toSeq;
      delivery.pending = null;
      // A crash before this is written sends the same event again: receivers de-duplicate it.
      persistSoon();
      const seqs = restores.get(doc);
      if (seqs !== undefined) for (const seq of seqs) if (seq <= pending.toSeq) seqs.delete(seq);
      logger.debug({ doc, url: endpoint.url, id: pending.id, fromSeq: pending.fromSeq, toSeq: pending.toSeq }, 'webhook delivered');
      return;
    }
    attemptsCounter.inc({ outcome: 'failed' });
    pending.attempts += 1;
    pending.lastError = error;
    const now = Date.now();
    if (now - pending.firstAttemptAt >= config.retryTotalMs) {
      const dead: DeadLetter = {
        id: pending.id, url: endpoint.url, doc, type: pending.type, fromSeq: pending.fromSeq, toSeq: pending.toSeq, body: pending.body,
        attempts: pending.attempts, firstAttemptAt: new Date(pending.firstAttemptAt).toISOString(), deadAt: new Date(now).toISOString(),
        lastError: error,
      };
      delivery.delivered = pending.toSeq;
      delivery.pending = null;
      await persist([{ key: `${endpoint.prefix}dead/${dead.id}`, value: JSON.stringify(dead) }]);
      deadCounter.inc();
      logger.error({ doc, url: endpoint.url, id: dead.id, fromSeq: dead.fromSeq, toSeq: dead.toSeq, attempts: dead.attempts, err: error },
        'webhook dead-lettered after the retry limit; POST /api/webhooks/dead-letters/{id}/redeliver sends it again');
      return;
    }
    pending.nextAttemptAt = now + retryDelay(pending.attempts);
    await persist();
    logger.warn({ doc, url: endpoint.url, id: pending.id, attempts: pending.attempts, retryInMs: pending.nextAttemptAt - now, err: error },
      'webhook attempt failed; retrying');
  }

  /** Exponential with "equal jitter": between half and all of min(cap, base·2^(n-1)). */
  function retryDelay(attempts: number): number {
    const ceiling = Math.min(config.retryCapMs, config.retryBaseMs * 2 ** Math.min(attempts - 1, 40));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  /** One attempt; null when the endpoint answered 2xx, else why not. */
  async function post(url: string, id: string, body: string): Promise<string | null> {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = createHmac('sha256', secret).update(`${id}.${timestamp}.${body}`).digest('base64');
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': timestamp,
          'webhook-signature': `v1,${signature}`,
          'user-agent': 'palimpsest-webhooks',
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(config.timeoutMs), closing.signal]),
      });
      // The answer's body is not needed; reading it frees the connection.
      await response.arrayBuffer().catch(() => undefined);
      return response.status >= 200 && response.status < 300 ? null : `HTTP ${response.status}`;
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      if ((error as Error).name === 'TimeoutError') return `no answer within ${config.timeoutMs} ms`;
      return cause?.code ?? cause?.message ?? (error as Error).message;
    }
  }

  let started = false;

  return {
    start() {
      started = true;
      run();
    },

    wake: (docs = null) => {
      if (!started) return;
      if (docs !== null && leader && [...docs].every((doc) => endpoints.every((endpoint) => endpoint.waitingSince.has(doc) || endpoint.inFlight.has(doc)))) return;
      run();
    },

    noteRestore(doc, seq) {
      const seqs = restores.get(doc) ?? new Set<number>();
      seqs.add(seq);
      restores.set(doc, seqs);
    },

    async deadLetters() {
      const letters: DeadLetter[] = [];
      for (const endpoint of endpoints) {
        for (const record of await store.readState(`${endpoint.prefix}dead/`)) letters.push(JSON.parse(record.value) as DeadLetter);
      }
      return letters.sort((a, b) => (a.deadAt < b.deadAt ? -1 : a.deadAt > b.deadAt ? 1 : 0));
    },

    async redeliver(id) {
      for (const endpoint of endpoints) {
        const key = `${endpoint.prefix}dead/${id}`;
        const [record] = (await store.readState(key)).filter((r) => r.key === key);
        if (record === undefined) continue;
        const dead = JSON.parse(record.value) as DeadLetter;
        const error = await post(endpoint.url, dead.id, dead.body);
        attemptsCounter.inc({ outcome: error === null ? 'delivered' : 'failed' });
        if (error === null) {
          await store.writeState([{ key, value: null }]);
          logger.info({ doc: dead.doc, url: endpoint.url, id }, 'dead-lettered webhook redelivered');
        } else {
          await store.writeState([{ key, value: JSON.stringify({ ...dead, attempts: dead.attempts + 1, lastError: error }) }]);
        }
        return { found: true, delivered: error === null, error };
      }
      return { found: false, delivered: false, error: null };
    },

    async close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      closing.abort();
      if (lazyTimer !== null) clearTimeout(lazyTimer);
      await running;
      await Promise.allSettled([...sends]);
      // Confirmations not written yet: written now, so that a restart does not send those events again.
      if (leader && endpoints.some((endpoint) => endpoint.dirty.size > 0 || endpoint.cursorDirty)) {
        await persist().catch((error: Error) => logger.warn({ err: error.message }, 'writing webhook delivery state on close failed'));
      }
      // A write still in flight settles before the store is handed back.
      await lastWrite;
    },
  };
}
