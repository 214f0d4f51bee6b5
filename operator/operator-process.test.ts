import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FileClock } from '../lib/clock.js';
import { broadcastIdFor } from '../core/delivery/ids.js';
import { seedContacts, seedTenant } from '../core/delivery/testing/fixtures.js';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import {
  broadcast, duplicates, handOver, leaseHolder, OPERATOR_SA, operatorPort, phaseIs, recordLease, spawnOperator, startDelivery, startKube, waitFor,
  type Delivery, type Kube, type OperatorProcess,
} from './testing/harness.js';
import { usedBy } from './testing/rbac-audit.js';

/**
 * operator/main.ts as real processes (the operator's ServiceAccount token, a
 * FileClock shared with the worker), killed, paused and resumed like pods. Safety
 * comes from idempotent planning, so every test ends by checking there is no
 * duplicate delivery row, no duplicate job, and that each recipient got one message.
 */
let kube: Kube;
let delivery: Delivery;
let dir: string;
let clockFile: string;
const procs: OperatorProcess[] = [];
let n = 0;

function operator(): OperatorProcess {
  const p = spawnOperator({
    kubeconfig: kube.operatorKubeconfig,
    databaseUrl: delivery.db.url,
    identity: `operator-${++n}`,
    logDir: dir,
    // A lease long enough that a hand-over before it ran out is the release's doing, not expiry.
    env: { HERALD_CLOCK_FILE: clockFile, HERALD_BATCH_SIZE: '10', HERALD_LEASE_DURATION_MS: '6000', HERALD_RENEW_DEADLINE_MS: '4000' },
  });
  procs.push(p);
  return p;
}

const idOf = (bc: Broadcast) => broadcastIdFor(bc.metadata.uid);
const sentSoFar = async (name: string) => (await kube.get(name))?.status?.counts?.sent ?? 0;
async function eachRecipientOnce(bc: Broadcast): Promise<void> {
  const { rows } = await delivery.db.pool.query<{ address: string }>('SELECT address FROM deliveries WHERE broadcast_id = $1', [idOf(bc)]);
  expect(rows.filter((r) => delivery.sim.countFor(r.address) !== 1)).toEqual([]);
  expect(await duplicates(delivery.db, idOf(bc))).toEqual({ rows: 0, jobs: 0 });
}
async function sendingBroadcast(name: string, offset: number): Promise<Broadcast> {
  await seedContacts(delivery.db.pool, 'grace', 150, { tags: [name], offset });
  return kube.create(broadcast(name, { tenant: 'grace', audience: { segment: { tags: [name] } }, delivery: { ratePerSecond: 25 } }));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-operator-procs-'));
  clockFile = path.join(dir, 'clock');
  await writeFile(clockFile, '2027-06-01T12:00:00Z');
  kube = await startKube();
  delivery = await startDelivery(inject('databaseUrl'), new FileClock(clockFile));
  await seedTenant(delivery.db.pool, 'grace');
}, 180_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await delivery?.stop();
  await kube?.stop();
  if (dir && !process.env.HERALD_KEEP_E2E_DIR) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('the operator process', { timeout: 180_000 }, () => {
  it('killed (SIGKILL) mid-send and started again: completes with no duplicate job or delivery', async () => {
    const first = operator();
    await waitFor('operator-1 to lead', async () => (await leaseHolder(kube)) === first.identity);
    const bc = await sendingBroadcast('killed', 10_000);
    await waitFor('some sent', async () => (await sentSoFar('killed')) >= 10);
    first.kill('SIGKILL');
    await first.exited;
    const second = operator();
    const done = await phaseIs(kube, 'killed', 'Completed');
    expect(await leaseHolder(kube)).toBe(second.identity);
    expect(done.status?.counts?.sent).toBe(150);
    await eachRecipientOnce(bc);
  });

  it('serves /healthz, /readyz and /metrics with reconcile counts, durations, work-queue depth and leader state', async () => {
    const leader = procs.at(-1)!;
    const port = await operatorPort(leader);
    const get = async (p: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${p}`);
      return { status: r.status, text: await r.text() };
    };
    expect((await get('/healthz')).status).toBe(200);
    expect(await get('/readyz')).toMatchObject({ status: 200 });
    const m = (await get('/metrics')).text;
    expect(m).toMatch(/herald_operator_reconcile_total\{result="[a-z_]+"\} [1-9]/);
    expect(m).toMatch(/herald_operator_reconcile_duration_seconds_count [1-9]/);
    expect(m).toMatch(/herald_operator_workqueue_depth \d+/);
    expect(m).toMatch(/herald_operator_is_leader 1/);
    expect(m).toMatch(/herald_operator_watch_events_total\{event="listed"\} [1-9]/);
  });

  it('leader paused (SIGSTOP): the standby takes over; resumed (SIGCONT), the ex-leader duplicates nothing', async () => {
    const standby = operator();
    await operatorPort(standby);
    const leader = procs.find((p) => p.identity === procs.at(-2)!.identity)!;
    expect(await leaseHolder(kube)).toBe(leader.identity);
    const midway = await sendingBroadcast('midway', 11_000);
    await waitFor('some sent', async () => (await sentSoFar('midway')) >= 10);
    // Paused right after an apply it may be in the middle of planning.
    const fresh = await sendingBroadcast('fresh', 12_000);
    leader.kill('SIGSTOP');
    await waitFor('the standby to take the Lease', async () => (await leaseHolder(kube)) === standby.identity, { timeoutMs: 30_000 });
    await waitFor('the new leader to report progress', async () => (await sentSoFar('fresh')) >= 10);
    leader.kill('SIGCONT');
    await phaseIs(kube, 'midway', 'Completed');
    await phaseIs(kube, 'fresh', 'Completed');
    expect(await leaseHolder(kube)).toBe(standby.identity);
    await eachRecipientOnce(midway);
    await eachRecipientOnce(fresh);
    expect(await readFile(leader.logPath, 'utf8')).toMatch(/stopped leading/);
  });

  it('leader killed mid-send: the standby finishes the work', async () => {
    const leader = procs.find((p) => p.identity === procs.at(-1)!.identity)!;
    const standby = procs.at(-2)!; // the resumed ex-leader
    expect(await leaseHolder(kube)).toBe(leader.identity);
    const bc = await sendingBroadcast('orphaned', 13_000);
    await waitFor('some sent', async () => (await sentSoFar('orphaned')) >= 10);
    leader.kill('SIGKILL');
    await waitFor('the standby to take over', async () => (await leaseHolder(kube)) === standby.identity, { timeoutMs: 30_000 });
    const done = await phaseIs(kube, 'orphaned', 'Completed');
    expect(done.status?.counts?.sent).toBe(150);
    await eachRecipientOnce(bc);
  });

  it('recurring cron on the FileClock (HERALD_CLOCK_FILE): each tick due by the operator’s clock is sent once', async () => {
    await seedContacts(delivery.db.pool, 'grace', 5, { tags: ['weekly'], offset: 14_000 });
    await writeFile(clockFile, '2027-06-01T13:00:00Z');
    const bc = await kube.create(broadcast('weekly', { tenant: 'grace', audience: { segment: { tags: ['weekly'] } }, schedule: { cron: '0 9 * * *', timeZone: 'America/Chicago' } }));
    await waitFor('next run at 09:00 CDT', async () => (await kube.get('weekly'))?.status?.nextRunAt === '2027-06-01T14:00:00Z');
    await writeFile(clockFile, '2027-06-01T14:00:05Z');
    await waitFor('first tick sent', async () => {
      const s = (await kube.get('weekly'))?.status;
      return s?.counts?.sent === 5 && s.nextRunAt === '2027-06-02T14:00:00Z';
    });
    await writeFile(clockFile, '2027-06-02T14:00:05Z');
    await waitFor('second tick sent', async () => (await kube.get('weekly'))?.status?.counts?.sent === 10);
    const keys = await delivery.db.pool.query<{ key: string }>('SELECT key FROM occurrences WHERE broadcast_id = $1 ORDER BY key', [idOf(bc)]);
    expect(keys.rows.map((r) => r.key)).toEqual(['2027-06-01T14:00:00.000Z', '2027-06-02T14:00:00.000Z']);
    expect(await duplicates(delivery.db, idOf(bc))).toEqual({ rows: 0, jobs: 0 });
    await kube.remove('weekly');
  });

  it('SIGTERM releases the Lease: the standby leads at once; nothing the ServiceAccount asked for was forbidden', async () => {
    const leader = procs.find((p) => p.identity === procs.at(-2)!.identity)!;
    const spare = operator();
    await operatorPort(spare);
    expect(await leaseHolder(kube)).toBe(leader.identity);
    const history = await recordLease(kube);
    leader.kill('SIGTERM');
    expect((await leader.exited).code).toBe(0);
    await waitFor('the spare to lead', async () => (await leaseHolder(kube)) === spare.identity);
    await history.stop();
    // At once: the spare acquired before the leader's last renewal would have run out.
    const h = handOver(history.records, leader.identity, spare.identity);
    expect(h.released).toBe(true);
    expect(h.acquired.getTime()).toBeLessThan(h.deadline.getTime());
    const { forbidden } = usedBy(kube.cp.auditLogPath, `system:serviceaccount:${OPERATOR_SA.namespace}:${OPERATOR_SA.name}`);
    expect(forbidden).toEqual([]);
  });
});
