import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { waitFor } from '../../devenv/poll.js';
import type { Supervised } from '../../devenv/processes.js';
import { startBoss } from '../../lib/queue.js';
import { planOccurrence } from '../../core/delivery/plan.js';
import { seedBroadcast, seedContacts, seedTenant } from '../../core/delivery/testing/fixtures.js';
import { startSimulator, type Simulator } from '../simulator/simulator.js';
import { startWorkerProcess } from './testing/worker-process.js';

/**
 * Tenants sharing the provider account's limit, through real worker processes, the real
 * telnyx SDK and the simulator. Every assertion is on the order of the sends the simulator
 * received (whose they were, and what came before what), never on wall-clock bounds.
 */
let db: TestDatabase;
let sim: Simulator;
let boss: PgBoss;
let workers: Supervised[] = [];
const ACCOUNT = 200;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  sim = await startSimulator({ port: 0, fcmPort: 0, receipts: 'none', keepMessages: true });
  boss = await startBoss(db.url, { supervise: false });
});
afterEach(async () => {
  await Promise.all(workers.map(async (w) => { w.child.kill('SIGTERM'); await w.exited; }));
  workers = [];
  // What a scenario left unsent is not the next one's business.
  await db.pool.query(`UPDATE deliveries SET status = 'cancelled' WHERE status IN ('queued', 'retry', 'sending')`);
  await db.pool.query(`DELETE FROM pgboss.job WHERE name = 'herald-deliver'`);
  sim.reset();
});
afterAll(async () => {
  await boss?.stop({ graceful: false });
  await sim?.close();
  await db?.drop();
});

let offset = 0;
/** A tenant with `contacts` contacts (distinct phones across the file), on `plan`. */
async function tenant(id: string, contacts: number, o: { plan?: string; smsPerSecond?: number } = {}): Promise<Set<string>> {
  await seedTenant(db.pool, id, { ...(o.smsPerSecond ? { smsPerSecond: o.smsPerSecond } : {}) });
  if (o.plan) await db.pool.query('UPDATE tenants SET plan = $2 WHERE id = $1', [id, o.plan]);
  await seedContacts(db.pool, id, contacts, { offset });
  offset += contacts;
  const { rows } = await db.pool.query<{ phone: string }>('SELECT phone FROM contacts WHERE tenant_id = $1', [id]);
  return new Set(rows.map((r) => r.phone));
}
async function send(tenantId: string, priority: 'normal' | 'urgent' = 'normal') {
  const b = await seedBroadcast(db.pool, { tenantId, priority });
  await planOccurrence(db.pool, boss, { broadcastId: b.id, key: 'once', scheduledAt: new Date() }, new Date());
  return b;
}
async function startWorkers(n: number, env: Record<string, string> = {}) {
  for (let i = 0; i < n; i++) {
    workers.push(await startWorkerProcess({
      DATABASE_URL: db.url, HERALD_SIMULATOR_URL: sim.url, HERALD_WORKER_LEASE_SECONDS: '5', HERALD_WORKER_CONCURRENCY: '40',
      HERALD_ACCOUNT_SMS_PER_SECOND: String(ACCOUNT), ...env,
    }));
  }
}
/** The simulator's accepted SMS in the order it received them: whose each was. */
function sends(owners: Record<string, Set<string>>): string[] {
  const msgs = sim.received({ messages: true }).sms.messages ?? [];
  return msgs.map((m) => Object.entries(owners).find(([, phones]) => phones.has(m.to))?.[0] ?? '?');
}
const count = (seq: string[], who: string) => seq.filter((x) => x === who).length;
const sentOf = (tenantId: string) => async () =>
  (await db.pool.query<{ n: number }>(`SELECT count(*)::int n FROM deliveries WHERE tenant_id = $1 AND status = 'sent'`, [tenantId])).rows[0]!.n;

describe('tenants sharing the account limit', () => {
  it("a small tenant's broadcast completes while a big one keeps sending, and the big one uses the limit (one worker)", async () => {
    const owners = { big: await tenant('big', 4000), small: await tenant('small', 36) };
    await startWorkers(1);
    await send('big');
    // The big broadcast fills every slot and the account's bucket first.
    await waitFor('the big tenant sending', async () => (await sentOf('big')()) >= 300, { timeoutMs: 60_000, everyMs: 20 });
    await send('small');
    await waitFor('the small broadcast complete', async () => (await sentOf('small')()) === 36, { timeoutMs: 120_000, everyMs: 50 });
    const seq = sends(owners);
    const firstSmall = seq.indexOf('small');
    const lastSmall = seq.lastIndexOf('small');
    // While the small tenant wanted the account it got about half of it: the big one sent
    // at most a few chunks more than the small one's 36 between its first and last send (275 on main).
    expect(count(seq.slice(firstSmall, lastSmall + 1), 'big')).toBeLessThanOrEqual(36 * 4);
    // Work-conserving: the big tenant goes on alone afterwards.
    await waitFor('the big tenant going on', async () => (await sentOf('big')()) >= count(seq, 'big') + 100, { timeoutMs: 60_000, everyMs: 50 });
  }, 240_000);

  it('holds across two worker processes; a weighted (pro) tenant gets its weight against a free one', async () => {
    const owners = { free: await tenant('free-1', 3000), pro: await tenant('pro-1', 3000, { plan: 'pro' }) };
    await startWorkers(2, { HERALD_WORKER_JOBS: '8' });
    await send('free-1');
    await send('pro-1');
    await waitFor('both sending a while', async () => (await sentOf('pro-1')()) >= 1500, { timeoutMs: 120_000, everyMs: 50 });
    const seq = sends(owners);
    // A window in which both wanted the account: from the 200th send to the last one seen.
    const window = seq.slice(200);
    const pro = count(window, 'pro');
    const free = count(window, 'free');
    // Weights 10 : 1 (tenant_plans): the pro tenant's share is 10/11 of the account (0.54 on
    // main; about 0.8 on a machine loaded to 15 times its cores, where a party's slow cycle
    // lets the other run alone for a moment).
    expect(pro / (pro + free)).toBeGreaterThan(0.7);
    expect(free).toBeGreaterThan(0); // the free tenant is not starved
  }, 240_000);

  it("urgent goes first, and one tenant's urgent broadcast does not starve another's", async () => {
    const owners = { big: await tenant('big-2', 4000), alarm: await tenant('alarm-1', 1000), alert: await tenant('alert-1', 36) };
    await startWorkers(1);
    await send('big-2');
    await waitFor('the big tenant sending', async () => (await sentOf('big-2')()) >= 300, { timeoutMs: 60_000, everyMs: 20 });
    await send('alarm-1', 'urgent');
    await waitFor('the urgent alarm sending', async () => (await sentOf('alarm-1')()) >= 100, { timeoutMs: 60_000, everyMs: 20 });
    await send('alert-1', 'urgent');
    await waitFor('the second urgent alert complete', async () => (await sentOf('alert-1')()) === 36, { timeoutMs: 120_000, everyMs: 50 });
    await waitFor('the urgent alarm complete', async () => (await sentOf('alarm-1')()) === 1000, { timeoutMs: 120_000, everyMs: 50 });
    const seq = sends(owners);
    const alarms = seq.flatMap((x, i) => (x === 'alarm' ? [i] : []));
    const firstAlert = seq.indexOf('alert');
    const lastAlert = seq.lastIndexOf('alert');
    // While urgent work wants the account, normal work sends only what it had claimed before
    // (at most the bucket's one second, 200): not its share of the account.
    expect(count(seq.slice(alarms[0], alarms[499]), 'big')).toBeLessThanOrEqual(ACCOUNT);
    // The second urgent tenant shares the account with the first instead of waiting for its 1,000.
    expect(count(seq.slice(firstAlert, lastAlert + 1), 'alarm')).toBeLessThanOrEqual(36 * 3);
  }, 240_000);

  it('a batch handed back for capacity 20 times and more completes, spending no pg-boss retry', async () => {
    // 1/s: the tenant's bucket holds one token and every claim is one row. A grant needs a
    // positive balance and may leave a debt, so a job gets at most two claims (the second on
    // the refill since the first) before it is refused and hands the rest back, however late
    // it comes back: 41 rows make 20 hand-backs at least.
    await tenant('slow-1', 41, { smsPerSecond: 1 });
    await startWorkers(1);
    const b = await send('slow-1');
    await waitFor('the slow broadcast complete', async () => (await sentOf('slow-1')()) === 41, { timeoutMs: 120_000, everyMs: 100 });
    const jobs = (await db.pool.query<{ handed_back: number; max_retry: number; not_done: number }>(
      `SELECT count(*) FILTER (WHERE data ? 'deliveryIds')::int handed_back, coalesce(max(retry_count), 0)::int max_retry,
              count(*) FILTER (WHERE state <> 'completed')::int not_done
         FROM pgboss.job WHERE name = 'herald-deliver' AND data->>'tenantId' = 'slow-1'`)).rows[0]!;
    expect(jobs.handed_back).toBeGreaterThanOrEqual(20);
    expect(jobs.max_retry).toBe(0);
    expect(jobs.not_done).toBe(0);
    expect((await db.pool.query(`SELECT count(*)::int n FROM deliveries WHERE broadcast_id = $1 AND possible_duplicate`, [b.id])).rows[0].n).toBe(0);
    expect(sim.received({ recipients: true }).sms.duplicates.count).toBe(0);
  }, 180_000);
});
