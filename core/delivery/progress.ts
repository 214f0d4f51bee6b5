import type { Pool, PoolClient } from '../../lib/db/postgres.js';

/**
 * The PostgreSQL NOTIFY channel on which the delivery core says "rows of this
 * broadcast moved" (payload: the broadcast id). The operator listens, so a
 * Broadcast's status follows its deliveries without polling every running one;
 * a notification is a hint, never the truth: the operator re-reads the counts and
 * still looks now and then in case one was missed (a reconnect, a restart).
 */
export const PROGRESS_CHANNEL = 'herald_progress';

export async function notifyProgress(db: Pool | PoolClient, broadcastIds: Iterable<string>): Promise<void> {
  const ids = [...new Set(broadcastIds)];
  if (ids.length === 0) return;
  await db.query('SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id', [PROGRESS_CHANNEL, ids]);
}

/**
 * The channel on which the core says "deliver jobs are ready now" (planned, woken by the
 * sweeper, handed back to other workers). Each worker process listens once and wakes one
 * free slot, which wakes the next if it got a job: new work is taken up at once without
 * every slot polling. A hint only: slots still poll now and then.
 */
export const WORK_CHANNEL = 'herald_work';

export async function notifyWork(db: Pool | PoolClient): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [WORK_CHANNEL, '']);
}
