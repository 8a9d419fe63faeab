// LISTEN/NOTIFY for the PostgreSQL store: every append transaction ends with
// pg_notify(CHANGES_CHANNEL, <the store's id>), and each store that has
// watchers LISTENs on a connection of its own (a pooled one would be handed
// to other work). Its own notifications are ignored. When that connection
// breaks it reconnects every second, and tells the watchers once it is back,
// since notifications sent meanwhile are lost.
// A listening connection only ever reads, so a path that goes silent (a
// network cut that sends no reset, a host that vanished) would leave it
// waiting for ever: a heartbeat query every few seconds that gets no answer
// in time counts as a broken connection.

import type { Socket } from 'node:net';
import pg from 'pg';
import { connectionSettings } from './ssl.js';

export const CHANGES_CHANNEL = 'palimpsest_changes';

const HEARTBEAT_MS = 2000;
/** A heartbeat unanswered for this long means the connection is gone. */
const HEARTBEAT_ANSWER_MS = 4000;

export class ChangeListener {
  private client: pg.Client | null = null;
  private connected = false;
  private retry: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly watchers = new Set<() => void>();
  private closed = false;

  /** `storeId`: what this store's own notifications carry. */
  constructor(private readonly url: string, private readonly storeId: string) {}

  /** Whether someone watches and the listening connection is down. */
  get lost(): boolean {
    return this.watchers.size > 0 && !this.connected;
  }

  watch(watcher: () => void): () => void {
    this.watchers.add(watcher);
    if (this.client === null && this.retry === null) void this.listen();
    return () => {
      this.watchers.delete(watcher);
      if (this.watchers.size === 0) this.stop();
    };
  }

  close(): void {
    this.closed = true;
    this.stop();
  }

  private async listen(): Promise<void> {
    if (this.closed || this.watchers.size === 0) return;
    const client = new pg.Client({ ...connectionSettings(this.url), keepAlive: true, keepAliveInitialDelayMillis: 10_000, connectionTimeoutMillis: 10_000, application_name: 'palimpsest-listen' });
    this.client = client;
    const lost = () => {
      if (this.client !== client) return;
      this.client = null;
      this.connected = false;
      this.stopHeartbeat();
      // A silent socket would keep a polite end() waiting: close it outright.
      (client as unknown as { connection?: { stream?: Socket } }).connection?.stream?.destroy();
      void client.end().catch(() => undefined); // already broken: nothing to report
      if (!this.closed && this.watchers.size > 0) {
        this.retry = setTimeout(() => {
          this.retry = null;
          void this.listen();
        }, 1000);
      }
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.channel === CHANGES_CHANNEL && message.payload !== this.storeId) this.tell();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    } catch {
      lost(); // PostgreSQL unreachable: `lost` keeps the store unhealthy, and the retry tries again
      return;
    }
    if (this.client !== client) return;
    this.connected = true;
    let beatSentAt: number | null = null;
    this.heartbeat = setInterval(() => {
      if (beatSentAt !== null) {
        if (Date.now() - beatSentAt >= HEARTBEAT_ANSWER_MS) lost();
        return;
      }
      const sentAt = Date.now();
      beatSentAt = sentAt;
      client.query('SELECT 1').then(() => {
        if (beatSentAt === sentAt) beatSentAt = null;
      }, () => lost());
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    // Whatever was committed while nobody listened.
    this.tell();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private stop(): void {
    this.stopHeartbeat();
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    const client = this.client;
    this.client = null;
    this.connected = false;
    if (client !== null) void client.end().catch(() => undefined); // closing: an error here changes nothing
  }

  private tell(): void {
    for (const watcher of this.watchers) watcher();
  }
}
