import { describe, expect, it } from 'vitest';
import { useDeliveryDatabase } from './testing/setup.js';
import { planOccurrence } from './plan.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

/**
 * EXPLAIN of the queries that run per batch, per sweep and per receipt, on a
 * realistically sized table: each must use its index, never scan deliveries.
 * The plans are printed so a reader sees them (`vitest run hot-queries`).
 */
let occurrenceId: string;
const now = new Date('2026-06-01T15:00:00Z');

const fx = useDeliveryDatabase(async () => {
  await seedTenant(fx.db.pool, 'big');
  await seedContacts(fx.db.pool, 'big', 30_000, { tags: ['members'] });
  await seedContacts(fx.db.pool, 'big', 200, { tags: ['youth'], offset: 100_000 });
  for (let i = 0; i < 3; i++) {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'big', audience: { segment: { tags: ['members'] } } });
    occurrenceId = (await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now)).occurrenceId;
  }
  await fx.db.pool.query(`UPDATE deliveries SET status = 'sent', provider_message_id = 'pm-' || id WHERE id % 2 = 0`);
  await fx.db.pool.query('ANALYZE');
});

async function explain(sql: string, params: unknown[]): Promise<string> {
  const { rows } = await fx.db.pool.query(`EXPLAIN ${sql}`, params);
  const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
  console.log(`\n${sql.trim().split('\n')[0]}\n${plan}`);
  return plan;
}

describe('hot queries use their indexes', () => {
  it('a worker loading its batch', async () => {
    const plan = await explain(`SELECT id FROM deliveries WHERE occurrence_id = $1 AND batch_no = $2 AND status = 'queued'`, [occurrenceId, 7]);
    expect(plan).toMatch(/deliveries_batch/);
    expect(plan).not.toMatch(/Seq Scan on deliveries/);
  });

  it('the sweeper looking for due retries and deferrals', async () => {
    const plan = await explain(
      `SELECT id FROM deliveries WHERE status IN ('retry', 'deferred') AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 5000`, [now]);
    expect(plan).toMatch(/deliveries_wakeup/);
  });

  it('the sweeper looking for rows in flight', async () => {
    const plan = await explain(`SELECT id FROM deliveries WHERE status = 'sending' AND claimed_at < $1`, [now]);
    expect(plan).toMatch(/deliveries_inflight/);
  });

  it('a receipt finding its delivery', async () => {
    const plan = await explain(`SELECT id FROM deliveries WHERE provider_message_id = $1`, ['pm-42']);
    expect(plan).toMatch(/deliveries_provider_id/);
  });

  it('status counts of one broadcast', async () => {
    const plan = await explain(`SELECT status, count(*) FROM deliveries WHERE broadcast_id = $1 GROUP BY status`, ['00000000-0000-0000-0000-000000000000']);
    expect(plan).toMatch(/deliveries_broadcast_status/);
  });

  it('a small tagged segment of a big tenant', async () => {
    const plan = await explain(`SELECT id FROM contacts WHERE tenant_id = $1 AND tags && $2::text[]`, ['big', ['youth']]);
    expect(plan).toMatch(/contacts_tags/);
  });
});
