// The SQLite schema and its migrations, keyed by PRAGMA user_version. Each
// migration runs in its own transaction; add new ones at the end, never edit
// one that has shipped.

import type { Database } from 'better-sqlite3';
import { StoreError } from '../errors.js';

/** Marks a file as a Palimpsest event store ("PLMP"), so a foreign SQLite file is refused. */
export const APPLICATION_ID = 0x504c4d50;

const migrations: string[] = [
  // 1: the log, snapshots and one row per document holding its last seq.
  `
  CREATE TABLE documents (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0
  );
  -- The append-only log. seq is gap-free per document, from 1.
  CREATE TABLE updates (
    doc_id       INTEGER NOT NULL REFERENCES documents(id),
    seq          INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    instance_id  TEXT NOT NULL,
    user         TEXT,
    size         INTEGER NOT NULL,
    update_bytes BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
  );
  -- state = the document after applying the log up to seq; coverage = its
  -- state vector and delete set (see coverage.ts). A cache: any row can be
  -- dropped and rebuilt from the log.
  CREATE TABLE snapshots (
    doc_id      INTEGER NOT NULL REFERENCES documents(id),
    seq         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    state       BLOB NOT NULL,
    coverage    BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
  );
  `,
  // 2: a change counter, so a reader learns with one query which documents
  // changed since it last looked (EventStore.changesSince). Every write
  // transaction that logs something sets its documents' change_id to one past
  // the highest; the write lock makes that order the commit order.
  `
  ALTER TABLE documents ADD COLUMN change_id INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX documents_by_change ON documents (change_id);
  `,
  // 3 (history): the display name the writing connection announced, beside
  // the user id; and names people give to versions of a document (a restore
  // names the entry it logged, with the seq it went back to).
  `
  ALTER TABLE updates ADD COLUMN display_name TEXT;
  CREATE TABLE version_names (
    doc_id      INTEGER NOT NULL REFERENCES documents(id),
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    user        TEXT,
    created_at  INTEGER NOT NULL,
    restored_from INTEGER,
    PRIMARY KEY (doc_id, seq)
  );
  `,
  // 4: the all-documents feed (EventStore.feed): every logged entry gets a
  // position, in the order the entries were written. Writes hold the write
  // lock until they commit, so that order is the commit order: a reader never
  // sees position n+1 before n, and the position is the feed's cursor. The
  // trigger numbers entries however they are written (appends, copy); the
  // positions of entries written before this migration follow their rowids
  // (the order they were inserted). AUTOINCREMENT: a position is never used
  // twice, even once the entries that held the highest ones are pruned.
  `
  CREATE TABLE feed (
    pos     INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id  INTEGER NOT NULL,
    seq     INTEGER NOT NULL
  );
  INSERT INTO feed (doc_id, seq) SELECT doc_id, seq FROM updates ORDER BY rowid;
  CREATE TRIGGER updates_feed AFTER INSERT ON updates
  BEGIN
    INSERT INTO feed (doc_id, seq) VALUES (NEW.doc_id, NEW.seq);
  END;
  `,
  // 5: records the server keeps beside the log (webhook delivery positions,
  // EventStore.readState/writeState) and leases (EventStore.takeLease).
  `
  CREATE TABLE service_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
  );
  CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
  );
  `,
  // 6 (history reads): what entry-facts.ts works out when an entry is
  // written: its counts, the Yjs item ids it created, and its version group
  // at the default pause with the group's running counts. NULL on entries
  // logged before (readers then work them out from update_bytes). The
  // partial index lists where groups start, so a page of versions reads
  // one row per version. version_names.display_name: the name of whoever
  // named a version. authorship_blocks: the created ids and authors of
  // whole blocks of entries, packed (server/authorship-index.ts), written
  // by the first authorship read past a block; a cache, rebuilt from the log.
  `
  CREATE TABLE authorship_blocks (
    doc_id    INTEGER NOT NULL REFERENCES documents(id),
    from_seq  INTEGER NOT NULL,
    to_seq    INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (doc_id, from_seq)
  );
  ALTER TABLE updates ADD COLUMN added INTEGER;
  ALTER TABLE updates ADD COLUMN removed INTEGER;
  ALTER TABLE updates ADD COLUMN created BLOB;
  ALTER TABLE updates ADD COLUMN group_start INTEGER;
  ALTER TABLE updates ADD COLUMN group_user TEXT;
  ALTER TABLE updates ADD COLUMN group_name TEXT;
  ALTER TABLE updates ADD COLUMN group_added INTEGER;
  ALTER TABLE updates ADD COLUMN group_removed INTEGER;
  CREATE INDEX updates_group_starts ON updates (doc_id, seq) WHERE group_start = seq;
  ALTER TABLE version_names ADD COLUMN display_name TEXT;
  `,
];

export const SCHEMA_VERSION = migrations.length;

export function migrate(db: Database, path: string): void {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (appId !== APPLICATION_ID) {
    const tables = db.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number };
    if (appId !== 0 || tables.n > 0) {
      throw new StoreError('STORE_OPEN_FAILED',
        `${path} is a SQLite database of another application; point --data at a new or Palimpsest file`);
    }
  }
  if (version > SCHEMA_VERSION) {
    throw new StoreError('STORE_OPEN_FAILED',
      `${path} has schema version ${version}, newer than this Palimpsest (${SCHEMA_VERSION}); upgrade Palimpsest`);
  }
  for (let next = version; next < SCHEMA_VERSION; next++) {
    db.transaction(() => {
      // Instances started together on a new file race to migrate it; the
      // write lock serialises them, and whoever comes second finds it done.
      if ((db.pragma('user_version', { simple: true }) as number) > next) return;
      db.exec(migrations[next]);
      db.pragma(`user_version = ${next + 1}`);
      db.pragma(`application_id = ${APPLICATION_ID}`);
    }).immediate();
  }
}
