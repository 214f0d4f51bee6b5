/**
 * What a tenant may read of its broadcasts and deliveries through the api: pages of
 * broadcasts with their delivery counts, one broadcast, a page of its deliveries. Every
 * query names the tenant, so another tenant's broadcast is simply not found.
 */
import type { Pool } from '../../lib/db/postgres.js';

/** Every status a delivery row can have. */
export const DELIVERY_STATUSES = [
  'queued', 'sending', 'retry', 'deferred', 'held', 'sent', 'delivered', 'failed', 'dead', 'skipped', 'expired', 'cancelled',
] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface BroadcastRow {
  id: string;
  /** created_at as PostgreSQL text: the page cursor (a JS Date would drop microseconds). */
  _ts: string;
  [k: string]: unknown;
}

const BROADCAST_COLUMNS = `b.id, b.namespace, b.name, b.channel, b.priority, b.generation, b.message_text, b.message_title,
  b.suspended, b.cancelled_at, b.max_attempts, b.expire_after_seconds, b.created_at, b.updated_at, b.created_at::text AS _ts`;

/** The tenant's broadcasts, newest first, after the (created_at, id) cursor. */
export async function broadcastsPage(pool: Pool, tenantId: string, after: [string, string] | undefined, limit: number): Promise<BroadcastRow[]> {
  const { rows } = await pool.query<BroadcastRow>(
    `SELECT ${BROADCAST_COLUMNS} FROM broadcasts b
      WHERE b.tenant_id = $1 AND ($2::timestamptz IS NULL OR (b.created_at, b.id) < ($2::timestamptz, $3::uuid))
      ORDER BY b.created_at DESC, b.id DESC LIMIT $4`,
    [tenantId, after?.[0] ?? null, after?.[1] ?? null, limit],
  );
  return rows;
}

export async function tenantBroadcast(pool: Pool, tenantId: string, id: string): Promise<BroadcastRow | undefined> {
  const { rows } = await pool.query<BroadcastRow>(`SELECT ${BROADCAST_COLUMNS} FROM broadcasts b WHERE b.tenant_id = $1 AND b.id = $2`, [tenantId, id]);
  return rows[0];
}

export async function broadcastExists(pool: Pool, tenantId: string, id: string): Promise<boolean> {
  const b = await pool.query('SELECT 1 FROM broadcasts WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return (b.rowCount ?? 0) > 0;
}

/** Delivery rows by status, per broadcast. */
export async function countsByBroadcast(pool: Pool, tenantId: string, broadcastIds: string[]): Promise<Map<string, Record<string, number>>> {
  const counts = new Map<string, Record<string, number>>();
  if (broadcastIds.length === 0) return counts;
  const r = await pool.query<{ broadcast_id: string; status: string; n: number }>(
    `SELECT broadcast_id, status, count(*)::int AS n FROM deliveries
      WHERE broadcast_id = ANY($1::uuid[]) AND tenant_id = $2 GROUP BY broadcast_id, status`,
    [broadcastIds, tenantId],
  );
  for (const c of r.rows) {
    const m = counts.get(c.broadcast_id) ?? {};
    m[c.status] = c.n;
    counts.set(c.broadcast_id, m);
  }
  return counts;
}

/** A page of a broadcast's deliveries: $1 broadcast, $2 tenant, $3 status or null, $4 $5 cursor (status, id), $6 limit. */
export const DELIVERIES_PAGE = `
  SELECT id, occurrence_id, channel, recipient_key, address, contact_id, device_token_id, status, attempts, segments,
         provider_message_id, error_code, last_error, possible_duplicate, due_at, next_attempt_at, sent_at,
         finalized_at, updated_at
    FROM deliveries
   WHERE broadcast_id = $1 AND tenant_id = $2
     AND ($3::text IS NULL OR status = $3)
     AND ($4::text IS NULL OR (status, id) > ($4::text, $5::bigint))
   ORDER BY status, id LIMIT $6`;

export interface DeliveryListRow {
  id: number;
  status: string;
  channel: string;
  recipient_key: string;
  address: string;
  last_error: string | null;
  [k: string]: unknown;
}

/**
 * A page of a broadcast's deliveries, ordered by (status, id) so that one index
 * (broadcast_id, status, id) serves both the filtered and the unfiltered listing.
 */
export async function deliveriesPage(
  pool: Pool,
  q: { broadcastId: string; tenantId: string; status: DeliveryStatus | null; after: [string, number] | undefined; limit: number },
): Promise<DeliveryListRow[]> {
  const { rows } = await pool.query<DeliveryListRow>(DELIVERIES_PAGE, [q.broadcastId, q.tenantId, q.status, q.after?.[0] ?? null, q.after?.[1] ?? 0, q.limit]);
  return rows;
}
