/**
 * npm run bench:rollout — the release gate and a rollback, timed from what happened, on a
 * fresh local platform running Releases through the worker stand-in
 * (devenv/release-platform.ts; embedded PostgreSQL, real kube-apiserver, the operator's
 * Release controller, k6). Two releases through `npm run release -- --target local`, each
 * while a real tenant's broadcast sends:
 *   good  v2 on green: preview, k6 smoke + capacity, setWeight 25, analysis, 100;
 *   bad   v3 on blue: a revoked Telnyx key (the synthetic tenant on the simulator, as in
 *         production, so k6 passes), rolled back by the analysis of its first canary step.
 * Prints one JSON line. Times are the database's clock (lane weights watched every 25 ms,
 * the attempts' own times) except the gate and the release wall times, which are this
 * process's clock around the release script's lines:
 *   gate_ms                      preview ready → promoted past the preview (k6 smoke + capacity)
 *   release_to_healthy_ms        the version written → Healthy (the script's exit)
 *   promote_to_first_canary_send_ms  the canary's first weight > 0 → its first real-tenant attempt
 *   failed_analysis_to_weight_0_ms   the failing evaluation (its window's end, status.analysis) → canary at weight 0
 *   canary_weight_to_abort_ms    the bad canary's first weight > 0 → weight 0 (the rollback, end to end)
 *   abort_to_last_canary_send_ms weight 0 → the bad version's last attempt that started (negative:
 *                                it started before weight 0 was seen; the watcher samples every 25 ms)
 *   lost, duplicates             of the real broadcasts (rows not sent; rows accepted twice)
 * One run of each, not the issue's three alternating runs at a measured account limit.
 *   BENCH_REAL_RECIPIENTS=600 (the real tenant sends at 20/s)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startReleasePlatform, SYNTHETIC_TENANT, type ReleasePlatform } from '../devenv/release-platform.js';
import { seedTenant } from '../core/delivery/testing/fixtures.js';

const RECIPIENTS = Number(process.env.BENCH_REAL_RECIPIENTS ?? 600);
const K6 = { HERALD_SMOKE_COMPLETE_WITHIN_S: '45', HERALD_CAPACITY_STEPS: '1', HERALD_CAPACITY_STEP_SECONDS: '5', HERALD_CAPACITY_RECIPIENTS: '10', HERALD_CAPACITY_COMPLETE_WITHIN_S: '60' };

interface Change { color: string; weight: number; at: number }

/** Each lane weight change on the database's clock, until stopped. */
function watchLanes(rp: ReleasePlatform): { changes: Change[]; stop: () => Promise<void> } {
  const changes: Change[] = [];
  const last = new Map<string, number>();
  const run = { on: true };
  const done = (async () => {
    while (run.on) {
      const { rows } = await rp.pool.query<{ color: string; weight: number; at: Date }>('SELECT color, weight, now() AS at FROM lanes');
      for (const r of rows) {
        if (last.get(r.color) !== r.weight) changes.push({ color: r.color, weight: r.weight, at: r.at.getTime() });
        last.set(r.color, r.weight);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return { changes, stop: async () => { run.on = false; await done; } };
}

async function release(rp: ReleasePlatform, version: string) {
  const lines: { at: number; line: string }[] = [];
  let real: Promise<string> | undefined;
  const started = Date.now();
  const r = await rp.runRelease(version, {
    env: K6,
    onLine: (line) => {
      lines.push({ at: Date.now(), line });
      if (!real && /promoted past the preview/.test(line)) real = rp.sendAs('grace', RECIPIENTS);
    },
  });
  const at = (re: RegExp) => lines.find((l) => re.test(l.line))?.at;
  const ready = at(/Paused step 0 preview .* ready 1\/1/);
  const promoted = at(/promoted past the preview/);
  return { code: r.code, started, ended: Date.now(), gateMs: ready && promoted ? promoted - ready : undefined, real: await real };
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-bench-rollout-'));
const rp = await startReleasePlatform({
  dataDir, initialVersion: 'v1',
  workerEnv: { HERALD_WORKER_LEASE_SECONDS: '5', HERALD_ACCOUNT_SMS_PER_SECOND: '100000', HERALD_WORKER_CHUNK: '5', HERALD_SIMULATED_TENANTS: SYNTHETIC_TENANT },
  release: {
    replicas: 1, maxReplicas: 1, scaleDownDelay: '2s', progressDeadline: '2m',
    analysis: { window: '20s', interval: '1s', minSample: 20, sampleTimeout: '90s', threshold: 1 },
    strategy: { canary: { steps: [{ preview: { tenants: [SYNTHETIC_TENANT] } }, { setWeight: 25 }, { analysis: {} }, { setWeight: 100 }] } },
  },
});
try {
  await seedTenant(rp.pool, 'grace', { smsPerSecond: 20 });
  const lanes = watchLanes(rp);
  const good = await release(rp, 'v2');
  await rp.setColorEnv('blue', { TELNYX_API_KEY: 'a-revoked-key', HERALD_SIMULATED_TENANTS: SYNTHETIC_TENANT });
  const bad = await release(rp, 'v3');
  const status = (await rp.release()).status;
  const reals = [good.real, bad.real].filter((x): x is string => x !== undefined);
  for (const id of reals) await rp.settled(id);
  await lanes.stop();

  const first = (color: string, ok: (w: number) => boolean, after = 0) => lanes.changes.find((c) => c.color === color && ok(c.weight) && c.at > after)?.at;
  // v2's canary on green; green stable; then v3's canary on blue, and its abort.
  const greenUp = first('green', (w) => w > 0);
  const greenStable = first('green', (w) => w === 100, greenUp);
  const blueUp = first('blue', (w) => w > 0, greenStable ?? Infinity);
  const blueDown = first('blue', (w) => w === 0, blueUp ?? Infinity);
  const q = async (sql: string, args: unknown[]) => (await rp.pool.query<{ t: Date | null }>(sql, args)).rows[0]?.t?.getTime();
  const firstCanary = await q(`SELECT min(started_at) t FROM attempts WHERE version = 'v2' AND tenant_id = 'grace'`, []);
  const lastBad = await q(`SELECT max(started_at) t FROM attempts WHERE version = 'v3'`, []);
  const evaluated = status?.analysis?.windowEnd ? new Date(status.analysis.windowEnd).getTime() : undefined;
  const diff = (a?: number, b?: number) => (a !== undefined && b !== undefined ? b - a : null);
  const counts = (await rp.pool.query<{ lost: number; duplicates: number }>(
    `SELECT (SELECT count(*)::int FROM deliveries WHERE broadcast_id = ANY($1::uuid[]) AND status NOT IN ('sent', 'delivered')) lost,
            (SELECT count(*)::int FROM (SELECT delivery_id FROM attempts WHERE broadcast_id = ANY($1::uuid[]) AND outcome = 'accepted' GROUP BY 1 HAVING count(*) > 1) x) duplicates`,
    [reals])).rows[0]!;
  console.log(JSON.stringify({
    bench: 'rollout',
    good: { exit: good.code, gate_ms: good.gateMs ?? null, release_to_healthy_ms: good.ended - good.started, promote_to_first_canary_send_ms: diff(greenUp, firstCanary) },
    bad: {
      exit: bad.code, phase: status?.phase, gate_ms: bad.gateMs ?? null, abort_reason: status?.abortReason,
      failed_analysis_to_weight_0_ms: diff(evaluated, blueDown), canary_weight_to_abort_ms: diff(blueUp, blueDown),
      abort_to_last_canary_send_ms: diff(blueDown, lastBad), release_wall_ms: bad.ended - bad.started,
    },
    real_recipients: RECIPIENTS * reals.length, lost: counts.lost, duplicates: counts.duplicates,
    valid: good.code === 0 && bad.code === 1 && status?.phase === 'Aborted' && reals.length === 2,
  }));
} finally {
  await rp.stop();
  await rm(dataDir, { recursive: true, force: true });
}
