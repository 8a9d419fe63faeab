// Durability of the store's commits without an fsync on the event loop.
//
// Under `synchronous = FULL` SQLite fsyncs the WAL inside every commit, and
// better-sqlite3 runs commits on the calling thread: in the server, each
// commit's fsync (1-10 ms here, stalls of 100 ms and more) held the
// deliveries of every document. In the server the connection commits under
// NORMAL instead (the commit writes its WAL frames to the page cache; SQLite
// still fsyncs the WAL and the database file around every checkpoint), and
// this fsyncs the WAL file on libuv's thread pool. An append resolves only
// after a sync that began after its commit, so an acknowledgement still means
// "on disk": the same promise as FULL, with one fsync for every commit that
// came while the previous one ran (group commit across event-loop turns).
//
// A failed fsync leaves the kernel's copy of the file unknown (the pages may
// be marked clean without being written), so it is not retried: the store
// fails every later append and tells its owner, which stops (fail-stop, as
// PostgreSQL does); nothing unsynced was ever acknowledged.

import { fdatasync, openSync, closeSync } from 'node:fs';

export class WalSync {
  private fd: number | null = null;
  private readonly running = new Set<Promise<void>>();
  private failure: Error | null = null;
  private closed = false;

  constructor(
    private readonly walPath: string,
    private readonly onFailure: (error: Error) => void,
    private readonly syncFile: (fd: number, done: (error: Error | null) => void) => void = fdatasync,
  ) {}

  get failed(): Error | null {
    return this.failure;
  }

  /**
   * Starts an fsync of the WAL now (beside any that runs already); resolves
   * once everything committed before this call is on disk. The caller
   * decides how many run at once.
   */
  sync(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error(`${this.walPath} is closed`));
    const run = new Promise<void>((resolve, reject) => {
      let fd: number;
      try {
        // Opened at the first sync: SQLite creates the WAL file at the first commit.
        fd = this.fd ??= openSync(this.walPath, 'r');
      } catch (error) {
        reject(this.fail(error as Error));
        return;
      }
      this.syncFile(fd, (error) => {
        if (error !== null) reject(this.fail(error));
        // Linux reports a write-back error to one fsync only: one that ran
        // beside a failed one may succeed without the lost pages.
        else if (this.failure !== null) reject(this.failure);
        else resolve();
      });
    });
    this.running.add(run);
    const settle = () => this.running.delete(run);
    run.then(settle, settle);
    return run;
  }

  private fail(error: Error): Error {
    if (this.failure === null) {
      this.failure = new Error(`fsync of ${this.walPath} failed: ${error.message}`, { cause: error });
      if (!this.closed) this.onFailure(this.failure);
    }
    return this.failure;
  }

  /** Waits for the running syncs, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running]);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
