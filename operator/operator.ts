import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import type { PgBoss } from 'pg-boss';
import { systemClock, type Clock } from '../lib/clock.js';
import { createPool, type Pool } from '../lib/db/postgres.js';
import { healthRoutes, httpMetrics } from '../lib/http.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { metrics } from '../lib/metrics.js';
import { startBoss } from '../lib/queue.js';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import { BroadcastApi } from './broadcast-api.js';
import { BroadcastController } from './broadcast-controller.js';
import { EventRecorder } from './events.js';
import { KubeClient } from './kube-client.js';
import { LeaderElector } from './leader-election.js';
import { defaultSettings, type OperatorSettings } from './phases/reconciling.js';
import { deliveryIdOf } from './delivery-record.js';
import { ProgressListener } from './progress-listener.js';
import { Informer, InformerEvent, objectKey } from './watch.js';
import { allowsUrgent, boundTenant } from '../lib/tenancy/namespace.js';

interface NamespaceObject {
  metadata: { name: string; resourceVersion: string; uid?: string; labels?: Record<string, string> };
}
import { WorkQueue } from './workqueue.js';
import { ReleaseController } from './release-controller.js';
import { ColorWorkloads } from './color-workloads.js';

export interface OperatorOptions {
  /** A kubeconfig path, or a ready client. */
  kubeconfig?: string;
  kube?: KubeClient;
  /** PostgreSQL: a URL (the operator opens its pool and pg-boss), or both given. */
  databaseUrl?: string;
  pool?: Pool;
  boss?: PgBoss;
  clock?: Clock;
  log?: Logger;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  leaseNamespace?: string;
  leaseName?: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** HTTP port for /healthz /readyz /metrics (0: any free port; undefined: no server). */
  port?: number;
  /** Broadcasts reconciled at once (default 64: a reconcile mostly waits on PostgreSQL and the API server). */
  concurrency?: number;
  /** Every Broadcast is reconciled at least this often (default 60 s; receipts keep changing counts after completion). */
  resyncMs?: number;
  settings?: Partial<OperatorSettings>;
  /** Tests: fault injection inside reconcile. */
  crashAt?: (step: string, key: string) => void;
  /** Tests: whether new Broadcasts wait to be planned (default: the work queue's high lane is not empty). */
  othersWaiting?: () => boolean;
  /**
   * Reconcile the workers' Release (herald-system/workers) too, under the same Lease.
   * Only the active region's operator does (HERALD_RECONCILE_RELEASES).
   */
  releases?: { namespace?: string; intervalMs?: number; leaseSeconds?: number };
}

export interface RunningOperator {
  identity: string;
  /** The HTTP port, when a server was asked for. */
  port?: number;
  isLeader(): boolean;
  /** Reconcile this namespace/name soon (tests, and the start script after applying examples). */
  enqueue(key: string): void;
  /** Release the Lease, stop watching and reconciling, close what the operator opened. */
  stop(): Promise<void>;
}

/**
 * The operator process's parts, wired: an informer on Broadcasts feeding a work
 * queue; workers that reconcile keys while this replica holds the Lease; the
 * health and metrics server. Both replicas watch (so a standby takes over with
 * a warm cache); only the leader reconciles.
 */
export async function startOperator(o: OperatorOptions): Promise<RunningOperator> {
  const log = o.log ?? createLogger('operator');
  const clock = o.clock ?? systemClock;
  const identity = o.identity ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const kube = o.kube ?? (o.kubeconfig ? KubeClient.fromFile(o.kubeconfig) : KubeClient.fromEnv());
  const settings: OperatorSettings = { ...defaultSettings, ...o.settings };

  const ownsPool = !o.pool;
  if (!o.pool && !o.databaseUrl) throw new Error('startOperator needs databaseUrl or pool');
  const concurrency = o.concurrency ?? 64;
  // Reconciles spend most of their time on the API server: fewer connections than reconciles suffice.
  const pool = o.pool ?? createPool(o.databaseUrl!, Math.min(concurrency, 32) + 4, 'operator');
  if (ownsPool) {
    // A replica paused mid-transaction (SIGSTOP, a long GC, a frozen VM) would hold its
    // row locks and block the new leader's planning; PostgreSQL ends such a transaction.
    pool.on('connect', (client) => {
      client.query("SET idle_in_transaction_session_timeout = '10s'").catch(() => {});
    });
  }
  const ownsBoss = !o.boss;
  const boss = o.boss ?? (await startBoss(o.databaseUrl!, { supervise: false, schedule: false, max: 4, log }));

  const api = new BroadcastApi(kube, o.namespace);
  const queue = new WorkQueue({ onDepth: (n) => metrics.workqueueDepth.set(n) });
  // New or changed Broadcasts are waiting to be planned: what can wait (status, events) does.
  const othersWaiting = o.othersWaiting ?? (() => queue.urgent > 0);
  const events = new EventRecorder(kube, identity, log, undefined, othersWaiting, settings.maxYieldMs);
  const informer = new Informer<Broadcast>({ client: kube, path: api.collectionPath(), resyncMs: o.resyncMs ?? 60_000, log });
  api.readFrom(informer);
  // Which tenant each namespace is bound to (its labels): a reconcile reads them from this cache.
  const namespaces = new Informer<NamespaceObject>({ client: kube, path: '/api/v1/namespaces', log });

  const enqueueAll = () => {
    for (const bc of informer.list()) queue.add(objectKey(bc));
  };
  const elector = new LeaderElector({
    client: kube,
    namespace: o.leaseNamespace ?? 'herald-system',
    name: o.leaseName ?? 'herald-operator',
    identity,
    leaseDurationMs: o.leaseDurationMs,
    renewDeadlineMs: o.renewDeadlineMs,
    retryPeriodMs: o.retryPeriodMs,
    log,
    onStartedLeading: () => {
      metrics.leader.set(1);
      enqueueAll();
    },
    onStoppedLeading: () => metrics.leader.set(0),
  });
  const controller = new BroadcastController({
    api, pool, boss, clock, log, events, settings,
    namespaceLabels: (name) => {
      const ns = namespaces.get(name);
      return ns ? (ns.metadata.labels ?? {}) : undefined;
    },
    stillLeading: () => elector.isLeader(),
    othersWaiting,
    crashAt: o.crashAt,
  });

  // Observability subscribes to the informer's typed events.
  for (const e of Object.values(InformerEvent)) informer.on(e, () => metrics.operatorWatchEvents.inc({ event: e }));
  informer.on(InformerEvent.Failed, (err, retryInMs) => log.warn({ err, retryInMs }, 'watch failed; retrying'));
  informer.on(InformerEvent.Expired, (rv) => log.info({ resourceVersion: rv }, 'watch expired (410 Gone): re-listing'));

  // What starts a reconcile: a new object, a spec change (generation), a deletion
  // request — someone waits for those, so they go first — then progress reported by
  // the workers and the periodic resync. Status-only updates (our own writes) do not.
  const keyByDeliveryId = new Map<string, string>();
  const lastReconciled = new Map<string, number>();
  informer.on(InformerEvent.Added, (bc) => {
    keyByDeliveryId.set(deliveryIdOf(bc), objectKey(bc));
    if (elector.isLeader()) queue.add(objectKey(bc), 'high');
  });
  informer.on(InformerEvent.Deleted, (bc) => {
    keyByDeliveryId.delete(deliveryIdOf(bc));
    lastReconciled.delete(objectKey(bc));
  });
  informer.on(InformerEvent.Resync, (bc) => {
    if (elector.isLeader()) queue.add(objectKey(bc));
  });
  informer.on(InformerEvent.Updated, (bc, old) => {
    if (bc.metadata.uid !== old.metadata.uid) {
      // Replaced under the same name while the watch was away (seen at a re-list).
      keyByDeliveryId.delete(deliveryIdOf(old));
      keyByDeliveryId.set(deliveryIdOf(bc), objectKey(bc));
    }
    const changed = bc.metadata.generation !== old.metadata.generation || !!bc.metadata.deletionTimestamp !== !!old.metadata.deletionTimestamp;
    if (changed && elector.isLeader()) queue.add(objectKey(bc), 'high');
  });

  // A namespace bound, unbound or relabelled: its Broadcasts are looked at again at once.
  const tenantLabelsChanged = (ns: NamespaceObject, old?: NamespaceObject) =>
    boundTenant(ns.metadata.labels) !== boundTenant(old?.metadata.labels) || allowsUrgent(ns.metadata.labels) !== allowsUrgent(old?.metadata.labels);
  const enqueueNamespace = (ns: NamespaceObject) => {
    if (!elector.isLeader()) return;
    for (const bc of informer.list()) if (bc.metadata.namespace === ns.metadata.name) queue.add(objectKey(bc), 'high');
  };
  namespaces.on(InformerEvent.Updated, (ns, old) => {
    if (tenantLabelsChanged(ns, old)) enqueueNamespace(ns);
  });
  namespaces.on(InformerEvent.Added, (ns) => enqueueNamespace(ns));
  namespaces.on(InformerEvent.Failed, (err, retryInMs) => log.warn({ err, retryInMs }, 'namespace watch failed; retrying'));

  // A worker moved rows of a Broadcast: fold them into its status, but no more often than statusRefreshMs.
  const progress = new ProgressListener({
    pool,
    log,
    onProgress: (broadcastId) => {
      const key = keyByDeliveryId.get(broadcastId);
      if (!key || !elector.isLeader()) return;
      queue.addAfter(key, (lastReconciled.get(key) ?? 0) + settings.statusRefreshMs - Date.now());
    },
    onListening: () => {
      if (elector.isLeader()) enqueueAll();
    },
  });

  // Health first: /healthz answers while the first list is still in progress, /readyz says so.
  let server: Server | undefined;
  if (o.port !== undefined) {
    const app = new Koa();
    app.use(httpMetrics('operator'));
    app.use(
      healthRoutes({
        live: () => true,
        ready: {
          database: () => pool.query('SELECT 1'),
          informer: async () => {
            if (!informer.hasSynced) throw new Error('broadcast informer has not listed yet');
            if (!namespaces.hasSynced) throw new Error('namespace informer has not listed yet');
          },
        },
      }),
    );
    app.use(async (ctx) => {
      if (ctx.path === '/leader') ctx.body = { identity, leader: elector.isLeader() };
    });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(o.port ?? 0, '0.0.0.0', () => resolve(s));
    });
  }
  // Namespaces first: a Broadcast reconciled before its namespace is known would wait for nothing.
  await namespaces.start();
  await informer.start();
  progress.start();
  elector.start();

  let stopping = false;
  const workers = Array.from({ length: concurrency }, async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        if (!elector.isLeader()) continue; // the new leader enqueues everything when it starts
        await reconcileOne(key);
      } finally {
        if (informer.get(key)) lastReconciled.set(key, Date.now());
        queue.done(key);
      }
    }
  });

  async function reconcileOne(key: string): Promise<void> {
    const end = metrics.reconcileDuration.startTimer();
    try {
      const result = await controller.reconcile(key);
      if (result.backoff) {
        const delay = queue.addRateLimited(key);
        metrics.reconcileTotal.inc({ result: 'backoff' });
        log.debug({ key, delay }, 'reconcile blocked; backing off');
        return;
      }
      queue.forget(key);
      if (result.requeueAfterMs !== undefined) {
        queue.addAfter(key, result.requeueAfterMs);
        metrics.reconcileTotal.inc({ result: 'requeue_after' });
      } else metrics.reconcileTotal.inc({ result: 'success' });
    } catch (err) {
      if (stopping) return;
      const delay = queue.addRateLimited(key);
      metrics.reconcileTotal.inc({ result: 'error' });
      log.error({ err, key, retryInMs: delay }, 'reconcile failed; requeued with backoff');
    } finally {
      end();
    }
  }

  // The Release is one object, reconciled every interval while this replica leads: each
  // pass reads the lanes and the attempts (the truth), so no watch is needed to converge.
  const releaseController = o.releases
    ? new ReleaseController({ kube, pool, log, workloads: new ColorWorkloads(kube, o.releases.namespace ?? 'herald-system'), namespace: o.releases.namespace, leaseSeconds: o.releases.leaseSeconds })
    : undefined;
  // A named function, not an IIFE: the type checker reads an IIFE's body at this point, where stopping is still false.
  const reconcileReleases = async (rc: ReleaseController) => {
    while (!stopping) {
      if (elector.isLeader()) {
        await rc.reconcile().catch((err) => log.error({ err }, 'release reconcile failed; retrying'));
      }
      await new Promise((r) => setTimeout(r, o.releases?.intervalMs ?? 500));
    }
  };
  const releaseLoop = releaseController ? reconcileReleases(releaseController) : Promise.resolve();

  const port = server ? (server.address() as AddressInfo).port : undefined;
  log.info({ identity, namespace: o.namespace ?? '(all)', port }, 'operator started');

  return {
    identity,
    port,
    isLeader: () => elector.isLeader(),
    enqueue: (key) => queue.add(key),
    async stop() {
      stopping = true;
      // Finish the reconciles in flight, then hand the Lease over at once.
      queue.shutdown();
      await Promise.allSettled([...workers, releaseLoop]);
      await events.drain();
      await elector.stop({ release: true });
      metrics.leader.set(0);
      await progress.stop();
      await informer.stop();
      await namespaces.stop();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      if (ownsBoss) await boss.stop({ graceful: false }).catch(() => {});
      if (ownsPool) await pool.end().catch(() => {});
      kube.close();
      log.info({ identity }, 'operator stopped');
    },
  };
}
