/**
 * npm run bench:operator — the operator under a burst: 1,000 SMS Broadcasts of 20
 * recipients each created at once through the Kubernetes API of a fresh local platform
 * (devenv/local-platform.ts: real kube-apiserver, operator with its own ServiceAccount,
 * one worker, the provider simulator), timed on the client side. Prints one JSON line.
 *
 *   apply_to_first_send   from the API server's 201 for a Broadcast's create (the object
 *                         exists; what `kubectl apply` reports) to the first of its
 *                         messages reaching the provider simulator (the simulator's
 *                         receive time; same host clock)
 *   request_to_first_send the same from the moment this process issued the create request
 *                         (adds the API server's queueing of the burst itself)
 *   all_complete_seconds  from the first create to every Broadcast observed Completed with
 *                         all 20 sent (LIST every 250 ms)
 *   operator_rss_mb       the operator process's peak RSS (VmHWM)
 * Targets on this machine (2 cores): p99 request-to-first-send under 2 s (the upper bound:
 * apply-to-first-send can only flatter, since a starved bench sees a 201 late; it is floored
 * at 0 and apply_seen_after_first_send counts those), all complete within 60 s.
 *
 * The demo tenant's limits are raised out of the way: tenant sms_per_second, its sending
 * number's per_second, and the worker's HERALD_ACCOUNT_SMS_PER_SECOND.
 *
 *   BENCH_BROADCASTS=1000 BENCH_RECIPIENTS=20 BENCH_CREATE_CONCURRENCY=200
 *   HERALD_OPERATOR_* (e.g. HERALD_OPERATOR_CONCURRENCY) are passed to the operator,
 *   HERALD_WORKER_* (e.g. HERALD_WORKER_JOBS) to the worker.
 *   BENCH_PROFILE=/tmp/prof   each service writes a V8 CPU profile under /tmp/prof/<service>/
 *
 * Also printed, to tell the operator's share from the worker's: apply_to_planned (the
 * occurrence's planned_at in PostgreSQL, same host clock) — the operator has done its
 * part once a Broadcast's rows and jobs exist; the rest is the job waiting for a worker.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { smsNumberOk } from '../services/simulator/behaviours.js';
import { startLocalPlatform, type LocalPlatform } from '../devenv/local-platform.js';
import { raiseDemoLimits } from '../devenv/seed-demo.js';
import { kubeAdmin, processesUnder } from './kube.js';
import { cpuSeconds, peakRssMb, postgresCpuSeconds } from './processes.js';

const BROADCASTS = Number(process.env.BENCH_BROADCASTS ?? 1000);
const RECIPIENTS = Number(process.env.BENCH_RECIPIENTS ?? 20);
const CREATE_CONCURRENCY = Number(process.env.BENCH_CREATE_CONCURRENCY ?? 200);
const TENANT = 'grace-church';
const NS = TENANT; // npm start's namespace of the demo church, bound to it
const RAISED = 100_000;
const FIRST_NUMBER = 100_000; // recipients smsNumberOk(FIRST_NUMBER + i*RECIPIENTS + j): distinct per Broadcast

let stopWatching = false;

function profiled(env: Record<string, Record<string, string>>): Record<string, Record<string, string>> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return env;
  return Object.fromEntries(Object.entries(env).map(([n, e]) => [n, { ...e, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}/${n}` }]));
}
const operatorEnv: Record<string, string> = {};
const workerEnv: Record<string, string> = { HERALD_ACCOUNT_SMS_PER_SECOND: String(RAISED) };
for (const [k, v] of Object.entries(process.env)) {
  if (k.startsWith('HERALD_OPERATOR_') || ['HERALD_STATUS_REFRESH_MS', 'HERALD_PROGRESS_POLL_MS', 'HERALD_MAX_YIELD_MS', 'HERALD_BATCH_SIZE'].includes(k)) operatorEnv[k] = v!;
  if (k.startsWith('HERALD_WORKER_')) workerEnv[k] = v!;
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-bench-operator-'));
const platform = await startLocalPlatform({
  dataDir,
  ports: 'free',
  logLevel: 'warn',
  onLog: (name, line) => {
    if (name !== 'platform' && /"level":(50|60)/.test(line)) process.stderr.write(`${name}: ${line}\n`);
  },
  env: profiled({ worker: workerEnv, operator: operatorEnv, api: {}, simulator: {} }),
});

try {
  // The bench texts inline simulator numbers: raiseDemoLimits also gives the tenant consent for them.
  await raiseDemoLimits(platform.apiUrl, platform.adminToken, TENANT, RAISED);
  await simulator('/_sim/config', { keepMessages: true });
  await simulator('/_sim/reset', {});
  const result = await run(platform);
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await platform.stop();
  await rm(dataDir, { recursive: true, force: true });
}

async function simulator(p: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${platform.simulatorUrl}${p}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`simulator ${p}: ${res.status}`);
  return res.json();
}

/** Watch from `rv`; note when each Broadcast is first seen Completed with every recipient sent; re-watch if the stream ends. */
async function watchCompletions(
  kube: (method: string, urlPath: string) => Promise<{ status: number; body: string }>,
  agent: https.Agent,
  server: URL,
  collection: string,
  completeAt: Map<string, number>,
  rv: string,
): Promise<'done'> {
  for (;;) {
    rv = await new Promise<string>((resolve) => {
      let last = rv;
      const req = https.request(
        { hostname: server.hostname, port: server.port, path: `${collection}?watch=1&allowWatchBookmarks=true&timeoutSeconds=900&resourceVersion=${last}`, agent },
        (res) => {
          const lines = createInterface({ input: res, crlfDelay: Infinity });
          lines.on('error', () => {}); // our own destroy() once everything completed
          lines.on('line', (line) => {
            if (!line) return;
            const e = JSON.parse(line) as { type: string; object: { metadata: { name: string; resourceVersion: string }; status?: { phase?: string; counts?: { sent?: number } } } };
            if (e.type === 'ERROR') return;
            last = e.object.metadata.resourceVersion;
            const st = e.object.status;
            if (st?.phase === 'Completed' && st.counts?.sent === RECIPIENTS && !completeAt.has(e.object.metadata.name)) {
              completeAt.set(e.object.metadata.name, Date.now());
              if (completeAt.size === BROADCASTS) req.destroy();
            }
          });
          res.on('close', () => resolve(last));
          res.on('error', () => resolve(last));
        },
      );
      req.on('error', () => resolve(last));
      req.end();
    });
    if (completeAt.size === BROADCASTS) return 'done';
    if (stopWatching) return 'done';
    // The stream ended early (a 410 or a timeout): pick up from a fresh list.
    const r = await kube('GET', collection);
    const list = JSON.parse(r.body) as { metadata: { resourceVersion: string }; items: { metadata: { name: string }; status?: { phase?: string; counts?: { sent?: number } } }[] };
    for (const b of list.items) {
      if (b.status?.phase === 'Completed' && b.status.counts?.sent === RECIPIENTS && !completeAt.has(b.metadata.name)) completeAt.set(b.metadata.name, Date.now());
    }
    if (completeAt.size === BROADCASTS) return 'done';
    rv = list.metadata.resourceVersion;
  }
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function run(p: LocalPlatform) {
  const { server, agent, request: kube } = await kubeAdmin(p.controlPlane.dir, p.kubeServer, CREATE_CONCURRENCY);
  const collection = `/apis/herald.dev/v1alpha1/namespaces/${NS}/broadcasts`;

  const numberOwner = new Map<string, number>();
  const manifests = Array.from({ length: BROADCASTS }, (_, i) => {
    const contacts = Array.from({ length: RECIPIENTS }, (_, j) => smsNumberOk(FIRST_NUMBER + i * RECIPIENTS + j));
    for (const c of contacts) numberOwner.set(c, i);
    return {
      apiVersion: 'herald.dev/v1alpha1',
      kind: 'Broadcast',
      metadata: { name: `bench-${String(i).padStart(4, '0')}`, namespace: NS },
      spec: { tenant: TENANT, channel: 'sms', message: { text: `Bench ${i}: service at 10am. Reply STOP to opt out.` }, audience: { contacts } },
    };
  });

  const loadBefore = Number(os.loadavg()[0]!.toFixed(2));
  // Where the CPU goes (2 cores shared by everything): each process's CPU seconds over the run.
  const controlPlanePids = processesUnder(p.controlPlane.dir);
  const cpuNow = () => ({
    operator: cpuSeconds(p.pids.operator),
    worker: cpuSeconds(p.pids.worker),
    api: cpuSeconds(p.pids.api),
    simulator: cpuSeconds(p.pids.simulator),
    kube_apiserver_etcd: controlPlanePids.reduce((a, pid) => a + cpuSeconds(pid), 0),
    postgres: postgresCpuSeconds(path.join(p.dataDir, 'postgres')),
    bench_client: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
  });
  const cpuStart = cpuNow();
  const operatorPid = p.pids.operator;
  const cpuBefore = cpuSeconds(operatorPid);
  let rssSampleMax = 0;
  const sampler = setInterval(() => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${operatorPid}/status`, 'utf8'));
      if (m) rssSampleMax = Math.max(rssSampleMax, Number(m[1]) / 1024);
    } catch {
      /* gone */
    }
  }, 250);

  const listed = await kube('GET', collection);
  const listRv = (JSON.parse(listed.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;

  // Apply all at once: every create in flight together (bounded by the agent's sockets).
  // appliedAt: when the API server answered 201 (the object exists: what `kubectl apply`
  // reports as created); requestedAt: when this process issued the request, so the
  // API server's own queueing of a 1,000-object burst shows separately.
  const appliedAt = new Array<number>(BROADCASTS);
  const requestedAt = new Array<number>(BROADCASTS);
  const start = Date.now();
  const created = await Promise.all(
    manifests.map(async (m, i) => {
      requestedAt[i] = Date.now();
      const r = await kube('POST', collection, m);
      if (r.status !== 201) throw new Error(`create ${m.metadata.name}: ${r.status} ${r.body}`);
      return (appliedAt[i] = Date.now());
    }),
  );
  const createSeconds = (Math.max(...created) - start) / 1000;

  // Every Broadcast Completed with every recipient sent: one watch stream, started
  // before the first create, so observing costs the API server next to nothing.
  const completeAt = new Map<string, number>();
  const allComplete = watchCompletions(kube, agent, server, collection, completeAt, listRv);
  const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 10 * 60_000).unref());
  const outcome = await Promise.race([allComplete, timeout]);
  stopWatching = true;
  clearInterval(sampler);
  if (outcome === 'timeout') throw new Error(`only ${completeAt.size} of ${BROADCASTS} Broadcasts completed within 10 minutes`);
  const allCompleteAt = Math.max(...completeAt.values());

  // First send of each Broadcast, from the simulator's record of every message.
  const received = (await (await fetch(`${p.simulatorUrl}/_sim/received?messages=1`)).json()) as {
    sms: { accepted: number; duplicates: { count: number }; messages: { to: string; at: string }[] };
  };
  const firstAt = new Array<number>(BROADCASTS).fill(Infinity);
  for (const msg of received.sms.messages) {
    const i = numberOwner.get(msg.to);
    if (i !== undefined) firstAt[i] = Math.min(firstAt[i]!, Date.parse(msg.at));
  }
  // appliedAt is when this process got round to the 201: a starved event loop sees it late,
  // even after the first message went out. Such a latency is not negative, it is unknown
  // below the request's: floored at 0 and counted. request_to_first_send cannot flatter
  // (the clock starts before the request leaves), so it carries the target.
  const rawLatencies = firstAt.map((t, i) => t - appliedAt[i]!);
  const applySeenLate = rawLatencies.filter((l) => l < 0).length;
  const latencies = rawLatencies.map((l) => Math.max(0, l)).sort((a, b) => a - b);
  const fromRequest = firstAt.map((t, i) => t - requestedAt[i]!).sort((a, b) => a - b);
  if (latencies.some((l) => !Number.isFinite(l))) throw new Error('a Broadcast has no message at the simulator');
  if (fromRequest[0]! < 0) throw new Error(`a message reached the simulator before its Broadcast's create was issued (${fromRequest[0]} ms): clocks disagree`);

  const cpuEnd = cpuNow();
  const cpuByProcess = Object.fromEntries(
    Object.entries(cpuEnd).map(([k, v]) => [k, Number((v - cpuStart[k as keyof typeof cpuStart]).toFixed(1))]),
  );

  // The operator's own account of the run: reconciles by result, their mean duration, status writes.
  const metricsText = await (await fetch(`http://127.0.0.1:${p.ports.operator}/metrics`)).text();
  const sample = (re: RegExp) => {
    let total = 0;
    for (const line of metricsText.split('\n')) {
      const m = re.exec(line);
      if (m) total += Number(m[1]);
    }
    return total;
  };
  const reconciles = sample(/^herald_operator_reconcile_total\{[^}]*\} (\S+)$/);
  const reconcileSeconds = sample(/^herald_operator_reconcile_duration_seconds_sum(?:\{[^}]*\})? (\S+)$/);
  const statusWrites = sample(/^herald_operator_status_writes_total\{result="written"\} (\S+)$/);

  const { createPool } = await import('../lib/db/postgres.js');
  const pool = createPool(p.databaseUrl, 1, 'bench');
  const planned = (await pool.query<{ name: string; planned_at: Date }>(
    `SELECT b.name, o.planned_at FROM broadcasts b JOIN occurrences o ON o.broadcast_id = b.id WHERE b.name LIKE 'bench-%'`,
  )).rows;
  await pool.end();
  const plannedLatencies = planned.map((r) => r.planned_at.getTime() - appliedAt[Number(r.name.slice(6))]!).sort((a, b) => a - b);

  return {
    bench: 'operator',
    broadcasts: BROADCASTS,
    recipients: BROADCASTS * RECIPIENTS,
    apply_to_first_send_p50_ms: percentile(latencies, 0.5),
    apply_to_first_send_p99_ms: percentile(latencies, 0.99),
    apply_to_first_send_max_ms: latencies.at(-1),
    // Broadcasts whose 201 this process saw only after their first send (floored at 0 above).
    apply_seen_after_first_send: applySeenLate,
    // The upper bound, and the figure the target is on.
    request_to_first_send_p50_ms: percentile(fromRequest, 0.5),
    request_to_first_send_p99_ms: percentile(fromRequest, 0.99),
    request_to_first_send_max_ms: fromRequest.at(-1),
    target: { request_to_first_send_p99_ms: 2000, met: percentile(fromRequest, 0.99) < 2000 },
    apply_to_planned_p50_ms: percentile(plannedLatencies, 0.5),
    apply_to_planned_p99_ms: percentile(plannedLatencies, 0.99),
    all_complete_seconds: Number(((allCompleteAt - start) / 1000).toFixed(2)),
    create_all_seconds: Number(createSeconds.toFixed(2)),
    operator_rss_mb: Number(Math.max(peakRssMb(operatorPid), rssSampleMax).toFixed(1)),
    operator_cpu_seconds: Number((cpuSeconds(operatorPid) - cpuBefore).toFixed(2)),
    operator_reconciles: reconciles,
    operator_reconcile_mean_ms: Number(((reconcileSeconds / Math.max(1, reconciles)) * 1000).toFixed(1)),
    operator_status_writes: statusWrites,
    cpu_seconds: cpuByProcess,
    sms_accepted: received.sms.accepted,
    duplicates: received.sms.duplicates.count,
    cores: os.cpus().length,
    load_avg_1m_before: loadBefore,
    load_avg_1m_after: Number(os.loadavg()[0]!.toFixed(2)),
    // The defaults (operator/main.ts, lib/config.ts), then what this run overrode.
    operator_env: { HERALD_OPERATOR_CONCURRENCY: '64', HERALD_STATUS_REFRESH_MS: '2000', HERALD_PROGRESS_POLL_MS: '30000', HERALD_MAX_YIELD_MS: '10000', HERALD_OPERATOR_RESYNC_MS: '60000', ...operatorEnv },
    worker_env: { HERALD_WORKER_JOBS: '32', HERALD_WORKER_CONCURRENCY: '128', ...workerEnv },
  };
}
