import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Job, PgBoss } from 'pg-boss';
import { Slots } from './slots.js';
import type { Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { metrics } from '../../lib/metrics.js';
import { DELIVER_QUEUE, type DeliverJob } from '../../lib/queue.js';
import type { PushProvider, SmsProvider } from '../providers/types.js';
import { sweepOnce, wakeOutageWaits } from '../../core/delivery/sweeper.js';
import { deliverBatch, type BatchSummary, type DeliverDeps } from './deliver-batch.js';
import { LaneGate } from './lane-gate.js';
import { handBack } from '../../core/delivery/hand-back.js';
import { previewWork, readLane, type Lane } from '../../core/delivery/lanes.js';
import { notifyProgress, notifyWork, WORK_CHANNEL } from '../../core/delivery/progress.js';
import { Listener } from '../../lib/db/listener.js';
import { waitingRowsByTenant } from '../../core/delivery/capacity.js';
import { OutcomeRecorder } from '../../core/delivery/outcome-recorder.js';
import { Semaphore } from '../../lib/semaphore.js';

export interface WorkerOptions {
  pool: Pool;
  boss: PgBoss;
  clock: Clock;
  log: Logger;
  sms?: SmsProvider;
  push?: PushProvider;
  simulated?: DeliverDeps['simulated'];
  circuitState?: DeliverDeps['circuitState'];
  /** This worker's color: its lane's weight decides which share of the work it claims. */
  lane?: string;
  /** The version this worker runs (HERALD_VERSION), registered with its heartbeat. */
  version?: string;
  /** Run pg-boss's queue maintenance while this worker's lane is stable (its own boss does not supervise). */
  maintenance?: boolean;
  /** How often the lane's weight and role are read (the claim itself always checks the database). */
  laneRefreshMs?: number;
  /** While the lane is a preview: how often it looks for its tenants' queued rows. */
  previewPullMs?: number;
  /** Sends in flight across all jobs of this process. */
  concurrency?: number;
  /** Jobs (batches) handled at once. */
  jobs?: number;
  /** Jobs of one tenant (its normal or its urgent work) handled at once by this process. */
  jobsPerTenant?: number;
  accountSmsPerSecond?: number;
  /** The push project's limit, shared fairly between tenants (default: none). */
  accountPushPerSecond?: number;
  webhookUrl?: string;
  sweepIntervalMs?: number;
  /** How often a stable-lane worker counts each tenant's waiting rows (herald_tenant_waiting_rows). */
  waitingRowsIntervalMs?: number;
  heartbeatIntervalMs?: number;
  workerLeaseSeconds?: number;
  pollingIntervalSeconds?: number;
  chunkSize?: number;
}

export interface RunningWorker {
  id: string;
  /** True while the worker takes new work. */
  readonly accepting: boolean;
  /** The lane as this worker last read it. */
  readonly laneState: Lane | undefined;
  /** Stop taking work, finish what is held (up to graceMs), then stop. */
  stop(graceMs?: number): Promise<{ drained: boolean }>;
}

/**
 * A worker process's delivery loop: pg-boss handlers for delivery batches, the
 * due-work sweeper and a heartbeat that proves this worker alive to the others.
 */
export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const draining = new AbortController();
  // `concurrency` is what the provider clients put on the wire (their sockets); two more
  // chunks may be claiming meanwhile, so a claim's round trips never leave the wire idle.
  const inFlight = new Semaphore((o.concurrency ?? 128) + 2 * (o.chunkSize ?? 25));
  const recorder = new OutcomeRecorder(o.pool, o.clock, { log: o.log });
  const lane = o.lane ?? 'blue';
  const version = o.version ?? '';
  const leaseSeconds = o.workerLeaseSeconds ?? 30;
  await o.pool.query('INSERT INTO workers (id, lane, version) VALUES ($1, $2, $3)', [id, lane, version]);
  let laneState = await readLane(o.pool, lane);
  if (!laneState) o.log.warn({ lane }, 'no such lane: this worker claims nothing until it exists');

  const active = new Set<Promise<unknown>>();
  let accepting = true;
  // A slot holds a job only while it can send: a claim refused tokens hands the rest back
  // (services/worker/slots.ts), so no tenant's backlog holds the slots the others need.
  const slots = new Slots(o.boss, {
    slots: o.jobs ?? 32,
    perGroup: o.jobsPerTenant ?? 8,
    pollMs: (o.pollingIntervalSeconds ?? 1) * 1000,
    handler: (job) => handle(job),
    waited: (summary) => (summary as BatchSummary | undefined)?.capacityWaitMs !== undefined,
    log: o.log,
  });
  const deps = {
    pool: o.pool, sms: o.sms, push: o.push, simulated: o.simulated, circuitState: o.circuitState, recorder, inFlight, clock: o.clock, log: o.log, workerId: id,
    accountSmsPerSecond: o.accountSmsPerSecond ?? 50, accountPushPerSecond: o.accountPushPerSecond, webhookUrl: o.webhookUrl, chunkSize: o.chunkSize,
    draining: draining.signal,
    lane, version,
    // A lane drops out of the split only when its workers have been silent a while (not a
    // beat late on a busy machine), or the other lanes would take its share meanwhile.
    gate: new LaneGate(o.pool, lane, Math.max(leaseSeconds, 15)),
    handBack: async (ids, h) => {
      await handBack(o.boss, ids, h);
      // Offered at once (a lane ahead of its weight, a drain): the other workers hear it now.
      if (!h.startAfterMs) await notifyWork(o.pool).catch((err) => o.log.warn({ err }, 'work notification failed'));
    },
    onCapacityWait: (group, ms) => slots.waitFor(group, ms),
  } satisfies DeliverDeps;

  /** Deliver one batch, held in `active` so a drain waits for it, then tell the operator. */
  const runBatch = async (data: DeliverJob, from: { job?: string; pulled?: boolean }) => {
    const run = deliverBatch(deps, data);
    active.add(run);
    try {
      const summary = await run;
      // The operator folds this into the Broadcast's status; a lost hint only delays that.
      if (summary.broadcastId) await notifyProgress(o.pool, [summary.broadcastId]).catch((err) => o.log.warn({ err }, 'progress notification failed'));
      o.log.debug({ ...from, lane, ...data, deliveryIds: data.deliveryIds?.length, ...summary }, 'batch done');
      return summary;
    } finally {
      active.delete(run);
    }
  };
  const handle = async (job: Job<DeliverJob>) => {
    try {
      const summary = await runBatch(job.data, { job: job.id });
      metrics.queueProcessed.inc({ queue: DELIVER_QUEUE });
      return summary;
    } catch (err) {
      metrics.queueFailed.inc({ queue: DELIVER_QUEUE });
      o.log.error({ err, job: job.id }, 'batch failed; pg-boss will retry it');
      throw err;
    }
  };
  slots.start();
  // One listener per process hands new work to one free slot (the slots chain on from there).
  const listener = new Listener({ pool: o.pool, log: o.log, channel: WORK_CHANNEL, onNotify: () => slots.wake(), onListening: () => slots.wake() });
  listener.start();

  // Slots are taking work: the worker says it is ready with its heartbeat.
  await o.pool.query('UPDATE workers SET ready = true, heartbeat_at = now() WHERE id = $1', [id]);
  const timers: NodeJS.Timeout[] = [];
  // Beat well inside the lease others judge us by, or a slow send would look like a dead worker.
  const heartbeatMs = Math.min(o.heartbeatIntervalMs ?? 5_000, (leaseSeconds * 1000) / 3);
  // Only the stable lane's workers run the sweeper and queue maintenance: a version on
  // trial (or at weight 0) never decides which retries and due rows go back to the queue.
  const stable = () => laneState?.role === 'stable' && laneState.weight > 0;
  timers.push(setInterval(() => {
    readLane(o.pool, lane).then((l) => {
      if (l?.weight !== laneState?.weight || l?.role !== laneState?.role) o.log.info({ lane, weight: l?.weight, role: l?.role }, 'lane changed');
      laneState = l;
    }).catch((err) => o.log.warn({ err }, 'lane read failed'));
  }, o.laneRefreshMs ?? 500));
  let maintaining = false;
  if (o.maintenance) timers.push(setInterval(() => {
    if (maintaining || !accepting || !stable()) return;
    maintaining = true;
    o.boss.supervise().catch((err) => o.log.warn({ err }, 'queue maintenance failed')).finally(() => { maintaining = false; });
  }, 5_000));
  let sweeping = false;
  timers.push(setInterval(() => {
    if (sweeping || !accepting || !stable()) return;
    sweeping = true;
    sweepOnce(o.pool, o.boss, o.clock.now(), { workerLeaseSeconds: leaseSeconds })
      .then((r) => { if (r.woken || r.orphaned) o.log.debug(r, "sweep"); })
      .catch((err) => o.log.warn({ err }, 'sweep failed'))
      .finally(() => { sweeping = false; });
  }, o.sweepIntervalMs ?? 1_000));
  // A preview lane takes its tenants' queued rows itself. A queue job goes to whichever
  // slot fetches first, of any lane, and every other lane refuses these rows ('closed') and
  // hands them back, so a preview lane that only waited for their jobs would get them by
  // chance: behind a stable lane with more slots, not for minutes. The rows' jobs stay
  // queued; the claim sends each row once, so a job that comes later finds them taken.
  let pulling = false;
  timers.push(setInterval(() => {
    const l = laneState;
    if (pulling || !accepting || l?.role !== 'preview' || l.tenants.length === 0) return;
    pulling = true;
    previewWork(o.pool, l.tenants)
      .then((jobs) => Promise.all(jobs.map((data) => runBatch(data, { pulled: true }))))
      .catch((err) => o.log.warn({ err }, 'preview pull failed'))
      .finally(() => { pulling = false; });
  }, o.previewPullMs ?? 500));
  timers.push(setInterval(() => {
    o.pool.query('UPDATE workers SET heartbeat_at = now() WHERE id = $1', [id]).catch((err) => o.log.warn({ err }, 'heartbeat failed'));
  }, heartbeatMs));
  // A provider back (its circuit closed after being open): its outage's waits are due now,
  // so the backlog resumes at the normal rate instead of trickling out over the backoffs.
  const circuitWas: Record<'sms' | 'push', string> = { sms: 'closed', push: 'closed' };
  timers.push(setInterval(() => {
    for (const channel of ['sms', 'push'] as const) {
      const now = o.circuitState?.[channel]?.() ?? 'closed';
      if (now === 'closed' && circuitWas[channel] !== 'closed') {
        wakeOutageWaits(o.pool, channel, o.clock.now())
          .then((n) => o.log.info({ channel, rows: n }, 'provider back: rows waiting out its outage are due now'))
          .catch((err) => o.log.warn({ err }, 'waking outage waits failed'));
      }
      circuitWas[channel] = now;
    }
  }, 250));
  let counting = false;
  timers.push(setInterval(() => {
    if (counting || !stable()) return;
    counting = true;
    waitingRowsByTenant(o.pool)
      .then((byTenant) => {
        metrics.tenantWaitingRows.reset();
        for (const [tenant, n] of byTenant) metrics.tenantWaitingRows.set({ tenant }, n);
      })
      .catch((err) => o.log.warn({ err }, 'waiting rows count failed'))
      .finally(() => { counting = false; });
  }, o.waitingRowsIntervalMs ?? 5_000));
  timers.push(setInterval(() => {
    o.boss.getQueue(DELIVER_QUEUE).then((q) => { if (q) metrics.queueDepth.set({ queue: DELIVER_QUEUE }, q.queuedCount); }).catch(() => {});
  }, 5_000));

  o.log.info({ worker: id, lane, version, role: laneState?.role, weight: laneState?.weight }, 'worker started');
  return {
    id,
    get accepting() { return accepting; },
    get laneState() { return laneState; },
    async stop(graceMs = 25_000) {
      accepting = false;
      draining.abort();
      await o.pool.query('UPDATE workers SET ready = false WHERE id = $1', [id]).catch(() => {});
      for (const t of timers) clearInterval(t);
      // Stop fetching; jobs already handed to us run on.
      void slots.stop();
      void listener.stop();
      const drained = await Promise.race([
        Promise.allSettled([...active]).then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref()),
      ]);
      // Outcomes the database still cannot take stay with their rows (sending): the sweeper's.
      await recorder.close().catch((err) => o.log.warn({ err }, 'outcomes not recorded at stop; the sweeper hands their rows on'));
      // A clean stop leaves nothing in flight, so the sweeper need not wait for a lease.
      await o.pool.query('UPDATE workers SET stopped_at = now() WHERE id = $1', [id]).catch(() => {});
      o.log.info({ worker: id, drained }, 'worker stopped');
      return { drained };
    },
  };
}
