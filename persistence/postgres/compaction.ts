// Compaction on PostgreSQL: snapshot(N) for the document's last seq N, and
// the pruning the retention policy asks for, in one REPEATABLE READ
// transaction that first takes the document's compaction lock
// (pg_try_advisory_xact_lock): with several instances, one compacts a
// document at a time and the others skip it. The replay itself is the shared
// one (../compaction-policy.ts); in the server it runs on a worker thread.

import type pg from 'pg';
import { buildSnapshotFrom, dropsPreviousSnapshot, type CompactionCache, type CompactionPolicy } from '../compaction-policy.js';
import type { CompactionResult } from '../event-store.js';
import { COMPACTION_LOCK } from './schema.js';

/** null when there is nothing new to snapshot, or another instance is compacting the document. */
export async function compactDocument(
  pool: pg.Pool, doc: string, policy: CompactionPolicy, cache?: CompactionCache,
): Promise<CompactionResult | null> {
  const cached = cache?.take(doc);
  let usedCache = false;
  const client = await pool.connect();
  let failed: unknown = null;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const lock = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS locked', [COMPACTION_LOCK, doc]);
    if (!lock.rows[0].locked) {
      await client.query('ROLLBACK');
      return null;
    }
    const row = (await client.query<{ last_seq: number }>('SELECT last_seq FROM documents WHERE doc = $1', [doc])).rows[0];
    if (row === undefined || row.last_seq === 0) {
      await client.query('ROLLBACK');
      return null;
    }
    const lastSeq = row.last_seq;
    const snapshot = (await client.query<{ seq: number; state: Buffer }>(
      'SELECT seq, state FROM snapshots WHERE doc = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1', [doc, lastSeq])).rows[0];
    if (snapshot !== undefined && snapshot.seq === lastSeq) {
      await client.query('ROLLBACK');
      return null;
    }
    const tailBetween = async (after: number) => (await client.query<{ update_bytes: Buffer }>(
      'SELECT update_bytes FROM updates WHERE doc = $1 AND seq > $2 AND seq <= $3 ORDER BY seq', [doc, after, lastSeq])).rows.map((r) => r.update_bytes);
    let plan: { doc: string; seq: number; base: Uint8Array | null; tail: Uint8Array[]; onto?: import('yjs').Doc } | null = null;
    // The cached state is the log up to its seq; usable while the entries after it are all there.
    if (cached !== undefined && cached.seq >= (snapshot?.seq ?? 0) && cached.seq < lastSeq) {
      const tail = await tailBetween(cached.seq);
      if (tail.length === lastSeq - cached.seq) {
        plan = { doc, seq: lastSeq, base: null, tail, onto: cached.ydoc };
        usedCache = true;
      }
    }
    plan ??= { doc, seq: lastSeq, base: snapshot?.state ?? null, tail: await tailBetween(snapshot?.seq ?? 0) };
    const built = buildSnapshotFrom(plan, cache);

    const previous = (await client.query<{ seq: number }>(
      'SELECT seq FROM snapshots WHERE doc = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1', [doc, lastSeq])).rows[0];
    await client.query('INSERT INTO snapshots (doc, seq, state, coverage) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
      [doc, lastSeq, Buffer.from(built.state), Buffer.from(built.coverage)]);
    const pruned = policy.retention === 'snapshot'
      ? (await client.query('DELETE FROM updates WHERE doc = $1 AND seq <= $2', [doc, lastSeq])).rowCount ?? 0 : 0;
    if (previous !== undefined) {
      const firstRetained = (await client.query<{ seq: number | null }>('SELECT min(seq) AS seq FROM updates WHERE doc = $1', [doc])).rows[0].seq;
      const every = policy.keepSnapshotsEvery;
      const spanStart = every > 0 ? Math.floor(previous.seq / every) * every : 0;
      const earlierInSpan = every > 0 && (await client.query(
        'SELECT 1 FROM snapshots WHERE doc = $1 AND seq >= $2 AND seq < $3 LIMIT 1', [doc, spanStart, previous.seq])).rows.length > 0;
      if (dropsPreviousSnapshot(policy, previous.seq, firstRetained, () => earlierInSpan)) {
        await client.query('DELETE FROM snapshots WHERE doc = $1 AND seq = $2', [doc, previous.seq]);
      }
    }
    await client.query('COMMIT');
    return { doc, seq: lastSeq, size: built.state.length, pruned };
  } catch (error) {
    failed = error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    if (!usedCache) cached?.ydoc.destroy();
    client.release(failed instanceof Error ? failed : undefined);
  }
}
