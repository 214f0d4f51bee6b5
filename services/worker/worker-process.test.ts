import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { startBoss } from '../../lib/queue.js';
import { planOccurrence } from '../../core/delivery/plan.js';
import { seedBroadcast, seedContacts, seedTenant } from '../../core/delivery/testing/fixtures.js';
import { startSimulator, type Simulator } from '../simulator/simulator.js';
import { startWorkerProcess } from './testing/worker-process.js';

let db: TestDatabase;
let sim: Simulator;
let boss: PgBoss;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  sim = await startSimulator({ port: 0, fcmPort: 0, receipts: 'none' });
  boss = await startBoss(db.url, { supervise: false });
  await seedTenant(db.pool, 'grace');
  await seedContacts(db.pool, 'grace', 1000, { tags: ['crash'] });
  await seedContacts(db.pool, 'grace', 300, { tags: ['drain'], offset: 10_000 });
});
afterAll(async () => {
  await boss?.stop({ graceful: false });
  await sim?.close();
  await db?.drop();
});

const env = () => ({ DATABASE_URL: db.url, HERALD_SIMULATOR_URL: sim.url, HERALD_WORKER_LEASE_SECONDS: '5', HERALD_WORKER_CONCURRENCY: '40', HERALD_WORKER_JOBS: '2', HERALD_ACCOUNT_SMS_PER_SECOND: '100000' });
const counts = async (broadcastId: string) =>
  Object.fromEntries((await db.pool.query('SELECT status, count(*)::int n FROM deliveries WHERE broadcast_id = $1 GROUP BY 1', [broadcastId])).rows.map((r) => [r.status, r.n]));
async function settle(broadcastId: string, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await counts(broadcastId);
    if (!c.queued && !c.sending && !c.retry) return c;
    if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(c)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a worker process', () => {
  it('killed mid-batch (kill -9): nothing lost, no duplicate among rows recorded sent, possible duplicates at most the rows in flight', async () => {
    sim.reset();
    sim.configure({ latencyMs: 150 });
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { segment: { tags: ['crash'] } } });
    await planOccurrence(db.pool, boss, { broadcastId: b.id, key: 'once', scheduledAt: new Date() }, new Date());
    const first = await startWorkerProcess(env());
    await expect.poll(async () => (await counts(b.id)).sent ?? 0, { timeout: 60_000, interval: 50 }).toBeGreaterThanOrEqual(150);
    first.child.kill('SIGKILL');
    await first.exited;
    const sentAtKill = (await db.pool.query<{ address: string }>(`SELECT address FROM deliveries WHERE broadcast_id = $1 AND status = 'sent'`, [b.id])).rows;
    const inFlightAtKill = (await counts(b.id)).sending ?? 0;
    expect(inFlightAtKill).toBeGreaterThan(0); // the kill really landed mid-batch

    const second = await startWorkerProcess(env());
    const final = await settle(b.id);
    second.child.kill('SIGTERM');
    await second.exited;

    expect(final).toEqual({ sent: 1000 });
    const got = sim.received({ recipients: true }).sms;
    expect(got.recipients).toBe(1000); // nothing lost
    for (const { address } of sentAtKill) expect(sim.countFor(address)).toBe(1);
    const flagged = (await db.pool.query(`SELECT count(*)::int n FROM deliveries WHERE broadcast_id = $1 AND possible_duplicate`, [b.id])).rows[0].n;
    expect(flagged).toBeLessThanOrEqual(inFlightAtKill);
    expect(got.duplicates.count).toBeLessThanOrEqual(flagged);
  }, 180_000);

  it('SIGTERM drains: claims nothing new, records what it had in flight, exits 0; the rest goes out once from another worker', async () => {
    sim.reset();
    sim.configure({ latencyMs: 400 });
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { segment: { tags: ['drain'] } } });
    await planOccurrence(db.pool, boss, { broadcastId: b.id, key: 'once', scheduledAt: new Date() }, new Date());
    const w = await startWorkerProcess({ ...env(), HERALD_WORKER_JOBS: '1' });
    await expect.poll(async () => (await counts(b.id)).sending ?? 0, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
    const after = await counts(b.id);
    expect(after.sending ?? 0).toBe(0); // everything it held was recorded
    expect(after.sent ?? 0).toBeGreaterThan(0);
    expect(after.sent ?? 0).toBeLessThan(300); // it did not keep claiming
    const second = await startWorkerProcess(env());
    sim.configure({ latencyMs: 0 });
    expect(await settle(b.id)).toEqual({ sent: 300 });
    second.child.kill('SIGTERM');
    await second.exited;
    const got = sim.received({ recipients: true }).sms;
    expect(got.recipients).toBe(300);
    expect(got.duplicates.count).toBe(0);
  }, 180_000);
});
