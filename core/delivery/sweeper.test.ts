import { describe, expect, it } from 'vitest';
import { useDeliveryDatabase } from './testing/setup.js';
import { DELIVER_QUEUE } from '../../lib/queue.js';
import { planOccurrence } from './plan.js';
import { sweepOnce } from './sweeper.js';
import { cancelBroadcast, resumeBroadcast } from './broadcasts.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

const now = new Date('2026-06-01T15:00:00Z');

const fx = useDeliveryDatabase(async () => {
  await seedTenant(fx.db.pool, 'grace');
  await seedContacts(fx.db.pool, 'grace', 4);
});

async function planned() {
  const b = await seedBroadcast(fx.db.pool, { tenantId: 'grace', expireAfterSeconds: 3600 });
  await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
  const ids = (await fx.db.pool.query<{ id: number }>('SELECT id FROM deliveries WHERE broadcast_id = $1 ORDER BY id', [b.id])).rows.map((r) => r.id);
  return { b, ids };
}
const jobsNaming = async (id: number) =>
  (await fx.db.pool.query(`SELECT count(*)::int n FROM pgboss.job WHERE name = $1 AND data->'deliveryIds' @> $2::jsonb`, [DELIVER_QUEUE, JSON.stringify([id])])).rows[0].n;

describe('sweepOnce', () => {
  it('wakes due rows with exactly one job, and leaves rows not yet due alone', async () => {
    const { ids } = await planned();
    await fx.db.pool.query(`UPDATE deliveries SET status = 'retry', next_attempt_at = $2 WHERE id = $1`, [ids[0], new Date(now.getTime() - 1000)]);
    await fx.db.pool.query(`UPDATE deliveries SET status = 'deferred', next_attempt_at = $2 WHERE id = $1`, [ids[1], new Date(now.getTime() + 60_000)]);
    await sweepOnce(fx.db.pool, fx.boss, now);
    await sweepOnce(fx.db.pool, fx.boss, now);
    expect(await jobsNaming(ids[0]!)).toBe(1);
    expect(await jobsNaming(ids[1]!)).toBe(0);
    const st = (await fx.db.pool.query('SELECT id, status FROM deliveries WHERE id = ANY($1) ORDER BY id', [[ids[0], ids[1]]])).rows;
    expect(st.map((r) => r.status)).toEqual(['queued', 'deferred']);
    // Move the clock: now the deferred row is due.
    await sweepOnce(fx.db.pool, fx.boss, new Date(now.getTime() + 61_000));
    expect(await jobsNaming(ids[1]!)).toBe(1);
  });

  it('reclaims rows in flight on a dead worker as possible duplicates, but not those of a live one', async () => {
    const { ids } = await planned();
    await fx.db.pool.query(`INSERT INTO workers (id, lane, heartbeat_at) VALUES ('dead-w', 'blue', now() - interval '5 minutes'), ('live-w', 'blue', now())`);
    await fx.db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 1, claimed_by = 'dead-w', claimed_at = now() - interval '5 minutes' WHERE id = $1`, [ids[0]]);
    await fx.db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 1, claimed_by = 'live-w', claimed_at = now() - interval '5 minutes' WHERE id = $1`, [ids[1]]);
    const r = await sweepOnce(fx.db.pool, fx.boss, now, { workerLeaseSeconds: 30 });
    expect(r.orphaned).toBe(1);
    const rows = (await fx.db.pool.query('SELECT status, possible_duplicate FROM deliveries WHERE id = ANY($1) ORDER BY id', [[ids[0], ids[1]]])).rows;
    expect(rows[1]).toEqual({ status: 'sending', possible_duplicate: false });
    expect(rows[0].possible_duplicate).toBe(true);
    expect(['retry', 'queued']).toContain(rows[0].status);
  });

  it('resume makes held rows due; cancel records every unsent row as cancelled', async () => {
    const { b, ids } = await planned();
    await fx.db.pool.query(`UPDATE deliveries SET status = 'held' WHERE id = ANY($1)`, [ids.slice(0, 2)]);
    expect(await resumeBroadcast(fx.db.pool, b.id, now)).toBe(2);
    await sweepOnce(fx.db.pool, fx.boss, now);
    expect(await jobsNaming(ids[0]!)).toBe(1);
    await fx.db.pool.query(`UPDATE deliveries SET status = 'sent' WHERE id = $1`, [ids[3]]);
    expect(await cancelBroadcast(fx.db.pool, b.id, now)).toBe(3);
    const st = (await fx.db.pool.query('SELECT status FROM deliveries WHERE broadcast_id = $1 ORDER BY id', [b.id])).rows.map((r) => r.status);
    expect(st).toEqual(['cancelled', 'cancelled', 'cancelled', 'sent']);
  });
});
