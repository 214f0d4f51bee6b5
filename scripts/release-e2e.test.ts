/**
 * `npm run release -- --target local` end to end, as CI runs it (plain lines), against the
 * real Release controller in the local platform's operator process, the worker stand-in's
 * processes (devenv/release-platform.ts), real k6 smoke and capacity against the preview,
 * and a real tenant's broadcast sending meanwhile. What differs between the versions is
 * their color's configuration only:
 *   v2  good;
 *   v3  a revoked Telnyx key for every tenant, the synthetic one too: the k6 gate fails;
 *   v4  a revoked key, the synthetic tenant on the simulator as production has it: k6
 *       passes, and the analysis of the first canary step rolls it back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { seedTenant } from '../core/delivery/testing/fixtures.js';
import { startReleasePlatform, SYNTHETIC_TENANT, type ReleasePlatform } from '../devenv/release-platform.js';
import { createTestDatabase, type TestDatabase } from '../devenv/test-database.js';

let db: TestDatabase;
let dataDir: string;
let rp: ReleasePlatform;
const SIMULATED = { HERALD_SIMULATED_TENANTS: SYNTHETIC_TENANT };
const REVOKED = { TELNYX_API_KEY: 'a-revoked-key' };
// k6 sized for a test: the smoke's 4 iterations, one short capacity step.
const K6 = { HERALD_SMOKE_COMPLETE_WITHIN_S: '45', HERALD_CAPACITY_STEPS: '1', HERALD_CAPACITY_STEP_SECONDS: '5', HERALD_CAPACITY_RECIPIENTS: '10', HERALD_CAPACITY_COMPLETE_WITHIN_S: '60' };

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-release-e2e-'));
  rp = await startReleasePlatform({
    dataDir, databaseUrl: db.url, initialVersion: 'v1',
    workerEnv: { HERALD_WORKER_LEASE_SECONDS: '5', HERALD_ACCOUNT_SMS_PER_SECOND: '100000', HERALD_WORKER_CHUNK: '5' },
    colorEnv: SIMULATED,
    release: {
      replicas: 1, maxReplicas: 1, scaleDownDelay: '2s', progressDeadline: '2m',
      analysis: { window: '20s', interval: '1s', minSample: 20, sampleTimeout: '90s', threshold: 1, successfulEvaluations: 1, maxProviderFailurePercent: 5 },
      strategy: { canary: { steps: [{ preview: { tenants: [SYNTHETIC_TENANT] } }, { setWeight: 25 }, { analysis: {} }, { setWeight: 100 }] } },
    },
  });
  // The real tenant sends at 20/s, so a broadcast spans the canary steps.
  await seedTenant(db.pool, 'grace', { smsPerSecond: 20 });
}, 300_000);

afterAll(async () => {
  await rp?.stop();
  await db?.drop();
  if (dataDir && !process.env.HERALD_KEEP_E2E_DIR) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

const realBroadcast = (count: number) => rp.sendAs('grace', count);
/** Rows by final state, sent and delivered (a receipt came back) counted together. */
const settled = async (broadcastId: string) => {
  const c = await rp.settled(broadcastId);
  return { ...Object.fromEntries(Object.entries(c).filter(([k]) => k !== 'sent' && k !== 'delivered')), sent: (c.sent ?? 0) + (c.delivered ?? 0) };
};
const byLane = async (broadcastId: string) =>
  Object.fromEntries((await db.pool.query<{ lane: string; n: number }>(`SELECT lane, count(*)::int n FROM deliveries WHERE broadcast_id = $1 AND status IN ('sent', 'delivered') GROUP BY lane`, [broadcastId])).rows.map((r) => [r.lane, r.n]));
/** Rows the provider accepted more than once (a send twice). */
const sentTwice = async (broadcastId: string) =>
  (await db.pool.query<{ n: number }>(
    `SELECT count(*)::int n FROM (SELECT delivery_id FROM attempts WHERE broadcast_id = $1 AND outcome = 'accepted' GROUP BY 1 HAVING count(*) > 1) x`, [broadcastId])).rows[0]!.n;
const attemptsOf = async (version: string) =>
  Object.fromEntries((await db.pool.query<{ tenant: string; n: number }>(
    `SELECT tenant_id AS tenant, count(*)::int n FROM attempts WHERE version = $1 GROUP BY 1`, [version])).rows.map((r) => [r.tenant, r.n]));

describe('npm run release -- --target local', { timeout: 900_000 }, () => {
  it('a good version: previewed, passes k6, through every canary step to stable; exit 0 and the table', async () => {
    let real: Promise<string> | undefined;
    const r = await rp.runRelease('v2', {
      env: K6,
      // The real tenant's broadcast starts once the preview is promoted, so the canary steps judge it.
      onLine: (line) => { if (!real && /promoted past the preview/.test(line)) real = realBroadcast(600); },
    });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/k6 smoke: exit 0/);
    expect(r.stdout).toMatch(/k6 capacity: exit 0/);
    expect(r.stdout).toMatch(/release v2: Healthy \(stable\)/);
    expect(r.stdout).toMatch(/^step\s+weight\s+lane\s+version\s+attempts\s+provider failed %\s+call p95 ms\s+verdict$/m);
    // The last row is the promotion, judged on green's attempts with both lanes' figures.
    expect(r.stdout).toMatch(/^4 promoted\s+blue 0, green 100\s+green\s+v2\s+\d+\s+0\.0\s+\d+\s+Passed$/m);
    expect((await rp.release()).status).toMatchObject({ phase: 'Healthy', stableVersion: 'v2', stableColor: 'green' });
    expect(real).toBeDefined();
    const id = await real!;
    expect(await settled(id)).toEqual({ sent: 600 });
    expect(await sentTwice(id)).toBe(0);
    // The analysis judged the canary step on the real tenant's work, split between the lanes
    // (judged on the preview's synthetic sends instead, v2 was stable before this broadcast began).
    const lanes = await byLane(id);
    expect(lanes.blue).toBeGreaterThan(0);
    expect(lanes.green).toBeGreaterThan(0);
    // Before its promote past the preview, v2 sent for the synthetic tenant alone.
    const first = (await db.pool.query<{ t: Date }>(`SELECT min(started_at) t FROM attempts WHERE version = 'v2' AND tenant_id = 'grace'`)).rows[0]!.t;
    const synthetic = (await db.pool.query<{ t: Date }>(`SELECT min(started_at) t FROM attempts WHERE version = 'v2' AND tenant_id = $1`, [SYNTHETIC_TENANT])).rows[0]!.t;
    expect(synthetic.getTime()).toBeLessThan(first.getTime());
  });

  it('a version that fails the k6 gate is aborted before any real tenant message reaches it; exit 1', async () => {
    // Idle now: blue. A revoked key for everyone, the synthetic tenant included.
    await rp.setColorEnv('blue', REVOKED);
    const real = await realBroadcast(600);
    const r = await rp.runRelease('v3', { env: { ...K6, HERALD_SMOKE_COMPLETE_WITHIN_S: '20' } });
    const seen = (await db.pool.query(`SELECT tenant_id, lane, outcome, code, count(*)::int n FROM attempts WHERE version = 'v3' GROUP BY 1, 2, 3, 4`)).rows;
    expect(r.code, `${r.stdout}\nattempts of v3: ${JSON.stringify(seen)}`).toBe(1);
    expect(r.stdout).toMatch(/release v3: aborted: k6 smoke failed a threshold \(exit 99\); gate \d+ s/);
    expect((await rp.release()).status).toMatchObject({ phase: 'Aborted', canaryVersion: 'v3', stableVersion: 'v2', weights: { blue: 0, green: 100 } });
    expect(await settled(real)).toEqual({ sent: 600 });
    const v3 = await attemptsOf('v3');
    expect(v3[SYNTHETIC_TENANT]).toBeGreaterThan(0);
    expect(v3.grace).toBeUndefined();
  });

  it('a version that passes k6 but fails its first canary analysis is rolled back, nothing lost or sent twice; exit 1', async () => {
    // The synthetic tenant goes to the simulator whatever the key (as in production): k6 cannot see the revoked key.
    await rp.setColorEnv('blue', { ...REVOKED, ...SIMULATED });
    let real: Promise<string> | undefined;
    const r = await rp.runRelease('v4', {
      env: K6,
      onLine: (line) => { if (!real && /promoted past the preview/.test(line)) real = realBroadcast(600); },
    });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toMatch(/k6 capacity: exit 0/);
    expect(r.stdout).toMatch(/release v4: Aborted \(analysis at step 2 failed 1 time\(s\): providerFailurePercent 100 > 5\)/);
    // The step's row keeps the weight it ran at; the verdict is the failing one.
    expect(r.stdout).toMatch(/^2 analysis\s+blue 25, green 75\s+blue\s+v4\s+\d+\s+100\.0\s+\d+\s+Failed$/m);
    expect((await rp.release()).status).toMatchObject({ phase: 'Aborted', canaryVersion: 'v4', stableVersion: 'v2', weights: { blue: 0, green: 100 } });
    const id = await real!;
    expect(await settled(id)).toEqual({ sent: 600 });
    expect(await sentTwice(id)).toBe(0);
    expect((await attemptsOf('v4')).grace).toBeGreaterThan(0);
  });
});
