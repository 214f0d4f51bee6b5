/**
 * End-to-end test support: a real kube-apiserver (devenv/control-plane.ts) with the
 * Broadcast CRD and the operator's RBAC applied from operator/config, a database of
 * the test file's own, the provider simulator, and a real worker delivering through
 * the real provider adapters. Nothing here fakes the API server or the providers.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../lib/clock.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { installHeraldApi, OPERATOR_SA } from '../../devenv/cluster.js';
import { startControlPlane, type ControlPlane } from '../../devenv/control-plane.js';
import { startDeliveryStack, type DeliveryStack } from '../../devenv/delivery-stack.js';
import { runKubectl, type RunResult } from '../../devenv/kubectl.js';
import { waitFor } from '../../devenv/poll.js';
import { startTs, type Supervised } from '../../devenv/processes.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import type { RunningWorker } from '../../services/worker/worker.js';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION, type Broadcast, type BroadcastManifest } from '../api/v1alpha1/broadcast.js';
import { KubeClient, isNotFound } from '../kube-client.js';
import { tenantNamespaceObjects } from '../../lib/tenancy/namespace.js';

export { OPERATOR_SA };
export { waitFor } from '../../devenv/poll.js';
export const testLog = (name: string): Logger => createLogger(name, process.env.HERALD_TEST_LOG ?? 'warn');

export interface Kube {
  cp: ControlPlane;
  /** A system:masters client (the test's own requests). */
  admin: KubeClient;
  /** The operator's ServiceAccount token kubeconfig. */
  operatorKubeconfig: string;
  kubectl(args: string[], input?: string): Promise<RunResult>;
  /** As a platform admin: create (or relabel) `namespace` bound to `tenant`, as the admin api's manifest does. */
  bindNamespace(namespace: string, tenant: string, o?: { urgent?: boolean }): Promise<void>;
  /**
   * Create a Broadcast. A namespace that does not exist yet is first created bound to the
   * Broadcast's tenant (urgent allowed), as a platform admin would; an existing one is left as it is.
   */
  create(manifest: BroadcastManifest): Promise<Broadcast>;
  get(name: string, namespace?: string): Promise<Broadcast | undefined>;
  /** JSON merge patch of the spec. */
  patchSpec(name: string, spec: Record<string, unknown>, namespace?: string): Promise<Broadcast>;
  remove(name: string, namespace?: string): Promise<void>;
  events(name: string, namespace?: string): Promise<{ reason: string; note: string; type: string }[]>;
  stop(): Promise<void>;
}

/** One control plane per test file, with the CRD, RBAC and admission policies from operator/config applied. */
export async function startKube(): Promise<Kube> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-operator-e2e-'));
  const cp = await startControlPlane({ dir });
  const run = (args: string[], input?: string) => runKubectl(cp.adminKubeconfig, args, input);
  await installHeraldApi(cp.adminKubeconfig);
  const must = async (args: string[], input?: string) => {
    const r = await run(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const operatorKubeconfig = await cp.kubeconfigForServiceAccount(OPERATOR_SA.namespace, OPERATOR_SA.name);
  const admin = KubeClient.fromFile(cp.adminKubeconfig);
  const objectPath = (ns: string, name?: string) => `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}${name ? `/${name}` : ''}`;
  // Where each Broadcast this harness created lives: get/patch/remove default to it.
  const namespaceOf = new Map<string, string>();
  const nsOf = (name: string) => namespaceOf.get(name) ?? 'default';
  const bindNamespace = async (namespace: string, tenant: string, o: { urgent?: boolean } = {}) => {
    const objects = tenantNamespaceObjects(tenant, { name: namespace, urgent: o.urgent });
    await must(['apply', '-f', '-'], objects.map((x) => JSON.stringify(x)).join('\n---\n'));
  };
  const knownNamespaces = new Set<string>();
  const ensureNamespace = async (namespace: string, tenant: string) => {
    if (knownNamespaces.has(namespace)) return;
    try {
      await admin.request('GET', `/api/v1/namespaces/${namespace}`);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await bindNamespace(namespace, tenant, { urgent: true });
    }
    knownNamespaces.add(namespace);
  };

  return {
    cp,
    admin,
    operatorKubeconfig,
    kubectl: run,
    bindNamespace,
    async create(m) {
      const ns = m.metadata.namespace ?? 'default';
      await ensureNamespace(ns, m.spec.tenant);
      const created = await admin.request<Broadcast>('POST', objectPath(ns), { body: { ...m, apiVersion: API_VERSION, kind: KIND } });
      namespaceOf.set(m.metadata.name, ns);
      return created;
    },
    async get(name, ns = nsOf(name)) {
      try {
        return await admin.request<Broadcast>('GET', objectPath(ns, name));
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    },
    patchSpec: (name, spec, ns = nsOf(name)) =>
      admin.request<Broadcast>('PATCH', objectPath(ns, name), { contentType: 'application/merge-patch+json', body: { spec } }),
    async remove(name, ns = nsOf(name)) {
      await admin.request('DELETE', objectPath(ns, name));
    },
    async events(name, ns = nsOf(name)) {
      const list = await admin.request<{ items: { reason: string; note: string; type: string; regarding: { name: string } }[] }>(
        'GET',
        `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
      );
      return list.items.filter((e) => e.regarding.name === name).map((e) => ({ reason: e.reason, note: e.note, type: e.type }));
    },
    async stop() {
      admin.close();
      await cp.stop();
      if (!process.env.HERALD_KEEP_E2E_DIR) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Delivery extends DeliveryStack {
  db: TestDatabase;
  worker: RunningWorker;
  stop(): Promise<void>;
}

/** A database of this file's own, the provider simulator, and one worker delivering through it. */
export async function startDelivery(databaseUrl: string, clock: Clock, log = testLog('worker'), o: { jobs?: number } = {}): Promise<Delivery> {
  const db = await createTestDatabase(databaseUrl, 20);
  const stack = await startDeliveryStack({
    pool: db.pool, url: db.url, clock, log,
    sim: { receipts: 'all', receiptDelayMs: 5 },
    boss: { supervise: true, max: 6, superviseIntervalSeconds: 2 },
  });
  const worker = await stack.startWorker({
    sweepIntervalMs: 250, heartbeatIntervalMs: 1_000, workerLeaseSeconds: 30, accountSmsPerSecond: 1_000,
    // One batch at a time by default, so a test can act between batches (suspend, edit, delete mid-send).
    jobs: o.jobs ?? 1,
  });
  return {
    ...stack, db, worker,
    async stop() {
      await stack.close();
      await db.drop().catch(() => {});
    },
  };
}

/** Events are recorded in the background: wait until these reasons have all been recorded. */
export const eventsInclude = (kube: Kube, name: string, reasons: string[], ns?: string) =>
  waitFor(`${name} events ${reasons.join(', ')}`, async () => {
    const events = await kube.events(name, ns);
    return reasons.every((r) => events.some((e) => e.reason === r)) ? events : undefined;
  });

export const phaseIs = (kube: Kube, name: string, phase: string, ns?: string) =>
  waitFor(`${name} phase ${phase}`, async () => {
    const bc = await kube.get(name, ns);
    return bc?.status?.phase === phase ? bc : undefined;
  });

/** A Broadcast manifest with the test's defaults, in its tenant's namespace (named as the tenant). */
export function broadcast(name: string, spec: Partial<BroadcastManifest['spec']> & Pick<BroadcastManifest['spec'], 'tenant'>): BroadcastManifest {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace: spec.tenant },
    spec: {
      channel: 'sms',
      message: { text: `Hello from ${name}` },
      audience: { segment: { all: true } },
      ...spec,
    },
  };
}

export interface OperatorProcess extends Supervised {
  identity: string;
  logPath: string;
}

/**
 * operator/main.ts as a child process with the operator's ServiceAccount token, so
 * a test can SIGKILL, SIGSTOP and SIGCONT it like a pod.
 */
export function spawnOperator(o: { kubeconfig: string; databaseUrl: string; identity: string; logDir: string; env?: Record<string, string> }): OperatorProcess {
  const logPath = path.join(o.logDir, `${o.identity}.log`);
  const p = startTs('operator/main.ts', {
    name: o.identity,
    logFile: logPath,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KUBECONFIG: o.kubeconfig,
      DATABASE_URL: o.databaseUrl,
      HERALD_OPERATOR_PORT: '0',
      HERALD_OPERATOR_IDENTITY: o.identity,
      HERALD_LEASE_DURATION_MS: '4000',
      HERALD_RENEW_DEADLINE_MS: '3000',
      HERALD_RETRY_PERIOD_MS: '500',
      HERALD_OPERATOR_RESYNC_MS: '2000',
      HERALD_STATUS_REFRESH_MS: '1000',
      LOG_LEVEL: process.env.HERALD_TEST_LOG ?? 'info',
      ...o.env,
    },
  });
  return Object.assign(p, { identity: o.identity, logPath });
}

/** The Lease holder, read with the admin client. */
export async function leaseHolder(kube: Kube, name = 'herald-operator', namespace = 'herald-system'): Promise<string | undefined> {
  try {
    const l = await kube.admin.request<{ spec?: { holderIdentity?: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`);
    return l.spec?.holderIdentity || undefined;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** One version of a Lease's spec, as the API server stored it. */
export interface LeaseRecord {
  resourceVersion: string;
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface LeaseObject {
  metadata: { resourceVersion: string };
  spec?: Omit<LeaseRecord, 'resourceVersion'>;
}

/**
 * Every version of the Lease from now on, through a watch (a poll could miss the old
 * holder's last renewal or the release in between). `stop()` ends the watch.
 */
export async function recordLease(kube: Kube, name = 'herald-operator', namespace = 'herald-system'): Promise<{ records: LeaseRecord[]; stop(): Promise<void> }> {
  const base = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
  const records: LeaseRecord[] = [];
  const add = (l: LeaseObject) => {
    if (records.at(-1)?.resourceVersion !== l.metadata.resourceVersion) records.push({ ...l.spec, resourceVersion: l.metadata.resourceVersion });
  };
  add(await kube.admin.request<LeaseObject>('GET', `${base}/${name}`));
  const abort = new AbortController();
  const watching = (async () => {
    while (!abort.signal.aborted) {
      const from = records.at(-1)!.resourceVersion;
      await kube.admin
        .watch<LeaseObject>(`${base}?watch=true&fieldSelector=metadata.name%3D${name}&resourceVersion=${from}&allowWatchBookmarks=false`, (e) => {
          if (e.type === 'ADDED' || e.type === 'MODIFIED') add(e.object);
        }, abort.signal)
        .catch(() => new Promise((r) => setTimeout(r, 100)));
    }
  })();
  return {
    records,
    async stop() {
      abort.abort();
      await watching;
    },
  };
}

export interface HandOver {
  /** The old holder's last renewal and when, by its leaseDurationSeconds, that record ran out. */
  lastRenew: Date;
  deadline: Date;
  /** The new holder's acquireTime. */
  acquired: Date;
  /** A record with no holder came between: the old holder handed the Lease back. */
  released: boolean;
}

/** How the Lease went from `from` to `to`, read from its recorded versions. */
export function handOver(records: LeaseRecord[], from: string, to: string): HandOver {
  const taken = records.findIndex((r) => r.holderIdentity === to);
  if (taken < 0) throw new Error(`${to} never held the Lease: ${JSON.stringify(records)}`);
  let old = -1;
  for (let i = taken - 1; i >= 0; i--) {
    if (records[i]!.holderIdentity === from) {
      old = i;
      break;
    }
  }
  if (old < 0) throw new Error(`${from} did not hold the Lease before ${to}: ${JSON.stringify(records)}`);
  const last = records[old]!;
  const lastRenew = new Date(last.renewTime!);
  return {
    lastRenew,
    deadline: new Date(lastRenew.getTime() + last.leaseDurationSeconds! * 1000),
    acquired: new Date(records[taken]!.acquireTime!),
    released: records.slice(old + 1, taken).some((r) => !r.holderIdentity),
  };
}

/** No delivery twice, no job twice: rows per recipient and pg-boss jobs per (occurrence, batch). */
export async function duplicates(db: TestDatabase, broadcastId: string): Promise<{ rows: number; jobs: number }> {
  const rows = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT occurrence_id, recipient_key FROM deliveries WHERE broadcast_id = $1
      GROUP BY 1, 2 HAVING count(*) > 1) d`,
    [broadcastId],
  );
  const jobs = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT data->>'occurrenceId', data->>'batchNo' FROM pgboss.job
      WHERE data->>'occurrenceId' IN (SELECT id::text FROM occurrences WHERE broadcast_id = $1)
      GROUP BY 1, 2 HAVING count(*) > 1) j`,
    [broadcastId],
  );
  return { rows: rows.rows[0]!.n, jobs: jobs.rows[0]!.n };
}


/** The HTTP port a spawned operator printed in its "operator started" log line. */
export async function operatorPort(p: OperatorProcess): Promise<number> {
  return waitFor(`${p.identity} to start`, async () => {
    const text = await readFile(p.logPath, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line.includes('"operator started"')) continue;
      const port = (JSON.parse(line) as { port?: number }).port;
      if (port) return port;
    }
    return undefined;
  });
}
