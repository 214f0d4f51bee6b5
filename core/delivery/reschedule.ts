import type { Pool, PoolClient } from '../../lib/db/postgres.js';
import { occurrenceId as occurrenceIdFor } from './ids.js';

type Db = Pool | PoolClient;

/**
 * The instant a waiting row is due, from its occurrence and its recipient's zone
 * as they are now (a local-time occurrence: that wall-clock time in the contact's
 * zone, else the tenant's).
 */
const DUE_NOW = `CASE WHEN o.local_date IS NULL THEN o.scheduled_at
     ELSE (o.local_date + o.local_time::time) AT TIME ZONE coalesce(c.time_zone, t.default_time_zone) END`;

/**
 * Recompute due, next-attempt and expiry of rows still waiting for their instant
 * (deferred, never attempted), after a schedule edit or a contact's time-zone
 * change. Rows already sent, in flight or retrying keep their history.
 */
async function retime(db: Db, where: string, params: unknown[]): Promise<number> {
  const r = await db.query(
    `UPDATE deliveries d SET due_at = x.due, next_attempt_at = x.due,
            expires_at = x.due + make_interval(secs => x.expire_after_seconds), updated_at = now()
       FROM (SELECT d.id, ${DUE_NOW} AS due, b.expire_after_seconds
               FROM deliveries d
               JOIN occurrences o ON o.id = d.occurrence_id
               JOIN broadcasts b ON b.id = d.broadcast_id
               JOIN tenants t ON t.id = d.tenant_id
               LEFT JOIN contacts c ON c.id = d.contact_id
              WHERE d.status = 'deferred' AND d.attempts = 0 AND ${where}) x
      WHERE d.id = x.id AND d.due_at IS DISTINCT FROM x.due`,
    params,
  );
  return r.rowCount ?? 0;
}

/**
 * A planned occurrence's schedule changed (new local time or date): what is not
 * yet sent moves to the new instant; nothing is planned twice.
 */
export async function rescheduleOccurrence(db: Db, broadcastId: string, key: string, local: { date: string; time: string }): Promise<number> {
  const occId = occurrenceIdFor(broadcastId, key);
  const changed = await db.query(
    `UPDATE occurrences SET local_date = $2::date, local_time = $3
      WHERE id = $1 AND (local_date IS DISTINCT FROM $2::date OR local_time IS DISTINCT FROM $3)`,
    [occId, local.date, local.time],
  );
  if ((changed.rowCount ?? 0) === 0) return 0;
  return retime(db, 'd.occurrence_id = $1', [occId]);
}

/**
 * Contacts were edited (perhaps their time zone): their local-time rows not yet
 * sent follow it. Rows whose instant did not change are left alone.
 */
export async function rescheduleContacts(db: Db, tenantId: string, phones: string[]): Promise<number> {
  if (phones.length === 0) return 0;
  return retime(db, 'd.tenant_id = $1 AND c.phone = ANY($2::text[]) AND o.local_date IS NOT NULL', [tenantId, phones]);
}
