import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dump } from 'js-yaml';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../devenv/test-database.js';
import { REPO } from '../devenv/processes.js';
import { colorManifests, WorkerStandIn } from '../devenv/worker-standin.js';
import { startBoss } from '../lib/queue.js';
import { metrics } from '../lib/metrics.js';
import { planOccurrence } from '../core/delivery/plan.js';
import { readLanes } from '../core/delivery/lanes.js';
import { seedBroadcast, seedContacts, seedTenant } from '../core/delivery/testing/fixtures.js';
import { startSimulator, type Simulator } from '../services/simulator/simulator.js';
import type { Release } from './api/v1alpha1/release.js';
import { startOperator, type RunningOperator } from './operator.js';
import { auditLogMark, compareRbac, usedBy } from './testing/rbac-audit.js';
import { OPERATOR_SA, startKube, testLog, waitFor, type Kube } from './testing/harness.js';

/**
 * Releases end to end on the local platform's stand-in: a real kube-apiserver holding the
 * Release, both color Deployments and their ScaledObjects; the operator (its own
 * ServiceAccount) moving lane weights; worker processes that devenv/worker-standin.ts
 * runs from those objects, sending through the real telnyx SDK to the simulator.
 */
let kube: Kube;
let db: TestDatabase;
let sim: Simulator;
let boss: PgBoss;
let operator: RunningOperator | undefined;
let standIn: WorkerStandIn;
let auditFrom = 0;
const NS = 'herald-system';
const GOOD_KEY = 'key-of-the-account';

const colorObjects = (color: string, min: number, env: Record<string, string> = {}) => colorManifests(color, min, { TELNYX_API_KEY: GOOD_KEY, ...env }, NS);
const apply = async (objects: object[]) => {
  const r = await kube.kubectl(['apply', '-f', '-'], objects.map((o) => dump(o)).join('---\n'));
  expect(r.stderr).toBe('');
};
const release = (version: string, strategy: object, extra: object = {}) => ({
  apiVersion: 'herald.dev/v1alpha1', kind: 'Release', metadata: { name: 'workers', namespace: NS },
  spec: { version, image: `herald/worker:${version}`, replicas: 1, scaleDownDelay: '2s', analysis: { window: '20s', interval: '1s', minSample: 20, sampleTimeout: '60s' }, strategy, ...extra },
});
const get = async () => JSON.parse((await kube.kubectl(['get', 'release', 'workers', '-n', NS, '-o', 'json'])).stdout) as Release;
const until = (what: string, ok: (r: Release) => boolean, timeoutMs = 120_000) =>
  waitFor(what, async () => {
    const r = await get();
    return ok(r) ? r : undefined;
  }, { timeoutMs, everyMs: 200 });
const merge = (patch: object) => kube.kubectl(['patch', 'release/workers', '-n', NS, '--type', 'merge', '-p', JSON.stringify(patch)]);
const promote = () => kube.kubectl(['annotate', 'release/workers', '-n', NS, `herald.dev/promote=${Date.now()}`, '--overwrite']);
/** herald_release_phase of the workers' Release (what HeraldReleaseAborted reads), phase → value. */
const phaseGauge = async () =>
  Object.fromEntries((await metrics.releasePhase.get()).values.filter((v) => v.labels.release === 'workers').map((v) => [String(v.labels.phase), v.value]));
const weights = async () => Object.fromEntries((await readLanes(db.pool)).map((l) => [l.color, l.weight]));

async function startTheOperator() {
  operator = await startOperator({
    kubeconfig: kube.operatorKubeconfig, pool: db.pool, boss, log: testLog('operator'), namespace: 'default',
    leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300,
    releases: { intervalMs: 300, leaseSeconds: 5 },
  });
  await waitFor('leadership', async () => operator!.isLeader());
}

async function send(tenant: string, count: number, offset: number) {
  await seedContacts(db.pool, tenant, count, { tags: [`b${offset}`], offset });
  const b = await seedBroadcast(db.pool, { tenantId: tenant, audience: { segment: { tags: [`b${offset}`] } } });
  await planOccurrence(db.pool, boss, { broadcastId: b.id, key: 'once', scheduledAt: new Date() }, new Date());
  return b.id;
}
const byLane = async (broadcastId: string) =>
  Object.fromEntries((await db.pool.query<{ lane: string; n: number }>(`SELECT lane, count(*)::int n FROM deliveries WHERE broadcast_id = $1 AND status = 'sent' GROUP BY lane`, [broadcastId])).rows.map((r) => [r.lane, r.n]));
const settled = (broadcastId: string, timeoutMs = 120_000) =>
  waitFor(`broadcast ${broadcastId} settled`, async () => {
    const { rows } = await db.pool.query<{ status: string; n: number }>('SELECT status, count(*)::int n FROM deliveries WHERE broadcast_id = $1 GROUP BY 1', [broadcastId]);
    const c = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    return !c.queued && !c.sending && !c.retry ? c : undefined;
  }, { timeoutMs, everyMs: 250 });

beforeAll(async () => {
  kube = await startKube();
  auditFrom = auditLogMark(kube.cp.auditLogPath);
  expect((await kube.kubectl(['apply', '-f', path.join(REPO, 'devenv/standin/scaledobjects.keda.sh.yaml')])).code).toBe(0);
  await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/scaledobjects.keda.sh']);
  db = await createTestDatabase(inject('databaseUrl'));
  sim = await startSimulator({ port: 0, fcmPort: 0, receipts: 'none', telnyxApiKeys: [GOOD_KEY] });
  boss = await startBoss(db.url, { supervise: false });
  // Each tenant sends at 40/s, so a broadcast lasts long enough to see every step.
  for (const t of ['grace', 'north', 'loadtest']) await seedTenant(db.pool, t, { smsPerSecond: 40 });
  await apply([...colorObjects('blue', 1), ...colorObjects('green', 0)]);
  standIn = new WorkerStandIn({
    kube: kube.admin, log: testLog('stand-in'), intervalMs: 300,
    baseEnv: {
      DATABASE_URL: db.url, HERALD_SIMULATOR_URL: sim.url, TELNYX_BASE_URL: sim.telnyxBaseURL, HERALD_WORKER_LEASE_SECONDS: '5',
      HERALD_WORKER_CHUNK: '2', HERALD_WORKER_JOBS: '8', HERALD_ACCOUNT_SMS_PER_SECOND: '100000', LOG_LEVEL: 'warn',
    },
  });
  standIn.start();
  await startTheOperator();
}, 240_000);
afterAll(async () => {
  await operator?.stop();
  await standIn?.stop();
  await boss?.stop({ graceful: false });
  await sim?.close();
  await db?.drop();
  await kube?.stop();
});

describe('a Release', { timeout: 300_000 }, () => {
  it('adopts the running version on blue first', async () => {
    await apply([release('v1', { canary: { steps: [{ setWeight: 100 }] } })]);
    const r = await until('v1 adopted', (x) => x.status?.phase === 'Healthy');
    expect(r.status).toMatchObject({ stableVersion: 'v1', stableColor: 'blue', weights: { blue: 100, green: 0 }, observedGeneration: r.metadata.generation });
    await waitFor('a ready blue worker', async () => (await db.pool.query(`SELECT 1 FROM workers WHERE lane = 'blue' AND version = 'v1' AND ready AND stopped_at IS NULL`)).rowCount! > 0, { timeoutMs: 60_000 });
  });

  it('promotes a good green through every step while a broadcast sends, each step at its weight', async () => {
    const broadcast = await send('grace', 2400, 0);
    await apply([release('v2', { canary: { steps: [{ setWeight: 25 }, { pause: { duration: '10s' } }, { analysis: {} }, { setWeight: 50 }, { pause: { duration: '10s' } }, { analysis: {} }] } })]);
    // Record each weight's span on the database's clock, as the lanes table has it.
    const seen: { weight: number; at: Date }[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const { rows } = await db.pool.query<{ at: Date; weight: number }>(`SELECT now() AS at, weight FROM lanes WHERE color = 'green'`);
        if (seen.at(-1)?.weight !== rows[0]!.weight) seen.push(rows[0]!);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const final = await until('v2 promoted', (r) => r.status?.phase === 'Healthy' && r.status.stableVersion === 'v2', 180_000);
    watching = false;
    await watcher;
    expect(final.status).toMatchObject({ stableColor: 'green', canaryVersion: 'v2', weights: { green: 100, blue: 0 }, analysis: { verdict: 'Passed' } });
    expect(seen.map((s) => s.weight)).toEqual([0, 25, 50, 100]);
    // Shares per step: rows claimed while the step's weight held (its first and last half second left out).
    for (const [i, s] of seen.entries()) {
      const end = seen[i + 1]?.at;
      if (s.weight === 0 || s.weight === 100 || !end) continue;
      const { rows } = await db.pool.query<{ green: number; total: number }>(
        `SELECT count(*) FILTER (WHERE lane = 'green')::int green, count(*)::int total FROM deliveries
          WHERE broadcast_id = $1 AND claimed_at > $2::timestamptz + interval '0.5 s' AND claimed_at < $3::timestamptz - interval '0.5 s'`,
        [broadcast, s.at, end]);
      expect(rows[0]!.total).toBeGreaterThan(50);
      expect(Math.abs((100 * rows[0]!.green) / rows[0]!.total - s.weight), `step at ${s.weight}: ${rows[0]!.green} of ${rows[0]!.total}`).toBeLessThanOrEqual(2);
    }
    expect(await settled(broadcast)).toEqual({ sent: 2400 });
    expect(sim.received({ recipients: true }).sms.duplicates.count).toBe(0);
    // Blue keeps no work, and scales to 0 after scaleDownDelay.
    await waitFor('blue scaled to 0', async () => (await standIn.wanted()).find((w) => w.color === 'blue')?.replicas === 0, { timeoutMs: 30_000 });
  });

  it('aborts a broken blue (wrong provider credentials) at its first analysis; the broadcast completes on green, none lost or sent twice', async () => {
    sim.reset();
    await apply([colorObjects('blue', 0, { TELNYX_API_KEY: 'a-revoked-key' })[0]!]);
    const broadcast = await send('north', 1200, 10_000);
    await apply([release('v3', { canary: { steps: [{ setWeight: 20 }, { analysis: {} }, { setWeight: 100 }] } })]);
    const r = await until('v3 aborted', (x) => x.status?.phase === 'Aborted', 180_000);
    expect(r.status).toMatchObject({ canaryVersion: 'v3', canaryColor: 'blue', stableVersion: 'v2', currentStep: 1, weights: { blue: 0, green: 100 } });
    expect(r.status?.abortReason).toMatch(/analysis at step 1 failed 1 time\(s\): providerFailurePercent 100 > 5/);
    expect(await phaseGauge()).toEqual({ Progressing: 0, Paused: 0, Healthy: 0, Degraded: 0, Aborted: 1 });
    expect(await settled(broadcast)).toEqual({ sent: 1200 });
    expect(await byLane(broadcast)).toEqual({ green: 1200 });
    expect(sim.received({ recipients: true }).sms.duplicates.count).toBe(0);
    const attempts = (await db.pool.query(`SELECT outcome, code, count(*)::int n FROM attempts WHERE lane = 'blue' AND version = 'v3' GROUP BY 1, 2`)).rows;
    expect(attempts.length).toBeGreaterThan(0);
    expect(attempts.every((a) => a.outcome === 'provider_failure')).toBe(true);
  });

  it('never gives weight to a blue whose workers crash on start; Degraded at its progress deadline', async () => {
    await apply([colorObjects('blue', 0, { HERALD_WORKER_CONCURRENCY: 'many' })[0]!]);
    const since = (await db.pool.query<{ t: Date }>('SELECT now() t')).rows[0]!.t;
    await apply([release('v4', { canary: { steps: [{ setWeight: 50 }] } }, { progressDeadline: '15s' })]);
    await until('waiting for ready', (x) => x.status?.canaryVersion === 'v4' && x.status.message?.includes('0 of 1 blue workers of v4 ready') === true, 60_000);
    const r = await until('v4 degraded', (x) => x.status?.phase === 'Degraded', 60_000);
    expect(r.status?.abortReason).toMatch(/0 of 1 blue workers of v4 ready within 15s; it never got any work/);
    expect(await phaseGauge()).toMatchObject({ Degraded: 1, Aborted: 0 });
    expect(await weights()).toEqual({ blue: 0, green: 100 });
    expect((await db.pool.query(`SELECT count(*)::int n FROM attempts WHERE lane = 'blue' AND finished_at > $1`, [since])).rows[0].n).toBe(0);
    expect(standIn.restarts().blue ?? 0).toBeGreaterThan(0);
  });

  it('blue-green: no real tenant row reaches blue before promotion, every one after; pause, promote, and an operator restart mid-rollout', async () => {
    await apply([colorObjects('blue', 0)[0]!]);
    await apply([release('v5', { blueGreen: { previewTenants: ['loadtest'], prePromotionAnalysis: true, postPromotionAnalysis: false } })]);
    // Sent once blue serves the synthetic tenant (the preview) and is being analysed.
    await until('v5 in preview analysis', (x) => x.status?.canaryVersion === 'v5' && x.status.currentStepName === 'analysis', 120_000);
    const synthetic = await send('loadtest', 200, 20_000);
    const real = await send('grace', 300, 30_000);
    await until('v5 waiting for promote', (x) => x.status?.canaryVersion === 'v5' && x.status.phase === 'Paused' && x.status.currentStepName === 'pause', 120_000);
    expect(await settled(synthetic)).toEqual({ sent: 200 });
    expect(await settled(real)).toEqual({ sent: 300 });
    expect(await byLane(synthetic)).toEqual({ blue: 200 });
    expect(await byLane(real)).toEqual({ green: 300 });

    // Killed mid-rollout, a new operator resumes at the same step.
    const stepBefore = (await get()).status?.currentStep;
    await operator!.stop();
    await startTheOperator();
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await get()).status).toMatchObject({ phase: 'Paused', currentStep: stepBefore });

    // spec.paused holds it even when promoted; un-paused, the promote goes through.
    await merge({ spec: { paused: true } });
    await until('paused by spec', (x) => x.status?.conditions?.find((c) => c.type === 'Paused')?.reason === 'PausedBySpec');
    await merge({ spec: { paused: false } });
    await promote();
    await until('v5 promoted', (x) => x.status?.phase === 'Healthy' && x.status.stableVersion === 'v5');
    const after = await send('north', 200, 40_000);
    expect(await settled(after)).toEqual({ sent: 200 });
    expect(await byLane(after)).toEqual({ blue: 200 });
  });

  it('a manual abort moves the canary to weight 0 at once', async () => {
    await apply([colorObjects('green', 0)[0]!]);
    await apply([release('v6', { canary: { steps: [{ setWeight: 30 }, { pause: {} }] } })]);
    await until('v6 paused at 30', (x) => x.status?.canaryVersion === 'v6' && x.status.phase === 'Paused' && x.status.weights?.green === 30);
    await merge({ spec: { abort: true } });
    const r = await until('v6 aborted', (x) => x.status?.phase === 'Aborted');
    expect(r.status?.abortReason).toMatch(/aborted by spec.abort/);
    expect(await weights()).toEqual({ blue: 100, green: 0 });
  });

  it('the operator used exactly what its Release Role grants: nothing forbidden, no unused grant', () => {
    const { used, forbidden } = usedBy(kube.cp.auditLogPath, `system:serviceaccount:${OPERATOR_SA.namespace}:${OPERATOR_SA.name}`, auditFrom);
    expect(forbidden).toEqual([]);
    const releaseSide = used.filter((a) => ['herald.dev', 'apps', 'keda.sh'].includes(a.apiGroup) && !a.resource.startsWith('broadcasts'));
    expect(compareRbac(releaseSide, { cluster: [], roles: ['release-role.yaml'] })).toEqual({ ungranted: [], unused: [] });
  });
});
