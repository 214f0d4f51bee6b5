import type { PgBoss } from 'pg-boss';
import { ManualClock, type Clock } from '../../../lib/clock.js';
import { createLogger } from '../../../lib/logger.js';
import { loadConfig } from '../../../lib/config.js';
import type { Pool } from '../../../lib/db/postgres.js';
import { startBoss } from '../../../lib/queue.js';
import { createProviders, type Providers, type BreakerOptions } from '../../providers/index.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../simulator/simulator.js';
import { startWorker, type RunningWorker, type WorkerOptions } from '../worker.js';

export interface Harness {
  sim: Simulator;
  providers: Providers;
  boss: PgBoss;
  clock: Clock;
  startWorker(o?: Partial<WorkerOptions>): Promise<RunningWorker>;
  /** Poll until no row of the broadcast is waiting or in flight. */
  settled(broadcastId: string, timeoutMs?: number): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/**
 * A real delivery pipeline in-process: pg-boss, workers, and the real telnyx and
 * firebase-admin SDKs aimed at the provider simulator.
 */
export async function startHarness(pool: Pool, url: string, o: { sim?: SimulatorOptions; clock?: Clock; breaker?: Partial<BreakerOptions>; telnyxTimeoutMs?: number } = {}): Promise<Harness> {
  const sim = await startSimulator({ port: 0, fcmPort: 0, receipts: 'none', keepMessages: true, ...o.sim });
  const log = createLogger('test', process.env.LOG_LEVEL ?? 'silent');
  const providers = createProviders(loadConfig({}), { simulator: sim, log, breaker: o.breaker, telnyxTimeoutMs: o.telnyxTimeoutMs });
  const boss = await startBoss(url, { log });
  const clock = o.clock ?? new ManualClock(new Date());
  const workers: RunningWorker[] = [];
  return {
    sim, providers, boss, clock,
    async startWorker(w = {}) {
      const worker = await startWorker({
        pool, boss, clock, log, sms: providers.sms, push: providers.push,
        circuitState: { sms: () => providers.circuits.telnyx.state, push: () => providers.circuits.fcm.state },
        sweepIntervalMs: 200, pollingIntervalSeconds: 0.5, workerLeaseSeconds: 10, ...w,
      });
      workers.push(worker);
      return worker;
    },
    async settled(broadcastId, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { rows } = await pool.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int n FROM deliveries WHERE broadcast_id = $1 GROUP BY status', [broadcastId]);
        const counts = Object.fromEntries(rows.map((r) => [r.status, r.n]));
        if (!counts.queued && !counts.sending && !counts.retry) return counts;
        if (Date.now() > deadline) throw new Error(`broadcast ${broadcastId} did not settle: ${JSON.stringify(counts)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      for (const w of workers) await w.stop(2_000);
      await boss.stop({ graceful: false });
      await providers.close();
      await sim.close();
    },
  };
}
