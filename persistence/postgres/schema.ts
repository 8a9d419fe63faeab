// The PostgreSQL schema and its migrations, recorded in palimpsest_schema.
// Each migration runs in its own transaction under a transaction-level
// advisory lock, so instances starting together on a new database take turns
// and whoever comes second finds the work done. Add new migrations at the
// end; never edit one that has shipped.
//
// Every table is keyed by the document first (doc, then seq), so the data can
// later be sharded by document. Names use the "C" collation: the order of
// documents() is the byte order, as on SQLite.

import type { PoolClient } from 'pg';
import { StoreError } from '../errors.js';

/** Advisory lock keys (first int4 of the two-key form): "PLMP" and one per purpose. */
export const MIGRATION_LOCK = 0x504c4d50;
export const COMPACTION_LOCK = 0x504c4d51;

const migrations: string[] = [
  // 1: documents with their last seq, the append-only log, snapshots.
  `
  CREATE TABLE documents (
    doc          text COLLATE "C" PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seq     bigint NOT NULL DEFAULT 0,
    -- The transaction that last logged something here; changesSince reads
    -- the documents changed by transactions a reader may not have seen yet.
    changed_xid  xid8 NOT NULL DEFAULT pg_current_xact_id()
  );
  CREATE INDEX documents_by_change ON documents (changed_xid);
  -- The append-only log. seq is gap-free per document, from 1.
  CREATE TABLE updates (
    doc          text COLLATE "C" NOT NULL REFERENCES documents (doc),
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    instance_id  text NOT NULL,
    "user"       text,
    size         integer NOT NULL,
    update_bytes bytea NOT NULL,
    PRIMARY KEY (doc, seq)
  );
  -- state = the document after applying the log up to seq; coverage = its
  -- state vector and delete set (see ../coverage.ts). A cache: any row can
  -- be dropped and rebuilt from the log.
  CREATE TABLE snapshots (
    doc          text COLLATE "C" NOT NULL REFERENCES documents (doc),
    seq          bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    state        bytea NOT NULL,
    coverage     bytea NOT NULL,
    PRIMARY KEY (doc, seq)
  );
  `,
  // 2 (history): the display name the writing connection announced, beside
  // the user id; and names people give to versions of a document (a restore
  // names the entry it logged, with the seq it went back to).
  `
  ALTER TABLE updates ADD COLUMN display_name text;
  CREATE TABLE version_names (
    doc          text COLLATE "C" NOT NULL REFERENCES documents (doc),
    seq          bigint NOT NULL,
    name         text NOT NULL,
    "user"       text,
    created_at   timestamptz NOT NULL,
    restored_from bigint,
    PRIMARY KEY (doc, seq)
  );
  `,
  // 3: the all-documents feed (EventStore.feed). Transactions commit in
  // another order than they took their ids, so no number handed out while
  // writing can be a cursor that never skips: a reader could see 8 committed,
  // move past it, and only then see 7 commit. Each entry records the id of the
  // transaction that wrote it; the feed reads only entries whose transaction
  // id is below the snapshot's xmin (every transaction below it has ended, so
  // nothing can appear there any more), ordered by (xid, doc, seq), and that
  // triple is the cursor. Entries already logged take this migration's id.
  `
  ALTER TABLE updates ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
  CREATE INDEX updates_by_xid ON updates (xid, doc, seq);
  `,
  // 4: records the server keeps beside the log (webhook delivery positions,
  // EventStore.readState/writeState) and leases (EventStore.takeLease).
  `
  CREATE TABLE service_state (
    key    text COLLATE "C" PRIMARY KEY,
    value  text NOT NULL
  );
  CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
  );
  `,
  // 5 (history reads): what entry-facts.ts works out when an entry is
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
    doc       text COLLATE "C" NOT NULL REFERENCES documents (doc),
    from_seq  bigint NOT NULL,
    to_seq    bigint NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (doc, from_seq)
  );
  ALTER TABLE updates ADD COLUMN added integer, ADD COLUMN removed integer, ADD COLUMN created bytea,
    ADD COLUMN group_start bigint, ADD COLUMN group_user text, ADD COLUMN group_name text,
    ADD COLUMN group_added bigint, ADD COLUMN group_removed bigint;
  CREATE INDEX updates_group_starts ON updates (doc, seq) WHERE group_start = seq;
  ALTER TABLE version_names ADD COLUMN display_name text;
  `,
];

export const SCHEMA_VERSION = migrations.length;

/** Brings the schema to SCHEMA_VERSION; `where` names the database in messages. */
export async function migrate(client: PoolClient, where: string, options: { readonly: boolean }): Promise<void> {
  const version = await schemaVersion(client);
  if ((version ?? 0) > SCHEMA_VERSION) {
    throw new StoreError('STORE_OPEN_FAILED',
      `${where} has schema version ${version}, newer than this Palimpsest (${SCHEMA_VERSION}); upgrade Palimpsest`);
  }
  if (options.readonly) {
    if ((version ?? 0) < SCHEMA_VERSION) {
      throw new StoreError('STORE_OPEN_FAILED', `${where} holds no Palimpsest data yet (schema version ${version ?? 0})`);
    }
    return;
  }
  for (let next = version ?? 0; next < SCHEMA_VERSION; next++) {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1, 0)', [MIGRATION_LOCK]);
      // Read again under the lock: another instance may have migrated meanwhile.
      const current = await schemaVersion(client);
      if (current === null) {
        await refuseForeignDatabase(client, where);
        await client.query('CREATE TABLE palimpsest_schema (version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())');
      }
      if ((current ?? 0) <= next) {
        await client.query(migrations[next]);
        await client.query('DELETE FROM palimpsest_schema');
        await client.query('INSERT INTO palimpsest_schema (version) VALUES ($1)', [next + 1]);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
}

async function schemaVersion(client: PoolClient): Promise<number | null> {
  // pg_class read as a table, not through to_regclass: the catalog cache of a
  // transaction that waited for the migration lock may not know yet of a table
  // another instance has just created.
  const table = await client.query<{ present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relname = 'palimpsest_schema' AND n.nspname = current_schema()) AS present`);
  if (!table.rows[0].present) return null;
  const { rows } = await client.query<{ version: number }>('SELECT max(version) AS version FROM palimpsest_schema');
  return rows[0]?.version ?? 0;
}

/** A database whose tables would collide with ours is refused rather than written into. */
async function refuseForeignDatabase(client: PoolClient, where: string): Promise<void> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relname = ANY($1) AND c.relkind IN ('r', 'p', 'v') AND n.nspname = current_schema()`,
    [['documents', 'updates', 'snapshots']]);
  if (rows.length > 0) {
    throw new StoreError('STORE_OPEN_FAILED',
      `${where} already has tables ${rows.map((r) => r.name).join(', ')} of another application; point --data at a new or Palimpsest database`);
  }
}
