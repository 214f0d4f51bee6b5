import { loadConfig } from '../../lib/config.js';
import { clockFromEnv } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { exitOnUnhandled } from '../../lib/crash.js';
import { createPool, startDatabase } from '../../lib/db/postgres.js';
import { migrate } from '../../lib/db/migrate.js';
import { startBoss } from '../../lib/queue.js';
import { createProviders } from '../providers/index.js';
import { connectToSimulator } from '../simulator/client.js';
import { createWorkerApp } from './app.js';
import { startWorker } from './worker.js';

/**
 * The worker process. Environment (besides lib/config.ts):
 *   HERALD_SIMULATOR_URL   send through the provider simulator when no credentials are set
 *   HERALD_WEBHOOK_URL     where Telnyx should post receipts (the api's /webhooks/telnyx)
 *   HERALD_WORKER_LEASE_SECONDS  how long a silent worker is presumed alive (default 30)
 *   HERALD_SIMULATED_TENANTS     comma-separated tenants whose sends always go to the simulator
 *                                (the k6 synthetic tenant), even when real credentials are set
 * SIGTERM/SIGINT: stop taking work, finish what is held within the grace period, exit.
 */
const config = loadConfig();
const log = createLogger(`worker-${config.HERALD_LANE}`);
exitOnUnhandled(log);
const clock = clockFromEnv();
const db = await startDatabase({ databaseUrl: config.databaseUrl, dataDir: config.HERALD_DATA_DIR, port: config.HERALD_PG_PORT, log });
const pool = createPool(db.url, config.HERALD_DB_POOL_MAX, 'worker');
await migrate(pool);
// pg-boss fetches, completes and heartbeats every batch slot's job on its own pool.
// Its maintenance runs only while this worker's lane is stable (startWorker's `maintenance`).
const boss = await startBoss(db.url, { log, max: Math.max(4, Math.ceil(config.HERALD_WORKER_JOBS / 4) + 2), supervise: false });
const simulator = process.env.HERALD_SIMULATOR_URL ? await connectToSimulator(process.env.HERALD_SIMULATOR_URL) : undefined;
const providers = createProviders(config, { simulator, log, maxSockets: config.HERALD_WORKER_CONCURRENCY });
const simulatedTenants = (process.env.HERALD_SIMULATED_TENANTS ?? '').split(',').map((t) => t.trim()).filter(Boolean);
if (simulatedTenants.length > 0 && !simulator) throw new Error('HERALD_SIMULATED_TENANTS needs HERALD_SIMULATOR_URL');
const simulatedProviders = simulatedTenants.length > 0 ? createProviders(config, { simulator, log, mode: 'simulator', maxSockets: config.HERALD_WORKER_CONCURRENCY }) : undefined;

const worker = await startWorker({
  pool, boss, clock, log,
  sms: providers.sms,
  push: providers.push,
  circuitState: { sms: () => providers.circuits.telnyx.state, push: () => providers.circuits.fcm.state },
  simulated: simulatedProviders && { tenants: new Set(simulatedTenants), sms: simulatedProviders.sms, push: simulatedProviders.push },
  lane: config.HERALD_LANE,
  version: config.HERALD_VERSION,
  maintenance: true,
  concurrency: config.HERALD_WORKER_CONCURRENCY,
  jobs: config.HERALD_WORKER_JOBS,
  jobsPerTenant: config.HERALD_WORKER_JOBS_PER_TENANT,
  chunkSize: config.HERALD_WORKER_CHUNK,
  accountSmsPerSecond: config.HERALD_ACCOUNT_SMS_PER_SECOND,
  accountPushPerSecond: config.HERALD_ACCOUNT_PUSH_PER_SECOND,
  webhookUrl: process.env.HERALD_WEBHOOK_URL,
  workerLeaseSeconds: process.env.HERALD_WORKER_LEASE_SECONDS ? Number(process.env.HERALD_WORKER_LEASE_SECONDS) : undefined,
});
const app = createWorkerApp({ pool, boss, accepting: () => worker.accepting });
const server = app.listen(config.HERALD_WORKER_PORT, '0.0.0.0', () => {
  const addr = server.address();
  log.info({ port: typeof addr === 'object' && addr ? addr.port : config.HERALD_WORKER_PORT, worker: worker.id }, 'worker listening');
  process.send?.({ ready: true, worker: worker.id, port: typeof addr === 'object' && addr ? addr.port : undefined });
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'draining');
  const { drained } = await worker.stop(config.HERALD_SHUTDOWN_GRACE_MS);
  await boss.stop({ graceful: true, timeout: 5_000 }).catch(() => {});
  await providers.close();
  await simulatedProviders?.close();
  server.close();
  await pool.end();
  await db.stop();
  log.info({ drained }, 'bye');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
