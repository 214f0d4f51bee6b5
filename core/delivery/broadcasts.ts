import type { Pool, PoolClient } from '../../lib/db/postgres.js';

export interface Audience {
  /** Contacts (SMS) or their devices and tagged devices (push) carrying any of these tags. */
  segment?: { tags?: string[]; all?: boolean };
  /** A short inline list of E.164 numbers. */
  contacts?: string[];
  /** An FCM topic (push only). */
  topic?: string;
}

export interface BroadcastRecord {
  id: string;
  tenantId: string;
  namespace?: string;
  name?: string;
  generation: number;
  channel: 'sms' | 'push';
  text: string;
  title?: string | null;
  audience: Audience;
  priority: 'normal' | 'urgent';
  ratePerSecond?: number | null;
  maxAttempts: number;
  expireAfterSeconds: number;
  suspended: boolean;
}

type Queryable = Pool | PoolClient;

/**
 * Insert or update the delivery core's copy of a broadcast. An older generation
 * never overwrites a newer one, so a paused ex-leader that wakes up cannot roll
 * a message back.
 */
export async function upsertBroadcast(db: Queryable, b: BroadcastRecord): Promise<void> {
  await db.query(
    `INSERT INTO broadcasts (id, tenant_id, namespace, name, generation, channel, message_text, message_title,
        audience, priority, rate_per_second, max_attempts, expire_after_seconds, suspended)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)
     ON CONFLICT (id) DO UPDATE SET
        generation = EXCLUDED.generation, message_text = EXCLUDED.message_text, message_title = EXCLUDED.message_title,
        audience = EXCLUDED.audience, priority = EXCLUDED.priority, rate_per_second = EXCLUDED.rate_per_second,
        max_attempts = EXCLUDED.max_attempts, expire_after_seconds = EXCLUDED.expire_after_seconds,
        suspended = EXCLUDED.suspended, updated_at = now()
      WHERE broadcasts.generation <= EXCLUDED.generation`,
    [b.id, b.tenantId, b.namespace ?? null, b.name ?? null, b.generation, b.channel, b.text, b.title ?? null,
      JSON.stringify(b.audience), b.priority, b.ratePerSecond ?? null, b.maxAttempts, b.expireAfterSeconds, b.suspended],
  );
}

/** Pause: rows not yet sent stay where they are; workers hold what they pick up. */
export async function suspendBroadcast(db: Queryable, id: string): Promise<void> {
  await db.query('UPDATE broadcasts SET suspended = true, updated_at = now() WHERE id = $1', [id]);
}

/** Resume: held rows become due again at once; the sweeper enqueues them. */
export async function resumeBroadcast(db: Queryable, id: string, now: Date): Promise<number> {
  await db.query('UPDATE broadcasts SET suspended = false, updated_at = now() WHERE id = $1', [id]);
  const r = await db.query(
    `UPDATE deliveries SET status = 'retry', next_attempt_at = $2, updated_at = now()
      WHERE broadcast_id = $1 AND status = 'held'`,
    [id, now],
  );
  return r.rowCount ?? 0;
}

/**
 * Cancel everything not yet sent (deletion of the Broadcast). Rows in flight
 * finish; every other unsent row is recorded as cancelled.
 */
export async function cancelBroadcast(db: Queryable, id: string, now: Date): Promise<number> {
  await db.query('UPDATE broadcasts SET cancelled_at = coalesce(cancelled_at, $2), updated_at = now() WHERE id = $1', [id, now]);
  const r = await db.query(
    `UPDATE deliveries SET status = 'cancelled', finalized_at = $2, next_attempt_at = NULL, updated_at = now()
      WHERE broadcast_id = $1 AND status IN ('queued', 'retry', 'deferred', 'held')`,
    [id, now],
  );
  return r.rowCount ?? 0;
}

export interface DeliveryCounts {
  queued: number;
  sending: number;
  sent: number;
  delivered: number;
  failed: number;
  skipped: number;
  expired: number;
  cancelled: number;
  possibleDuplicates: number;
  segments: number;
  total: number;
}

/** $1 broadcast. */
export const DELIVERY_COUNTS = `
  SELECT status, count(*)::int AS n, count(*) FILTER (WHERE possible_duplicate)::int AS dup,
         coalesce(sum(segments) FILTER (WHERE status IN ('sent', 'delivered')), 0)::int AS seg
    FROM deliveries WHERE broadcast_id = $1 GROUP BY status`;

/** Counts by status for a broadcast (what the operator folds into status). */
export async function deliveryCounts(db: Queryable, broadcastId: string): Promise<DeliveryCounts> {
  const { rows } = await db.query<{ status: string; n: number; dup: number; seg: number }>(DELIVERY_COUNTS, [broadcastId]);
  const c: DeliveryCounts = { queued: 0, sending: 0, sent: 0, delivered: 0, failed: 0, skipped: 0, expired: 0, cancelled: 0, possibleDuplicates: 0, segments: 0, total: 0 };
  for (const r of rows) {
    c.total += r.n;
    c.possibleDuplicates += r.dup;
    c.segments += r.seg;
    switch (r.status) {
      case 'queued': case 'retry': case 'deferred': case 'held': c.queued += r.n; break;
      case 'sending': c.sending += r.n; break;
      case 'sent': c.sent += r.n; break;
      case 'delivered': c.delivered += r.n; c.sent += r.n; break; // sent counts every accepted message
      case 'failed': case 'dead': c.failed += r.n; break;
      case 'skipped': c.skipped += r.n; break;
      case 'expired': c.expired += r.n; break;
      case 'cancelled': c.cancelled += r.n; break;
    }
  }
  return c;
}
