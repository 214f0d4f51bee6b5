import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ManualClock } from '../../lib/clock.js';
import { planOccurrence } from '../../core/delivery/plan.js';
import { updateLanes } from '../../core/delivery/lanes.js';
import { seedBroadcast, seedContacts, seedTenant } from '../../core/delivery/testing/fixtures.js';
import { startDeliveryStack, type DeliveryStack } from '../../devenv/delivery-stack.js';
import type { RunningWorker } from './worker.js';

let db: TestDatabase;
let h: DeliveryStack;
let workers: RunningWorker[] = [];
const clock = new ManualClock('2026-06-01T15:00:00Z', { running: true });

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  h = await startDeliveryStack({ pool: db.pool, url: db.url, clock });
  for (const t of ['alpha', 'beta', 'loadtest']) await seedTenant(db.pool, t);
  await seedContacts(db.pool, 'alpha', 1000, { tags: ['all'] });
  await seedContacts(db.pool, 'beta', 1000, { tags: ['all'], offset: 10_000 });
  await seedContacts(db.pool, 'loadtest', 100, { tags: ['all'], offset: 20_000 });
});
afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop(5_000)));
  workers = [];
  h.sim.configure({ latencyMs: 0 });
  h.sim.reset();
  await updateLanes(db.pool, [{ color: 'blue', weight: 100, role: 'stable', tenants: [] }, { color: 'green', weight: 0, role: 'canary', tenants: [] }]);
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

const start = async (lane: string, version: string, o: Parameters<DeliveryStack['startWorker']>[0] = {}) => {
  const w = await h.startWorker({ lane, version, chunkSize: 10, accountSmsPerSecond: 100_000, ...o });
  workers.push(w);
  return w;
};
const broadcast = async (tenantId: string, o: { priority?: 'urgent' | 'normal'; tags?: string[]; contacts?: string[] } = {}) => {
  const b = await seedBroadcast(db.pool, { tenantId, priority: o.priority ?? 'normal', audience: o.contacts ? { contacts: o.contacts } : { segment: { tags: o.tags ?? ['all'] } } });
  await planOccurrence(db.pool, h.boss, { broadcastId: b.id, key: 'once', scheduledAt: clock.now() }, clock.now());
  return b;
};
const byLane = async (broadcastId: string) =>
  Object.fromEntries((await db.pool.query<{ lane: string; n: number }>(
    `SELECT lane, count(*)::int n FROM deliveries WHERE broadcast_id = $1 AND status = 'sent' GROUP BY lane`, [broadcastId])).rows.map((r) => [r.lane, r.n]));
const maxRetries = async () => (await db.pool.query<{ n: number }>(`SELECT coalesce(max(retry_count), 0)::int n FROM pgboss.job WHERE name = 'herald-deliver'`)).rows[0]!.n;

describe('workers in lanes', () => {
  it("claim only their lane's share of every tenant's work, and record every provider attempt with lane and version", async () => {
    await start('blue', 'v1');
    await start('green', 'v2');
    await updateLanes(db.pool, [{ color: 'blue', weight: 80 }, { color: 'green', weight: 20 }]);
    const a = await broadcast('alpha');
    const b = await broadcast('beta');
    expect(await h.settled(a.id, 60_000)).toEqual({ sent: 1000 });
    expect(await h.settled(b.id, 60_000)).toEqual({ sent: 1000 });
    for (const x of [a, b]) {
      const lanes = await byLane(x.id);
      expect(Math.abs((100 * (lanes.green ?? 0)) / 1000 - 20)).toBeLessThanOrEqual(2);
    }
    expect(h.sim.received({ recipients: true }).sms.duplicates.count).toBe(0);
    // One attempt per send, on the lane and version that made it.
    const attempts = (await db.pool.query(
      `SELECT a.lane, a.version, a.outcome, count(*)::int n, bool_and(a.called) called, bool_and(a.duration_ms >= 0) timed,
              bool_and(a.finished_at >= a.started_at) ordered, bool_and(a.lane = d.lane) same_lane
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE a.broadcast_id = ANY($1::uuid[])
        GROUP BY 1, 2, 3 ORDER BY 1`, [[a.id, b.id]])).rows;
    expect(attempts).toEqual([
      { lane: 'blue', version: 'v1', outcome: 'accepted', n: 2000 - attempts[1]!.n, called: true, timed: true, ordered: true, same_lane: true },
      { lane: 'green', version: 'v2', outcome: 'accepted', n: attempts[1]!.n, called: true, timed: true, ordered: true, same_lane: true },
    ]);
  });

  it('a lane set to weight 0 stops claiming at once and hands back what it holds, spending no retry; nothing lost or sent twice', async () => {
    h.sim.configure({ latencyMs: 50 });
    await start('blue', 'v1', { concurrency: 20 });
    await start('green', 'v2', { concurrency: 20 });
    await updateLanes(db.pool, [{ color: 'blue', weight: 50 }, { color: 'green', weight: 50 }]);
    const a = await broadcast('alpha');
    await expect.poll(async () => (await byLane(a.id)).green ?? 0, { timeout: 30_000, interval: 20 }).toBeGreaterThanOrEqual(100);
    await updateLanes(db.pool, [{ color: 'blue', weight: 100 }, { color: 'green', weight: 0 }]);
    const changedAt = (await db.pool.query<{ t: Date }>('SELECT now() t')).rows[0]!.t;
    expect(await h.settled(a.id, 60_000)).toEqual({ sent: 1000 });
    const lanes = await byLane(a.id);
    expect(lanes.blue).toBeGreaterThan(100);
    const lastGreen = (await db.pool.query<{ t: Date }>(`SELECT max(claimed_at) t FROM deliveries WHERE broadcast_id = $1 AND lane = 'green'`, [a.id])).rows[0]!.t;
    expect(lastGreen.getTime()).toBeLessThanOrEqual(changedAt.getTime());
    expect(h.sim.received({ recipients: true }).sms.duplicates.count).toBe(0);
    expect(await maxRetries()).toBe(0);
  });

  it('urgent work goes only to the stable lane while a canary runs; a synthetic tenant only to its preview lane', async () => {
    await start('blue', 'v1');
    await start('green', 'v2');
    await updateLanes(db.pool, [{ color: 'blue', weight: 50 }, { color: 'green', weight: 50 }]);
    const urgent = await broadcast('beta', { priority: 'urgent' });
    expect(await h.settled(urgent.id, 60_000)).toEqual({ sent: 1000 });
    expect(await byLane(urgent.id)).toEqual({ blue: 1000 });

    await updateLanes(db.pool, [{ color: 'blue', weight: 100 }, { color: 'green', weight: 0, role: 'preview', tenants: ['loadtest'] }]);
    const synthetic = await broadcast('loadtest');
    const real = await broadcast('alpha');
    expect(await h.settled(synthetic.id, 60_000)).toEqual({ sent: 100 });
    expect(await h.settled(real.id, 60_000)).toEqual({ sent: 1000 });
    expect(await byLane(synthetic.id)).toEqual({ green: 100 });
    expect(await byLane(real.id)).toEqual({ blue: 1000 });
  });

  it('a preview lane gets its synthetic tenant\'s work even when the stable lane\'s queue slots fetch its jobs first every time', async () => {
    // Blue's 64 slots poll every half second, green's one every 5 s: a job of the
    // synthetic tenant is nearly always fetched (and refused) by blue first.
    await start('blue', 'v1');
    await start('blue', 'v1');
    await start('green', 'v2', { jobs: 1, pollingIntervalSeconds: 5 });
    await updateLanes(db.pool, [{ color: 'blue', weight: 100 }, { color: 'green', weight: 0, role: 'preview', tenants: ['loadtest'] }]);
    const synthetic = await broadcast('loadtest');
    const real = await broadcast('beta');
    expect(await h.settled(synthetic.id, 60_000)).toEqual({ sent: 100 });
    expect(await h.settled(real.id, 60_000)).toEqual({ sent: 1000 });
    expect(await byLane(synthetic.id)).toEqual({ green: 100 });
    expect(await byLane(real.id)).toEqual({ blue: 1000 });
    expect(h.sim.received({ recipients: true }).sms.duplicates.count).toBe(0);
  }, 120_000);

  it('only a stable-lane worker runs the sweeper: a due retry waits until one is up', async () => {
    await updateLanes(db.pool, [{ color: 'blue', weight: 50 }, { color: 'green', weight: 50 }]);
    await start('green', 'v2');
    const a = await broadcast('beta', { contacts: ['+12062000001'] });
    expect(await h.settled(a.id, 30_000)).toEqual({ sent: 1 });
    await db.pool.query(`UPDATE deliveries SET status = 'retry', next_attempt_at = $2::timestamptz - interval '1 minute' WHERE broadcast_id = $1`, [a.id, clock.now()]);
    await new Promise((r) => setTimeout(r, 1_500)); // several of green's sweep intervals
    expect((await db.pool.query(`SELECT status FROM deliveries WHERE broadcast_id = $1`, [a.id])).rows[0].status).toBe('retry');
    await start('blue', 'v1');
    expect(await h.settled(a.id, 30_000)).toEqual({ sent: 1 });
  });
});
