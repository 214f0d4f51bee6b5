/**
 * What the fair split of the shared limits (migration 010, herald_fair_take) says about a
 * tenant: whether it waits for shared capacity now and its share, and the rows each tenant
 * has waiting. Read by the operator (a Broadcast's WaitingForCapacity) and the workers
 * (herald_tenant_waiting_rows).
 */
interface Queryable {
  query<R = unknown>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** The provider accounts' buckets, shared fairly between tenants (their parties are tenant ids). */
export const ACCOUNT_BUCKETS = { sms: 'account:telnyx:sms', push: 'account:fcm:push' } as const;

export interface CapacityWait {
  /** The tenant's share of the account among the tenants wanting it at its last refusal (0-1). */
  share: number;
  refusedAt: Date;
}

/** $1 bucket, $2 tenant, $3 seconds. */
const RECENT_REFUSAL = `
  SELECT share, refused_at FROM fair_shares
   WHERE bucket = $1 AND party = $2 AND refused_at > now() - make_interval(secs => $3)
   ORDER BY refused_at DESC LIMIT 1`;

/** Set when the tenant's claims on the channel's provider account were refused tokens within the last `withinSeconds`. */
export async function capacityWait(db: Queryable, tenantId: string, channel: 'sms' | 'push', withinSeconds = 5): Promise<CapacityWait | undefined> {
  const { rows } = await db.query<{ share: number | null; refused_at: Date }>(RECENT_REFUSAL, [ACCOUNT_BUCKETS[channel], tenantId, withinSeconds]);
  const r = rows[0];
  return r ? { share: Number(r.share ?? 1), refusedAt: r.refused_at } : undefined;
}

/**
 * Rows queued to send now, by tenant: one index range per broadcast not cancelled
 * (deliveries_broadcast_status_id), so it never scans the deliveries table.
 */
export const WAITING_ROWS = `
  SELECT b.tenant_id, sum(q.n)::bigint AS n
    FROM broadcasts b
    CROSS JOIN LATERAL (SELECT count(*) AS n FROM deliveries d WHERE d.broadcast_id = b.id AND d.status = 'queued') q
   WHERE b.cancelled_at IS NULL AND q.n > 0
   GROUP BY b.tenant_id`;

export async function waitingRowsByTenant(db: Queryable): Promise<Map<string, number>> {
  const { rows } = await db.query<{ tenant_id: string; n: string }>(WAITING_ROWS);
  return new Map(rows.map((r) => [r.tenant_id, Number(r.n)]));
}
