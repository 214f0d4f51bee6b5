import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/database.js';
import { DELIVER_QUEUE, startBoss } from '../../lib/queue.js';
import { planOccurrence } from './plan.js';
import { sweepOnce } from './sweeper.js';
import { cancelBroadcast, resumeBroadcast } from './broadcasts.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

let db: TestDatabase;
let boss: PgBoss;
const now = new Date('2026-06-01T15:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  boss = await startBoss(db.url, { supervise: false });
  await seedTenant(db.pool, 'grace');
  await seedContacts(db.pool, 'grace', 4);
});
afterAll(async () => {
  await boss?.stop({ graceful: false });
  await db?.drop();
});

async function planned() {
  const b = await seedBroadcast(db.pool, { tenantId: 'grace', expireAfterSeconds: 3600 });
  await planOccurrence(db.pool, boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
  const ids = (await db.pool.query<{ id: number }>('SELECT id FROM deliveries WHERE broadcast_id = $1 ORDER BY id', [b.id])).rows.map((r) => r.id);
  return { b, ids };
}
const jobsNaming = async (id: number) =>
  (await db.pool.query(`SELECT count(*)::int n FROM pgboss.job WHERE name = $1 AND data->'deliveryIds' @> $2::jsonb`, [DELIVER_QUEUE, JSON.stringify([id])])).rows[0].n;

describe('sweepOnce', () => {
  it('wakes due rows with exactly one job, and leaves rows not yet due alone', async () => {
    const { ids } = await planned();
    await db.pool.query(`UPDATE deliveries SET status = 'retry', next_attempt_at = $2 WHERE id = $1`, [ids[0], new Date(now.getTime() - 1000)]);
    await db.pool.query(`UPDATE deliveries SET status = 'deferred', next_attempt_at = $2 WHERE id = $1`, [ids[1], new Date(now.getTime() + 60_000)]);
    await sweepOnce(db.pool, boss, now);
    await sweepOnce(db.pool, boss, now);
    expect(await jobsNaming(ids[0]!)).toBe(1);
    expect(await jobsNaming(ids[1]!)).toBe(0);
    const st = (await db.pool.query('SELECT id, status FROM deliveries WHERE id = ANY($1) ORDER BY id', [[ids[0], ids[1]]])).rows;
    expect(st.map((r) => r.status)).toEqual(['queued', 'deferred']);
    // Move the clock: now the deferred row is due.
    await sweepOnce(db.pool, boss, new Date(now.getTime() + 61_000));
    expect(await jobsNaming(ids[1]!)).toBe(1);
  });

  it('reclaims rows in flight on a dead worker as possible duplicates, but not those of a live one', async () => {
    const { ids } = await planned();
    await db.pool.query(`INSERT INTO workers (id, lane, heartbeat_at) VALUES ('dead-w', 'blue', now() - interval '5 minutes'), ('live-w', 'blue', now())`);
    await db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 1, claimed_by = 'dead-w', claimed_at = now() - interval '5 minutes' WHERE id = $1`, [ids[0]]);
    await db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 1, claimed_by = 'live-w', claimed_at = now() - interval '5 minutes' WHERE id = $1`, [ids[1]]);
    const r = await sweepOnce(db.pool, boss, now, { workerLeaseSeconds: 30 });
    expect(r.orphaned).toBe(1);
    const rows = (await db.pool.query('SELECT status, possible_duplicate FROM deliveries WHERE id = ANY($1) ORDER BY id', [[ids[0], ids[1]]])).rows;
    expect(rows[1]).toEqual({ status: 'sending', possible_duplicate: false });
    expect(rows[0].possible_duplicate).toBe(true);
    expect(['retry', 'queued']).toContain(rows[0].status);
  });

  it('resume makes held rows due; cancel records every unsent row as cancelled', async () => {
    const { b, ids } = await planned();
    await db.pool.query(`UPDATE deliveries SET status = 'held' WHERE id = ANY($1)`, [ids.slice(0, 2)]);
    expect(await resumeBroadcast(db.pool, b.id, now)).toBe(2);
    await sweepOnce(db.pool, boss, now);
    expect(await jobsNaming(ids[0]!)).toBe(1);
    await db.pool.query(`UPDATE deliveries SET status = 'sent' WHERE id = $1`, [ids[3]]);
    expect(await cancelBroadcast(db.pool, b.id, now)).toBe(3);
    const st = (await db.pool.query('SELECT status FROM deliveries WHERE broadcast_id = $1 ORDER BY id', [b.id])).rows.map((r) => r.status);
    expect(st).toEqual(['cancelled', 'cancelled', 'cancelled', 'sent']);
  });
});
