/**
 * The delivery stack in-process, as the worker and operator tests run it: pg-boss, the
 * provider simulator, the real telnyx and firebase-admin SDKs aimed at it (with their
 * circuit breakers), and workers that deliver through them.
 */
import type { PgBoss } from 'pg-boss';
import { ManualClock, type Clock } from '../lib/clock.js';
import { loadConfig } from '../lib/config.js';
import type { Pool } from '../lib/db/postgres.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { startBoss } from '../lib/queue.js';
import { createProviders, type BreakerOptions, type Providers } from '../services/providers/index.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../services/simulator/simulator.js';
import { startWorker, type RunningWorker, type WorkerOptions } from '../services/worker/worker.js';
import { waitFor } from './poll.js';

export interface DeliveryStackOptions {
  pool: Pool;
  /** The database's URL (pg-boss connects on its own). */
  url: string;
  clock?: Clock;
  log?: Logger;
  sim?: SimulatorOptions;
  breaker?: Partial<BreakerOptions>;
  telnyxTimeoutMs?: number;
  boss?: Parameters<typeof startBoss>[1];
  /** What every startWorker() gets unless it says otherwise. */
  worker?: Partial<WorkerOptions>;
}

export interface DeliveryStack {
  sim: Simulator;
  providers: Providers;
  boss: PgBoss;
  clock: Clock;
  startWorker(o?: Partial<WorkerOptions>): Promise<RunningWorker>;
  /** Poll until no row of the broadcast is waiting or in flight; its rows by status. */
  settled(broadcastId: string, timeoutMs?: number): Promise<Record<string, number>>;
  /** Stop the workers (2 s grace), pg-boss, the provider clients and the simulator. */
  close(): Promise<void>;
}

export async function startDeliveryStack(o: DeliveryStackOptions): Promise<DeliveryStack> {
  const sim = await startSimulator({ port: 0, fcmPort: 0, receipts: 'none', keepMessages: true, ...o.sim });
  const log = o.log ?? createLogger('test', process.env.LOG_LEVEL ?? 'silent');
  const providers = createProviders(loadConfig({}), { simulator: sim, log, breaker: o.breaker, telnyxTimeoutMs: o.telnyxTimeoutMs });
  const boss = await startBoss(o.url, { log, ...o.boss });
  const clock = o.clock ?? new ManualClock(new Date());
  const workers: RunningWorker[] = [];
  return {
    sim, providers, boss, clock,
    async startWorker(w = {}) {
      const worker = await startWorker({
        pool: o.pool, boss, clock, log, sms: providers.sms, push: providers.push,
        circuitState: { sms: () => providers.circuits.telnyx.state, push: () => providers.circuits.fcm.state },
        sweepIntervalMs: 200, pollingIntervalSeconds: 0.5, workerLeaseSeconds: 10, ...o.worker, ...w,
      });
      workers.push(worker);
      return worker;
    },
    settled: (broadcastId, timeoutMs = 30_000) =>
      waitFor(`broadcast ${broadcastId} to settle`, async () => {
        const { rows } = await o.pool.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int n FROM deliveries WHERE broadcast_id = $1 GROUP BY status', [broadcastId]);
        const counts = Object.fromEntries(rows.map((r) => [r.status, r.n]));
        return !counts.queued && !counts.sending && !counts.retry ? counts : undefined;
      }, { timeoutMs, everyMs: 100 }),
    async close() {
      for (const w of workers) await w.stop(2_000).catch(() => {});
      await boss.stop({ graceful: false }).catch(() => {});
      await providers.close().catch(() => {});
      await sim.close().catch(() => {});
    },
  };
}
