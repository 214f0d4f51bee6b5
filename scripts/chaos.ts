/**
 * npm run chaos — bounded fault scenarios against a fresh local platform on loopback
 * (devenv/local-platform.ts: embedded PostgreSQL, kube-apiserver, simulator, api, worker,
 * operator, each service restarted with backoff when it exits), one SMS Broadcast each,
 * counted from the simulator's own record against the audience (devenv/chaos.ts).
 * Prints a table, then one JSON line per scenario. Exits 1 unless every row has lost 0
 * and duplicates_uncounted 0 (and its Broadcast completed).
 *
 *   worker-kill            kill -9 of the worker every 10 s while the send lasts (50,000)
 *   postgres-restart       PostgreSQL stopped (fast shutdown) mid-send, started 10 s later (20,000)
 *   provider-503           every provider request answers 503 for 60 s (20,000)
 *   provider-latency-x10   the provider's latency ×10 (20 ms → 200 ms) for 60 s (20,000)
 *   operator-kill          kill -9 of the operator (the leader) three times, each as soon as it is back (20,000)
 *
 *   CHAOS_SCENARIOS=worker-kill,provider-503   a subset
 *   CHAOS_RECIPIENTS=5000                       every scenario's size
 *   CHAOS_FAULT_MS=60000  CHAOS_PG_DOWN_MS=10000  CHAOS_KILL_EVERY_MS=10000
 *
 * Limits raised so the run fits in 20 minutes: the demo tenant's and its number's rates,
 * the worker's account rate (100,000/s) and its lease (10 s instead of 30: a killed
 * worker's rows are handed on sooner), and the restart backoff capped at 2 s: at the
 * default cap (30 s, like a kubelet's CrashLoopBackOff) the one worker killed every 10 s
 * spends most of the run waiting to be restarted; the scenario is about what Herald
 * loses or sends twice, not about the backoff (devenv/processes.test.ts covers that).
 * Ctrl-C stops the platform and prints nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chaosJson, chaosTable, prepareChaos, runScenario, SCENARIOS, type ScenarioName, type ScenarioOptions, type ScenarioResult } from '../devenv/chaos.js';
import { startLocalPlatform } from '../devenv/local-platform.js';

const env = process.env;
const num = (name: string, dflt: number) => (env[name] ? Number(env[name]) : dflt);
const wanted = (env.CHAOS_SCENARIOS ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
for (const w of wanted) if (!SCENARIOS.includes(w as ScenarioName)) throw new Error(`CHAOS_SCENARIOS: "${w}" is not one of ${SCENARIOS.join(', ')}`);
const faultMs = num('CHAOS_FAULT_MS', 60_000);
const plans: Record<ScenarioName, ScenarioOptions> = {
  'worker-kill': { recipients: num('CHAOS_RECIPIENTS', 50_000), faultMs: 0, killEveryMs: num('CHAOS_KILL_EVERY_MS', 10_000), baseLatencyMs: 20 },
  'postgres-restart': { recipients: num('CHAOS_RECIPIENTS', 20_000), faultMs: num('CHAOS_PG_DOWN_MS', 10_000), baseLatencyMs: 20 },
  'provider-503': { recipients: num('CHAOS_RECIPIENTS', 20_000), faultMs, baseLatencyMs: 20 },
  'provider-latency-x10': { recipients: num('CHAOS_RECIPIENTS', 20_000), faultMs, baseLatencyMs: 20 },
  'operator-kill': { recipients: num('CHAOS_RECIPIENTS', 20_000), faultMs: 0, kills: 3, baseLatencyMs: 20 },
};

const say = (line: string) => process.stderr.write(`chaos | ${line}\n`);
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-chaos-'));
say(`starting the local platform in ${dataDir}`);
const platform = await startLocalPlatform({
  dataDir,
  ports: 'free',
  logLevel: 'warn',
  env: { worker: { HERALD_ACCOUNT_SMS_PER_SECOND: '100000', HERALD_WORKER_LEASE_SECONDS: '10' } },
  restart: { maxBackoffMs: 2_000 },
  onLog: (name, line) => {
    if (name === 'platform') say(line);
  },
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping the platform`);
    void platform.stop().finally(() => rm(dataDir, { recursive: true, force: true }).finally(() => process.exit(130)));
  });
}
const results: ScenarioResult[] = [];
const started = Date.now();
try {
  const ctx = await prepareChaos(platform, say);
  for (const s of wanted as ScenarioName[]) {
    say(`${s}: ${plans[s].recipients} recipients`);
    const t0 = Date.now();
    const r = await runScenario(ctx, s, { timeoutMs: 600_000, ...plans[s] });
    results.push(r);
    say(`${s}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s, rows ${JSON.stringify(r.rows)}${r.killed.length ? `, ${r.killed.length} kills` : ''}${r.completed ? '' : ' — NOT COMPLETED'}`);
  }
  await ctx.pool.end();
} finally {
  await platform.stop();
  await rm(dataDir, { recursive: true, force: true });
}
process.stdout.write(chaosTable(results) + '\n\n');
for (const r of results) process.stdout.write(chaosJson(r) + '\n');
say(`whole run ${((Date.now() - started) / 1000).toFixed(0)} s`);
const bad = results.filter((r) => r.lost > 0 || r.duplicates_uncounted > 0 || !r.completed);
if (bad.length > 0) {
  say(`targets missed (lost 0, uncounted duplicates 0, completed): ${bad.map((r) => r.scenario).join(', ')}`);
  process.exit(1);
}
