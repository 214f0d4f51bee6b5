import type { PgBoss } from 'pg-boss';
import type { Pool } from '../../lib/db/postgres.js';
import { inTransaction } from '../../lib/db/postgres.js';
import { DELIVER_QUEUE, URGENT_PRIORITY, deliverGroup, type DeliverJob } from '../../lib/queue.js';
import { metrics } from '../../lib/metrics.js';
import { BATCH_SIZE } from './plan.js';
import { notifyWork } from './progress.js';

/**
 * Rows in flight on a worker that stopped heart-beating: $1 now, $2 worker lease seconds.
 * Each orphan is also an attempt of the lane that held it (the analysis counts a
 * version's crashes), at the time it was claimed, on the database's clock.
 */
export const SWEEP_ORPHANS = `
  WITH o AS (
    SELECT x.id, x.claimed_by, x.claimed_at, coalesce(x.lane, w.lane, '') AS lane, coalesce(w.version, '') AS version
      FROM deliveries x LEFT JOIN workers w ON w.id = x.claimed_by
     WHERE x.status = 'sending'
       AND (w.id IS NULL OR w.stopped_at IS NOT NULL OR w.heartbeat_at < now() - make_interval(secs => $2))
       AND x.claimed_at < now() - make_interval(secs => $2)
       FOR UPDATE OF x SKIP LOCKED),
  u AS (
    UPDATE deliveries d SET status = CASE WHEN d.attempts >= b.max_attempts THEN 'dead' ELSE 'retry' END,
           possible_duplicate = true, next_attempt_at = $1, claimed_by = NULL,
           last_error = 'worker ' || coalesce(d.claimed_by, '?') || ' died while this was in flight; the provider may have accepted it',
           finalized_at = CASE WHEN d.attempts >= b.max_attempts THEN $1::timestamptz END, updated_at = now()
      FROM broadcasts b, o
     WHERE b.id = d.broadcast_id AND d.id = o.id
     RETURNING d.id, d.channel, d.tenant_id, d.broadcast_id),
  a AS (
    INSERT INTO attempts (delivery_id, tenant_id, broadcast_id, channel, lane, version, worker_id, outcome, called, started_at, finished_at)
    SELECT u.id, u.tenant_id, u.broadcast_id, u.channel, o.lane, o.version, o.claimed_by, 'orphaned', false, o.claimed_at, now()
      FROM u JOIN o ON o.id = u.id)
  SELECT channel FROM u`;

/** Rows whose time has come, queued again: $1 now, $2 limit. */
export const WAKE_DUE = `
  UPDATE deliveries d SET status = 'queued', next_attempt_at = NULL, updated_at = now()
    FROM broadcasts b
   WHERE b.id = d.broadcast_id AND d.id IN (
         SELECT id FROM deliveries WHERE status IN ('retry', 'deferred') AND next_attempt_at <= $1
          ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
   RETURNING d.id, d.broadcast_id, d.tenant_id, b.priority`;

/**
 * Rows waiting out a provider's outage (error_code provider_outage), due now: $1 channel, $2 now.
 * Backoff protects a provider that is down, not one that is back.
 */
export const WAKE_OUTAGE = `
  UPDATE deliveries SET next_attempt_at = $2, updated_at = now()
   WHERE status = 'retry' AND next_attempt_at > $2 AND channel = $1 AND error_code = 'provider_outage'`;

/** The channel's provider is back (its circuit closed): what waited out the outage goes at the next sweep. */
export async function wakeOutageWaits(pool: Pool, channel: 'sms' | 'push', now: Date): Promise<number> {
  return (await pool.query(WAKE_OUTAGE, [channel, now])).rowCount ?? 0;
}

export interface SweepResult {
  orphaned: number;
  woken: number;
  jobs: number;
}

/**
 * The due-work pass every worker runs every second (SKIP LOCKED lets them share it):
 * 1. rows left in flight by a worker that stopped heart-beating go back to retry,
 *    flagged as possible duplicates (the provider may have accepted them);
 * 2. rows whose time has come (retry backoff over, quiet hours ended, a local-time
 *    recipient's instant reached, a resumed broadcast) are queued again and their
 *    jobs enqueued in the same transaction, so no row is lost or enqueued twice.
 *    (A waiting row never sleeps past its expiry — writers expire it instead —
 *    so the worker that wakes it records the expiry if its time is up.)
 * "Due" reads the injectable clock; pg-boss never holds far-future jobs.
 */
export async function sweepOnce(pool: Pool, boss: PgBoss, now: Date, opts: { workerLeaseSeconds?: number; limit?: number } = {}): Promise<SweepResult> {
  const lease = opts.workerLeaseSeconds ?? 30;
  const orphans = await pool.query<{ channel: string }>(
    SWEEP_ORPHANS,
    [now, lease],
  );
  for (const r of orphans.rows) metrics.possibleDuplicates.inc({ channel: r.channel });

  let woken = 0;
  let jobs = 0;
  for (;;) {
    const n = await inTransaction(pool, async (tx) => {
      const { rows } = await tx.query<{ id: number; broadcast_id: string; tenant_id: string; priority: string }>(
        WAKE_DUE,
        [now, opts.limit ?? 5_000],
      );
      if (rows.length === 0) return 0;
      const byBroadcast = new Map<string, { ids: number[]; urgent: boolean; tenantId: string }>();
      for (const r of rows) {
        const g = byBroadcast.get(r.broadcast_id) ?? { ids: [], urgent: r.priority === 'urgent', tenantId: r.tenant_id };
        g.ids.push(r.id);
        byBroadcast.set(r.broadcast_id, g);
      }
      const batch: { data: DeliverJob; priority: number; group: { id: string } }[] = [];
      for (const g of byBroadcast.values()) {
        for (let i = 0; i < g.ids.length; i += BATCH_SIZE) {
          batch.push({ data: { deliveryIds: g.ids.slice(i, i + BATCH_SIZE), tenantId: g.tenantId }, priority: g.urgent ? URGENT_PRIORITY : 0, group: deliverGroup(g.tenantId, g.urgent) });
        }
      }
      await boss.insert(DELIVER_QUEUE, batch, { db: { executeSql: (text, values) => tx.query(text, values as unknown[]) } });
      await notifyWork(tx);
      jobs += batch.length;
      metrics.queueEnqueued.inc({ queue: DELIVER_QUEUE }, batch.length);
      return rows.length;
    });
    woken += n;
    if (n < (opts.limit ?? 5_000)) break;
  }
  return { orphaned: orphans.rowCount ?? 0, woken, jobs };
}
