import { isValidPhoneNumber } from 'libphonenumber-js/max';
import { planEachTime, type Pool } from '../../lib/db/postgres.js';
import { audienceParams, audienceSql } from './plan.js';
import type { Audience } from './broadcasts.js';

/**
 * What the operator reads from PostgreSQL to decide, beside the delivery core's own
 * functions: whether a tenant and its provider exist, the audience (through the
 * planner's own audience SQL, so a preview and a plan agree), and which
 * occurrences are already planned. Reads only; every write goes through the
 * delivery core.
 */

/** The planner's audience query with every parameter typed, whichever of them this channel uses. */
function audienceQuery(channel: 'sms' | 'push'): string {
  return `SELECT a.* FROM (${audienceSql(channel)}) a
            CROSS JOIN (SELECT $1::text AS _tenant, $2::text[] AS _tags, $3::boolean AS _all, $4::text[] AS _contacts, $5::text AS _topic) typed`;
}

export interface TenantInfo {
  id: string;
  defaultTimeZone: string;
  sendingNumbers: number;
}

export async function readTenant(pool: Pool, tenantId: string): Promise<TenantInfo | undefined> {
  const { rows } = await pool.query<{ id: string; default_time_zone: string; numbers: number }>(
    `SELECT t.id, t.default_time_zone, (SELECT count(*)::int FROM sending_numbers n WHERE n.tenant_id = t.id) AS numbers
       FROM tenants t WHERE t.id = $1`,
    [tenantId],
  );
  const r = rows[0];
  return r && { id: r.id, defaultTimeZone: r.default_time_zone, sendingNumbers: r.numbers };
}

export async function audienceSize(pool: Pool, tenantId: string, channel: 'sms' | 'push', audience: Audience): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(planEachTime(`SELECT count(*)::int AS n FROM (${audienceQuery(channel)}) a`, audienceParams(tenantId, audience)));
  return rows[0]?.n ?? 0;
}

/**
 * The earliest instant at which `time` on `date` falls in any recipient's zone
 * (their own, else the tenant's) — the same expression the planner gives each row.
 */
export async function earliestLocalInstant(
  pool: Pool,
  tenantId: string,
  channel: 'sms' | 'push',
  audience: Audience,
  local: { date: string; time: string },
): Promise<Date | undefined> {
  const params = audienceParams(tenantId, audience);
  const { rows } = await pool.query<{ at: Date | null }>(planEachTime(
    `SELECT min(($${params.length + 1}::date + $${params.length + 2}::time) AT TIME ZONE coalesce(a.tz, t.default_time_zone)) AS at
       FROM (${audienceQuery(channel)}) a CROSS JOIN (SELECT default_time_zone FROM tenants WHERE id = $1) t`,
    [...params, local.date, local.time],
  ));
  return rows[0]?.at ?? undefined;
}

export interface AudiencePreview {
  audienceSize: number;
  optedOut: number;
  /** Inline numbers that are no consenting contact (skipped when planned). */
  noConsent: number;
  invalid: number;
  sendable: number;
}

/** A dry run's view of the audience: who would be skipped as opted out or as an invalid number. */
export async function previewAudience(pool: Pool, tenantId: string, channel: 'sms' | 'push', audience: Audience): Promise<AudiencePreview> {
  if (channel === 'push') {
    const n = await audienceSize(pool, tenantId, channel, audience);
    return { audienceSize: n, optedOut: 0, noConsent: 0, invalid: 0, sendable: n };
  }
  const { rows } = await pool.query<{ address: string; opted_out: boolean; consented: boolean }>(planEachTime(
    `SELECT a.address, a.consented, (o.phone IS NOT NULL) AS opted_out
       FROM (${audienceQuery(channel)}) a LEFT JOIN opt_outs o ON o.tenant_id = $1 AND o.phone = a.address`,
    audienceParams(tenantId, audience),
  ));
  let optedOut = 0;
  let noConsent = 0;
  let invalid = 0;
  // The planner's order: an opt-out first, then consent.
  for (const r of rows) {
    if (r.opted_out) optedOut++;
    else if (!r.consented) noConsent++;
    else if (!isValidPhoneNumber(r.address)) invalid++;
  }
  return { audienceSize: rows.length, optedOut, noConsent, invalid, sendable: rows.length - optedOut - noConsent - invalid };
}

export interface PlannedOccurrence {
  key: string;
  scheduledAt: Date;
  plannedAt: Date | null;
  audienceSize: number | null;
}

export async function plannedOccurrences(pool: Pool, broadcastId: string): Promise<PlannedOccurrence[]> {
  const { rows } = await pool.query<{ key: string; scheduled_at: Date; planned_at: Date | null; audience_size: number | null }>(
    'SELECT key, scheduled_at, planned_at, audience_size FROM occurrences WHERE broadcast_id = $1 AND planned_at IS NOT NULL ORDER BY scheduled_at',
    [broadcastId],
  );
  return rows.map((r) => ({ key: r.key, scheduledAt: r.scheduled_at, plannedAt: r.planned_at, audienceSize: r.audience_size }));
}

/** Whether the delivery core knows this broadcast (and if it was cancelled). */
export async function deliveryCoreCopy(pool: Pool, broadcastId: string): Promise<{ generation: number; suspended: boolean; cancelledAt: Date | null } | undefined> {
  const { rows } = await pool.query<{ generation: number; suspended: boolean; cancelled_at: Date | null }>(
    'SELECT generation, suspended, cancelled_at FROM broadcasts WHERE id = $1',
    [broadcastId],
  );
  const r = rows[0];
  return r && { generation: r.generation, suspended: r.suspended, cancelledAt: r.cancelled_at };
}

/** Rows a worker held while the broadcast was suspended. */
export async function hasHeldDeliveries(pool: Pool, broadcastId: string): Promise<boolean> {
  const { rows } = await pool.query("SELECT 1 FROM deliveries WHERE broadcast_id = $1 AND status = 'held' LIMIT 1", [broadcastId]);
  return rows.length > 0;
}
