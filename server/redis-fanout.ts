// Fan-out between instances through Redis (`--redis`): @hocuspocus/extension-redis
// exchanges sync step 1 / step 2 with the other instances holding a document,
// and this module makes that exchange survive Redis outages:
//   - while the link is down, documents load from the log alone and nothing
//     waits on Redis, so every instance keeps serving and acknowledging its
//     own clients (the ack depends only on the log);
//   - when the link returns, every loaded document is re-subscribed and
//     announces its state vector, its awareness and a query for the peers'
//     awareness, so instances re-converge without waiting for a new edit;
//   - a slow periodic anti-entropy announces state vectors again as a
//     backstop for anything Redis pub/sub dropped silently: each document
//     that changed since its last announcement, once per interval, at its
//     own moment in it (announcing every document in one go stalled the
//     event loop for hundreds of milliseconds with a few hundred documents).
// Updates from Redis are applied without a connection, so they never pass the
// durable log's beforeSync and are never logged twice.
//
// serve.ts creates one with createRedisFanout() and passes its extension and
// readiness check to createCollabServer().

import { randomBytes } from 'node:crypto';
import { Redis as RedisExtension } from '@hocuspocus/extension-redis';
import {
  MessageType,
  OutgoingMessage,
  type Document,
  type Extension,
  type afterLoadDocumentPayload,
  type beforeBroadcastStatelessPayload,
  type onAwarenessUpdatePayload,
  type onChangePayload,
} from '@hocuspocus/server';
import { Redis as RedisClient, type RedisOptions } from 'ioredis';
import * as decoding from 'lib0/decoding';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import type { ReadinessCheck } from './index.js';
import type { Metrics } from './metrics.js';

export interface RedisFanoutOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  instanceId: string;
  logger: Logger;
  metrics: Metrics;
  /** Channel namespace; instances that should see each other share it. */
  prefix?: string;
  /** Interval of the anti-entropy announcement of every loaded document that changed; 0 turns it off. */
  antiEntropyMs?: number;
  /** Ceiling of the reconnect backoff. */
  maxReconnectDelayMs?: number;
  /**
   * Resolves once the client updates applied to a document so far are committed
   * (the durable log's durable()): a change is published only after that, so
   * other instances never hold an update this one failed to log.
   */
  durable?: (document: Document) => Promise<void>;
}

export interface RedisFanout {
  extension: Extension;
  readinessCheck: ReadinessCheck;
  /** True while both the publishing and the subscribing connection are ready. */
  linkUp(): boolean;
  /** Stops the anti-entropy timer and disconnects from Redis. */
  close(): Promise<void>;
}

const defaultPrefix = 'palimpsest';
const defaultAntiEntropyMs = 30_000;
/** How often the anti-entropy pass looks for documents whose moment has come. */
const antiEntropyTickMs = 1_000;
const defaultMaxReconnectDelayMs = 1_000;

export function createRedisFanout(options: RedisFanoutOptions): RedisFanout {
  const { url, instanceId, logger } = options;
  const prefix = options.prefix ?? defaultPrefix;
  const maxReconnectDelayMs = options.maxReconnectDelayMs ?? defaultMaxReconnectDelayMs;
  const log = logger.child({ component: 'redis' });
  const linkMetrics = createLinkMetrics(options.metrics);

  // Messages carry the sender's identifier so each instance can drop its own
  // echoes. Two instances started with the same --instance-id must still hear
  // each other, hence the random suffix; the extension encodes its length in
  // one byte.
  // The Redis extension prefixes every message with the identifier's length in one byte:
  // keep it under 255 bytes of UTF-8, whatever characters the instance id uses.
  const identifier = `${Buffer.from(instanceId, 'utf8').subarray(0, 200).toString('utf8').replace(/\uFFFD+$/, '')}#${randomBytes(4).toString('hex')}`;

  // Both connections queue commands while disconnected and retry them for
  // ever: the hooks below stop publishing while the link is down, so the
  // queue only holds the few commands issued at the moment of a drop, and no
  // hook ever fails because of an outage. Reconnects back off up to
  // maxReconnectDelayMs, which also bounds how long a recovered Redis goes
  // unnoticed.
  const clientOptions: RedisOptions = {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    autoResubscribe: true,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), maxReconnectDelayMs) + Math.floor(Math.random() * 50),
  };
  const clients: RedisClient[] = [];
  const link = new RedisLink(log, linkMetrics, redactRedisUrl(url));
  const extension = new ResilientRedisExtension({
    identifier,
    prefix,
    createClient: () => {
      const client = new RedisClient(url, { ...clientOptions, connectionName: `palimpsest:${identifier}` });
      clients.push(client);
      link.watch(client, clients.length === 1 ? 'publisher' : 'subscriber');
      return client;
    },
  }, link, log, linkMetrics, options.durable);
  link.onRestored = () => extension.resync('link restored');

  const antiEntropyMs = options.antiEntropyMs ?? defaultAntiEntropyMs;
  const antiEntropy = antiEntropyMs > 0
    ? setInterval(() => { if (link.up) void extension.announceDue(antiEntropyMs); }, Math.min(antiEntropyTickMs, antiEntropyMs)).unref()
    : null;

  log.info({ identifier, prefix, url: redactRedisUrl(url) }, 'redis fan-out configured');
  return {
    extension,
    linkUp: () => link.up,
    readinessCheck: {
      name: 'redis',
      problem: () => (link.up ? null : link.describeProblem()),
    },
    async close() {
      if (antiEntropy !== null) clearInterval(antiEntropy);
      link.closing = true;
      await extension.onDestroy();
    },
  };
}

type LinkMetrics = ReturnType<typeof createLinkMetrics>;

function createLinkMetrics(metrics: Metrics) {
  const registers = [metrics.registry];
  return {
    linkUp: new Gauge({ name: 'palimpsest_redis_link_up', help: '1 while both Redis connections are ready', registers }),
    linkDrops: new Counter({ name: 'palimpsest_redis_link_drops_total', help: 'Times the Redis link went down', registers }),
    resyncedDocuments: new Counter({
      name: 'palimpsest_redis_resynced_documents_total',
      help: 'Documents re-announced to the other instances, by reason',
      labelNames: ['reason'],
      registers,
    }),
  };
}

/**
 * The document a peer's message asks for our state of (a sync step 1, as
 * Sync or SyncReply), or null for any other message. Frames are
 * `<identifier length><identifier>` then a Hocuspocus message.
 */
function syncStep1Document(frame: Buffer): string | null {
  try {
    const decoder = decoding.createDecoder(frame.subarray(1 + frame[0]));
    const documentName = decoding.readVarString(decoder);
    const type = decoding.readVarUint(decoder);
    if (type !== MessageType.Sync && type !== MessageType.SyncReply) return null;
    return decoding.readVarUint(decoder) === 0 ? documentName : null;
  } catch {
    return null; // not decodable here: the extension's handler reports it
  }
}

/** The identifier of the instance that published a frame (its length-prefixed first field). */
export function frameSender(frame: Buffer): string {
  return frame.toString('utf8', 1, 1 + (frame[0] ?? 0));
}

/**
 * How many appends' worth of waiting a peer's sync step 1 gets before it is
 * left unanswered (see handleIncomingMessageSafely).
 */
const STEP1_ANSWER_ROUNDS = 3;

/** The URL as logs may show it: the password replaced by `***`. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return '(a --redis URL that does not parse)';
  }
}

/**
 * Watches the two connections the extension opens (publisher, subscriber)
 * and turns their states into one link state, logged once per transition:
 * one warning (with the URL and the cause) when Redis cannot be reached, at
 * start or after a drop, however many reconnect attempts fail; one info line
 * when the link is up again.
 */
class RedisLink {
  up = false;
  closing = false;
  onRestored: () => void = () => {};
  private readonly connections = new Map<string, RedisClient>();
  private downSince = Date.now();
  private everUp = false;
  private lastError: string | null = null;
  /** Whether this outage (or the failed first connect) has been logged. */
  private outageLogged = false;
  private readonly downWaiters = new Set<() => void>();

  constructor(private readonly log: Logger, private readonly metrics: LinkMetrics, private readonly url: string) {
    metrics.linkUp.set(0);
  }

  watch(client: RedisClient, role: string): void {
    this.connections.set(role, client);
    const refresh = () => this.refresh();
    client.on('ready', refresh);
    client.on('close', refresh);
    client.on('end', refresh);
    client.on('reconnecting', refresh);
    // Without a listener ioredis reports every failed reconnect attempt on
    // the console; the transition lines below are the only ones worth logging.
    client.on('error', (error: Error) => {
      this.lastError = error.message;
      this.log.debug({ role, err: error.message }, 'redis connection error');
      // Before the first connect there is no transition to log; the first failure is the news.
      if (!this.up && !this.everUp && !this.outageLogged && !this.closing) {
        this.outageLogged = true;
        this.log.warn({ url: this.url, err: error.message, meanwhile: 'serving and acknowledging from the log alone; retrying' },
          'redis unreachable');
      }
    });
  }

  /** Resolves when the link goes down (or is already down). */
  whenDown(): Promise<void> {
    if (!this.up) return Promise.resolve();
    return new Promise((resolve) => this.downWaiters.add(resolve));
  }

  describeProblem(): string {
    const since = new Date(this.downSince).toISOString();
    return `redis ${this.everUp ? 'unreachable' : 'not connected yet'} since ${since}` +
      (this.lastError === null ? '' : ` (${this.lastError})`);
  }

  private refresh(): void {
    const up = this.connections.size === 2 && [...this.connections.values()].every((client) => client.status === 'ready');
    if (up === this.up) return;
    this.up = up;
    this.metrics.linkUp.set(up ? 1 : 0);
    if (up) {
      const downMs = Date.now() - this.downSince;
      if (this.everUp) this.log.info({ url: this.url, downMs }, 'redis link restored');
      else this.log.info({ url: this.url, waitedMs: downMs }, 'redis link established');
      this.everUp = true;
      this.lastError = null;
      this.outageLogged = false;
      this.onRestored();
      return;
    }
    this.downSince = Date.now();
    for (const resolve of this.downWaiters) resolve();
    this.downWaiters.clear();
    if (this.closing) return;
    this.metrics.linkDrops.inc();
    this.outageLogged = true;
    this.log.warn({ url: this.url, err: this.lastError ?? 'connection closed', meanwhile: 'serving and acknowledging from the log alone; retrying' },
      'redis link lost');
  }
}

type ExtensionConfiguration = ConstructorParameters<typeof RedisExtension>[0];

/**
 * The stock extension, made to stand aside while Redis is unreachable and to
 * re-announce every loaded document when it returns.
 */
class ResilientRedisExtension extends RedisExtension {
  constructor(
    configuration: ExtensionConfiguration,
    private readonly link: RedisLink,
    private readonly log: Logger,
    private readonly linkMetrics: LinkMetrics,
    private readonly durable?: (document: Document) => Promise<void>,
  ) {
    super(configuration);
    // A SyncStep1/reply handler that throws (say, for a document torn down
    // mid-message) must not become an unhandled rejection.
    this.sub.removeAllListeners('messageBuffer');
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      (this.handleIncomingMessageSafely(channel, message)).catch((error: Error) => {
        this.log.warn({ err: error.message }, 'message from another instance could not be applied');
      });
    });
  }

  private async handleIncomingMessageSafely(channel: Buffer, message: Buffer): Promise<void> {
    // handleIncomingMessage is private in the extension's types; it is the
    // handler the constructor registered and we re-registered above.
    const handler = (this as unknown as { handleIncomingMessage: (c: Buffer, m: Buffer) => Promise<void> }).handleIncomingMessage;
    // Our own frames (the step 1 this instance publishes) come back on the
    // document channel; the stock handler drops them, and so must this one.
    if (frameSender(message) === this.configuration.identifier) return handler(channel, message);
    const asksForState = this.durable === undefined ? null : syncStep1Document(message);
    const document = asksForState === null ? undefined : this.instance?.documents.get(asksForState);
    if (document !== undefined && this.durable !== undefined) {
      // A peer's sync step 1 is answered with everything this document holds
      // that the peer lacks: wait until that is all logged, so that no other
      // instance holds an update this one may yet fail to log. The answer is
      // computed from the live document in the turn the wait ends (applying a
      // step 1 waits on nothing), so it goes out only once no append started
      // during the last wait. A document typed into steadily may never be
      // quiet: after a few rounds it is left unanswered. That loses nothing:
      // every durable update reaches the peer from the log (its catch-up)
      // and as a published update, and its next anti-entropy pass asks again.
      let chain = this.durable(document);
      for (let round = 1; ; round++) {
        try {
          await chain;
        } catch (error) {
          this.log.debug({ doc: asksForState, err: (error as Error).message }, 'state not sent to a peer: an append failed; the anti-entropy pass sends it once logged');
          return;
        }
        const next = this.durable(document);
        if (next === chain) break;
        if (round >= STEP1_ANSWER_ROUNDS) {
          this.log.debug({ doc: asksForState, rounds: round }, 'a peer\'s sync step 1 left unanswered: appends kept coming; the peer has them from the log and as published updates');
          return;
        }
        chain = next;
      }
    }
    return handler(channel, message);
  }

  /**
   * While the link is up: subscribe and fetch the peers' in-memory state as
   * the stock extension does (bounded by its awaitInitialSyncTimeout). While
   * it is down: the document is served from the log alone; resync() subscribes
   * it when the link returns. A drop in the middle of the load does not hold
   * the load up either.
   */
  override async afterLoadDocument(payload: afterLoadDocumentPayload): Promise<void> {
    if (!this.link.up) {
      this.log.debug({ doc: payload.documentName }, 'document loaded while redis is down; it joins the fan-out when the link returns');
      return;
    }
    const load = super.afterLoadDocument(payload);
    load.catch((error: Error) => this.log.warn({ doc: payload.documentName, err: error.message }, 'redis subscription on load failed'));
    await Promise.race([load, this.link.whenDown()]);
  }

  /**
   * A client's change is published as the update itself, once it is durable:
   * one hop to the peers, which apply it (origin redis: never logged again)
   * and pass it to their clients. The stock extension publishes a state
   * vector instead, and the change reaches a peer only after a step-1/step-2
   * exchange (three hops, a state diff computed on each side): a hundredfold
   * the latency under load. A published update a peer misses (it was not
   * subscribed yet, or Redis dropped it) is covered by the state-vector
   * exchange on load, on resync() and in the anti-entropy pass.
   * Other changes (REST writes, restores, entries other instances logged)
   * keep the stock path. Publishing while the link is down would only queue
   * stale state; what changes meanwhile is announced by resync() when the
   * link returns.
   */
  override async onChange(data: onChangePayload): Promise<void> {
    this.announcements(data.document).changed = true;
    if (!this.link.up) return;
    if ((data.transactionOrigin as { source?: string } | null)?.source !== 'connection') {
      await super.onChange(data);
      return;
    }
    if (this.durable !== undefined) {
      try {
        await this.durable(data.document);
      } catch (error) {
        // Not logged: the durable log closes the document's connections and reloads it from the log.
        this.log.debug({ doc: data.documentName, err: (error as Error).message }, 'change not published: its append failed');
        return;
      }
    }
    if (!this.link.up) return;
    const message = new OutgoingMessage(data.documentName).createSyncMessage().writeUpdate(data.update);
    await this.pub.publish(this.documentChannel(data.documentName), this.frame(message));
  }

  override async onAwarenessUpdate(data: onAwarenessUpdatePayload): Promise<void> {
    if (this.link.up) await super.onAwarenessUpdate(data);
  }

  /** Resolves to the number of instances that received the payload (0 while the link is down). */
  override async beforeBroadcastStateless(data: beforeBroadcastStatelessPayload): Promise<number> {
    if (!this.link.up) return 0;
    const receivers = await Promise.race([super.beforeBroadcastStateless(data), this.link.whenDown()]);
    return receivers ?? 0;
  }

  /**
   * The stock hook takes a Redlock lock so that only one instance stores a
   * document. Nothing here stores whole documents: every update was appended
   * to the log by the instance that received it, in beforeSync. The lock
   * would cost two Redis round trips per debounce period and protect nothing.
   * (Keep it if an extension that stores whole states is ever added.)
   */
  override async onStoreDocument(): Promise<void> {}

  /**
   * Subscribes every loaded document again (ioredis re-subscribes what it
   * knew; documents loaded during the outage are new to it) and announces it.
   * Runs once both connections are ready again. Peers subscribed before our
   * announcement answer it; a peer whose link returned after ours announces
   * in turn, so at least one side of every pair hears the other, and one
   * heard SyncStep1 is a full two-way exchange (step 2 back plus a step 1
   * that we answer).
   */
  async resync(reason: string): Promise<void> {
    // The link can come up before Hocuspocus has configured its extensions.
    if (this.instance === undefined) return;
    const documents = [...this.instance.documents.values()];
    try {
      const channels = [this.replyChannel(), ...documents.map((document) => this.documentChannel(document.name))];
      await Promise.race([this.sub.subscribe(...channels), this.link.whenDown()]);
      if (!this.link.up) return;
      await this.announceAll(reason, documents);
      if (documents.length > 0) this.log.info({ documents: documents.length, reason }, 'documents re-announced to the other instances');
    } catch (error) {
      this.log.warn({ err: (error as Error).message, reason }, 'resync after the redis link returned failed; the anti-entropy pass retries');
    }
  }

  /** Per document: when the anti-entropy pass last announced it, and whether it changed since. */
  private readonly announced = new WeakMap<Document, { at: number; changed: boolean }>();

  private announcements(document: Document, intervalMs = defaultAntiEntropyMs): { at: number; changed: boolean } {
    let state = this.announced.get(document);
    if (state === undefined) {
      // A random moment in the interval: documents loaded together are not announced together.
      state = { at: Date.now() - Math.random() * intervalMs, changed: true };
      this.announced.set(document, state);
    }
    return state;
  }

  /**
   * The anti-entropy pass: announces each document whose interval has run
   * since its last announcement, if it changed meanwhile. One that did not
   * change holds nothing a peer could have missed from this instance: an
   * update a peer lacks came through a change here, and the peer's own pass
   * covers what this instance lacks.
   */
  async announceDue(intervalMs: number): Promise<void> {
    if (this.instance === undefined) return;
    const now = Date.now();
    const due: Document[] = [];
    for (const document of this.instance.documents.values()) {
      const state = this.announcements(document, intervalMs);
      if (now - state.at < intervalMs) continue;
      state.at = now;
      if (!state.changed) continue;
      state.changed = false;
      due.push(document);
    }
    if (due.length > 0) await this.announceAll('anti-entropy', due);
  }

  /**
   * Publishes each document's state vector (peers answer with what we lack
   * and ask for what they lack), a query for the peers' awareness, and our
   * own clients' awareness.
   */
  async announceAll(reason = 'anti-entropy', documents: Document[] = [...(this.instance?.documents.values() ?? [])]): Promise<void> {
    const publishes: Array<Promise<unknown>> = [];
    for (const document of documents) {
      if (document.isLoading) continue;
      const channel = this.documentChannel(document.name);
      const syncStep1 = new OutgoingMessage(document.name).createSyncMessage().writeFirstSyncStepFor(document);
      publishes.push(this.pub.publish(channel, this.frame(syncStep1)));
      publishes.push(this.pub.publish(channel, this.frame(new OutgoingMessage(document.name).writeQueryAwareness())));
      // Same guard as the extension: encoding awareness of a document nobody
      // is connected to throws (hocuspocus#1027).
      if (document.getConnectionsCount() > 0 && document.awareness.getStates().size > 0) {
        const awareness = new OutgoingMessage(document.name).createAwarenessUpdateMessage(document.awareness);
        publishes.push(this.pub.publish(channel, this.frame(awareness)));
      }
    }
    this.linkMetrics.resyncedDocuments.inc({ reason: reason === 'anti-entropy' ? 'anti-entropy' : 'link-restored' }, documents.length);
    await Promise.race([Promise.all(publishes), this.link.whenDown()]);
  }

  // The extension's own key helpers are private; these follow its layout
  // (`<prefix>:<document>` and `<prefix>#reply:<identifier>`).
  private documentChannel(documentName: string): string {
    return `${this.configuration.prefix}:${documentName}`;
  }

  private replyChannel(): string {
    return `${this.configuration.prefix}#reply:${this.configuration.identifier}`;
  }

  private frame(message: OutgoingMessage): Buffer {
    return Buffer.concat([this.messagePrefix, Buffer.from(message.toUint8Array())]);
  }
}
