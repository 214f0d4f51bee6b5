import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { Pool, PoolClient } from '../../lib/db/postgres.js';
import { inTransaction, planEachTime } from '../../lib/db/postgres.js';
import { DELIVER_QUEUE, URGENT_PRIORITY, deliverGroup, type DeliverJob } from '../../lib/queue.js';
import { metrics } from '../../lib/metrics.js';
import { notifyWork } from './progress.js';
import { batchJobId, occurrenceId as occurrenceIdFor } from './ids.js';
import type { Audience } from './broadcasts.js';
import { tenantTopic } from '../../lib/tenancy/topic.js';

export const BATCH_SIZE = 500;

export interface OccurrenceSpec {
  broadcastId: string;
  /** Idempotency key of the occurrence: 'once', or the cron tick's ISO instant. */
  key: string;
  /** When it is due (for a local-time schedule: the earliest instant any recipient is due). */
  scheduledAt: Date;
  /** Each recipient gets it at this wall-clock time on localDate in their own zone. */
  local?: { date: string; time: string };
}

export interface PlanResult {
  occurrenceId: string;
  /** False when the occurrence had already been planned: nothing was added. */
  created: boolean;
  audienceSize: number;
  queued: number;
  deferred: number;
  skipped: number;
  expired: number;
  batches: number;
}

type Db = Pool | PoolClient;

/**
 * The recipients of a broadcast as SQL, so planning never brings them into this
 * process: memory stays flat whatever the audience size. SMS: one row per opted-in
 * contact with a phone (inline numbers that are contacts map to that contact, so
 * a contact named by two sources is one row; any other inline number is a row with
 * consented false, skipped when planned). Push: one row per active device
 * token, or one row for a topic.
 * Parameters: $1 tenant, $2 tags, $3 all, $4 inline phones, $5 topic.
 */
/** Why an inline number was skipped (deliveries.last_error). */
export const NO_CONSENT = 'no consent: not a contact of the tenant with SMS consent';

export function audienceSql(channel: 'sms' | 'push'): string {
  if (channel === 'sms') {
    return `
      SELECT 'c:' || c.id AS rkey, c.id AS contact_id, NULL::bigint AS device_token_id, c.phone AS address, c.time_zone AS tz,
             true AS consented
        FROM contacts c
       WHERE c.tenant_id = $1 AND c.phone IS NOT NULL AND c.sms_consent
         AND ($3::boolean OR c.tags && $2::text[] OR c.phone = ANY($4::text[]))
      UNION ALL
      -- An inline number that is no consenting contact: a row, skipped and counted unless the
      -- tenant declared consent for its inline numbers (never for a contact recorded without it).
      SELECT 'p:' || p.phone, NULL, NULL, p.phone, NULL,
             NOT EXISTS (SELECT 1 FROM contacts c WHERE c.tenant_id = $1 AND c.phone = p.phone)
               AND (SELECT t.inline_numbers_consented FROM tenants t WHERE t.id = $1)
        FROM (SELECT DISTINCT unnest($4::text[]) AS phone) p
       WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.tenant_id = $1 AND c.phone = p.phone AND c.sms_consent)`;
  }
  return `
      SELECT 'd:' || d.id AS rkey, d.contact_id, d.id AS device_token_id, d.token AS address, c.time_zone AS tz, true AS consented
        FROM device_tokens d LEFT JOIN contacts c ON c.id = d.contact_id
       WHERE d.tenant_id = $1 AND d.active
         AND ($3::boolean OR d.tags && $2::text[] OR c.tags && $2::text[] OR c.phone = ANY($4::text[]))
      UNION ALL
      SELECT 't:' || $5::text, NULL, NULL, $5::text, NULL, true WHERE $5::text IS NOT NULL`;
}

export function audienceParams(tenantId: string, a: Audience): unknown[] {
  const tags = a.segment?.tags?.length ? a.segment.tags : null;
  return [tenantId, tags, a.segment?.all === true, a.contacts ?? [], a.topic ? tenantTopic(tenantId, a.topic) : null];
}

export interface BroadcastRow {
  tenant_id: string;
  channel: 'sms' | 'push';
  audience: Audience;
  priority: 'normal' | 'urgent';
  expire_after_seconds: number;
  cancelled_at: Date | null;
}

/**
 * The statement that writes an occurrence's delivery rows (INSERT … SELECT over the
 * audience), planned with its values every time: an audience's best plan depends on them.
 */
export function planRowsStatement(b: Pick<BroadcastRow, 'tenant_id' | 'channel' | 'audience' | 'expire_after_seconds'>, spec: OccurrenceSpec, occId: string, now: Date, batchSize = BATCH_SIZE): pg.QueryConfig {
  const params = audienceParams(b.tenant_id, b.audience);
  return planEachTime(
    `WITH aud AS (${audienceSql(b.channel)}),
     marked AS (
       SELECT a.rkey, a.contact_id, a.device_token_id, a.address, a.consented,
              CASE WHEN p.local_date IS NULL THEN p.scheduled_at
                   ELSE (p.local_date + p.local_time) AT TIME ZONE coalesce(a.tz, t.default_time_zone) END AS due,
              (o.phone IS NOT NULL) AS opted_out
         FROM aud a
         CROSS JOIN (SELECT default_time_zone FROM tenants WHERE id = $1) t
         -- every parameter is typed here, whichever the channel and schedule use
         CROSS JOIN (SELECT $5::text AS topic, $8::timestamptz AS scheduled_at, $9::date AS local_date, $10::time AS local_time) p
         LEFT JOIN opt_outs o ON $6 = 'sms' AND o.tenant_id = $1 AND o.phone = a.address
     ),
     classified AS (
       SELECT m.*, CASE WHEN m.opted_out OR NOT m.consented THEN 'skipped'
                        WHEN m.due + make_interval(secs => $11) <= $12 THEN 'expired'
                        WHEN m.due > $12 THEN 'deferred'
                        ELSE 'queued' END AS status
         FROM marked m
     )
     INSERT INTO deliveries (occurrence_id, broadcast_id, tenant_id, channel, recipient_key, contact_id, device_token_id,
                             address, batch_no, status, due_at, expires_at, next_attempt_at, last_error, finalized_at)
     SELECT $7, $13, $1, $6, c.rkey, c.contact_id, c.device_token_id, c.address,
            CASE WHEN c.status = 'queued' THEN ((row_number() OVER (PARTITION BY c.status ORDER BY c.rkey)) - 1) / $14 ELSE -1 END,
            c.status, c.due, c.due + make_interval(secs => $11),
            CASE WHEN c.status = 'deferred' THEN c.due END,
            CASE WHEN c.opted_out THEN 'opted out' WHEN NOT c.consented THEN '${NO_CONSENT}'
                 WHEN c.status = 'expired' THEN 'expired before it could be sent' END,
            CASE WHEN c.status IN ('skipped', 'expired') THEN $12::timestamptz END
       FROM classified c
     ON CONFLICT (occurrence_id, recipient_key, channel) DO NOTHING`,
    [...params, b.channel, occId, spec.scheduledAt, spec.local?.date ?? null, spec.local?.time ?? null,
      b.expire_after_seconds, now, spec.broadcastId, batchSize],
  );
}

/**
 * Plan one occurrence: write its delivery rows in PostgreSQL (INSERT … SELECT …
 * ON CONFLICT DO NOTHING), then enqueue jobs naming batches of those rows under
 * deterministic ids — all in one transaction. Planning the same occurrence twice
 * adds nothing; a crash before COMMIT leaves nothing half done.
 *
 * Rows due now are queued in batches; rows due later (a local-time schedule) are
 * deferred and enqueued by the sweeper when due; rows whose window has already
 * passed (after downtime) are expired; opted-out numbers are recorded as skipped.
 */
export async function planOccurrence(pool: Pool, boss: PgBoss, spec: OccurrenceSpec, now: Date, batchSize = BATCH_SIZE): Promise<PlanResult> {
  const occId = occurrenceIdFor(spec.broadcastId, spec.key);
  return inTransaction(pool, async (tx) => {
    const b = (await tx.query<BroadcastRow>('SELECT tenant_id, channel, audience, priority, expire_after_seconds, cancelled_at FROM broadcasts WHERE id = $1', [spec.broadcastId])).rows[0];
    if (!b) throw new Error(`broadcast ${spec.broadcastId} is not known to the delivery core`);
    if (b.cancelled_at) throw new Error(`broadcast ${spec.broadcastId} is cancelled`);
    await tx.query(
      `INSERT INTO occurrences (id, broadcast_id, key, scheduled_at, local_date, local_time)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (broadcast_id, key) DO NOTHING`,
      [occId, spec.broadcastId, spec.key, spec.scheduledAt, spec.local?.date ?? null, spec.local?.time ?? null],
    );
    const occ = (await tx.query<{ planned_at: Date | null }>('SELECT planned_at FROM occurrences WHERE id = $1 FOR UPDATE', [occId])).rows[0];
    if (occ?.planned_at) {
      return { ...(await summarize(tx, occId)), occurrenceId: occId, created: false };
    }

    await tx.query(planRowsStatement(b, spec, occId, now, batchSize));
    const summary = await summarize(tx, occId);
    await tx.query('UPDATE occurrences SET planned_at = $2, audience_size = $3, batches = $4 WHERE id = $1', [occId, now, summary.audienceSize, summary.batches]);
    if (summary.batches > 0) {
      const jobs = Array.from({ length: summary.batches }, (_, batchNo) => ({
        id: batchJobId(occId, batchNo),
        data: { occurrenceId: occId, batchNo, tenantId: b.tenant_id } satisfies DeliverJob,
        group: deliverGroup(b.tenant_id, b.priority === 'urgent'),
        // Fairness: every broadcast's first batches outrank any broadcast's later
        // ones, so a small broadcast is not stuck behind a huge one. Urgent outranks all.
        priority: b.priority === 'urgent' ? URGENT_PRIORITY : -batchNo,
      }));
      await boss.insert(DELIVER_QUEUE, jobs, { db: { executeSql: (text, values) => tx.query(text, values as unknown[]) } });
      metrics.queueEnqueued.inc({ queue: DELIVER_QUEUE }, jobs.length);
      // Delivered at commit, with the jobs.
      await notifyWork(tx);
    }
    return { ...summary, occurrenceId: occId, created: true };
  });
}

async function summarize(db: Db, occId: string): Promise<Omit<PlanResult, 'occurrenceId' | 'created'>> {
  const { rows } = await db.query<{ status: string; n: number; maxb: number }>(
    'SELECT status, count(*)::int AS n, max(batch_no)::int AS maxb FROM deliveries WHERE occurrence_id = $1 GROUP BY status',
    [occId],
  );
  const s = { audienceSize: 0, queued: 0, deferred: 0, skipped: 0, expired: 0, batches: 0 };
  for (const r of rows) {
    s.audienceSize += r.n;
    if (r.status === 'skipped') s.skipped += r.n;
    else if (r.status === 'expired') s.expired += r.n;
    else if (r.status === 'deferred') s.deferred += r.n;
    else s.queued += r.n;
    if (r.maxb >= 0) s.batches = Math.max(s.batches, r.maxb + 1);
  }
  return s;
}
