/**
 * The operator process.
 *
 *   KUBECONFIG                 kubeconfig path (else in-cluster service account, else ~/.kube/config)
 *   DATABASE_URL[_FILE]        PostgreSQL (else an embedded server under HERALD_DATA_DIR, port HERALD_PG_PORT)
 *   HERALD_OPERATOR_PORT       /healthz /readyz /metrics (default 8082)
 *   HERALD_NAMESPACE           watch only this namespace (default: all namespaces)
 *   HERALD_LEASE_NAMESPACE     Lease namespace (default herald-system)
 *   HERALD_LEASE_NAME          Lease name (default herald-operator)
 *   HERALD_LEASE_DURATION_MS / HERALD_RENEW_DEADLINE_MS / HERALD_RETRY_PERIOD_MS   (15000 / 10000 / 2000)
 *   HERALD_OPERATOR_IDENTITY   this replica's Lease identity (default hostname-pid-random; POD_NAME if set)
 *   HERALD_OPERATOR_CONCURRENCY  Broadcasts reconciled at once (64)
 *   HERALD_OPERATOR_RESYNC_MS  every Broadcast reconciled at least this often (60000)
 *   HERALD_STATUS_REFRESH_MS   counts folded into status at most this often while sending (2000)
 *   HERALD_PROGRESS_POLL_MS    while sending, look this often even without a progress notification (30000)
 *   HERALD_MAX_YIELD_MS        longest a progress status write or an Event waits for new Broadcasts to be planned (10000)
 *   HERALD_BATCH_SIZE          delivery rows per pg-boss job (500)
 *   HERALD_SMS_PRICE_PER_SEGMENT / HERALD_PRICE_CURRENCY   dry-run cost estimate (0.0040 / USD)
 *   HERALD_CLOCK_FILE          tests: the operator's clock reads this file (lib/clock.ts)
 *   HERALD_RECONCILE_RELEASES  true in the active region only: reconcile the workers' Release (herald-system/workers)
 *   LOG_LEVEL
 * SIGTERM or SIGINT: finish reconciles in flight, release the Lease, exit 0.
 */
import { z } from 'zod';
import { clockFromEnv } from '../lib/clock.js';
import { exitOnUnhandled } from '../lib/crash.js';
import { loadConfig } from '../lib/config.js';
import { migrate } from '../lib/db/migrate.js';
import { createPool, startDatabase } from '../lib/db/postgres.js';
import { createLogger, redactUrl } from '../lib/logger.js';
import { startOperator } from './operator.js';

const optionalInt = z.coerce.number().int().positive().optional();
const operatorEnv = z.object({
  HERALD_OPERATOR_PORT: z.coerce.number().int().min(0).default(8082),
  HERALD_NAMESPACE: z.string().min(1).optional(),
  HERALD_LEASE_NAMESPACE: z.string().min(1).default('herald-system'),
  HERALD_LEASE_NAME: z.string().min(1).default('herald-operator'),
  HERALD_LEASE_DURATION_MS: optionalInt,
  HERALD_RENEW_DEADLINE_MS: optionalInt,
  HERALD_RETRY_PERIOD_MS: optionalInt,
  HERALD_OPERATOR_IDENTITY: z.string().min(1).optional(),
  POD_NAME: z.string().min(1).optional(),
  HERALD_OPERATOR_CONCURRENCY: optionalInt,
  HERALD_OPERATOR_RESYNC_MS: optionalInt,
  HERALD_STATUS_REFRESH_MS: optionalInt,
  HERALD_PROGRESS_POLL_MS: optionalInt,
  HERALD_MAX_YIELD_MS: optionalInt,
  HERALD_BATCH_SIZE: optionalInt,
  HERALD_SMS_PRICE_PER_SEGMENT: z.string().regex(/^\d+(\.\d{1,6})?$/).optional(),
  HERALD_PRICE_CURRENCY: z.string().min(1).optional(),
  HERALD_RECONCILE_RELEASES: z.enum(['true', 'false']).default('false'),
});

async function main(): Promise<void> {
  const log = createLogger('operator');
  exitOnUnhandled(log);
  const config = loadConfig();
  const parsed = operatorEnv.safeParse(process.env);
  if (!parsed.success) throw new Error(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const env = parsed.data;

  const database = await startDatabase({ databaseUrl: config.databaseUrl, dataDir: config.HERALD_DATA_DIR, port: config.HERALD_PG_PORT, log });
  log.info({ database: redactUrl(database.url), embedded: database.embedded }, 'database');
  const migrations = createPool(database.url, 1, 'migrate');
  await migrate(migrations);
  await migrations.end();

  const operator = await startOperator({
    databaseUrl: database.url,
    clock: clockFromEnv(),
    log,
    namespace: env.HERALD_NAMESPACE,
    leaseNamespace: env.HERALD_LEASE_NAMESPACE,
    leaseName: env.HERALD_LEASE_NAME,
    identity: env.HERALD_OPERATOR_IDENTITY ?? env.POD_NAME,
    leaseDurationMs: env.HERALD_LEASE_DURATION_MS,
    renewDeadlineMs: env.HERALD_RENEW_DEADLINE_MS,
    retryPeriodMs: env.HERALD_RETRY_PERIOD_MS,
    port: env.HERALD_OPERATOR_PORT,
    concurrency: env.HERALD_OPERATOR_CONCURRENCY,
    resyncMs: env.HERALD_OPERATOR_RESYNC_MS,
    releases: env.HERALD_RECONCILE_RELEASES === 'true' ? {} : undefined,
    settings: {
      ...(env.HERALD_STATUS_REFRESH_MS ? { statusRefreshMs: env.HERALD_STATUS_REFRESH_MS } : {}),
      ...(env.HERALD_PROGRESS_POLL_MS ? { progressPollMs: env.HERALD_PROGRESS_POLL_MS } : {}),
      ...(env.HERALD_MAX_YIELD_MS ? { maxYieldMs: env.HERALD_MAX_YIELD_MS } : {}),
      ...(env.HERALD_BATCH_SIZE ? { batchSize: env.HERALD_BATCH_SIZE } : {}),
      ...(env.HERALD_SMS_PRICE_PER_SEGMENT ? { pricePerSegment: env.HERALD_SMS_PRICE_PER_SEGMENT } : {}),
      ...(env.HERALD_PRICE_CURRENCY ? { currency: env.HERALD_PRICE_CURRENCY } : {}),
    },
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    operator
      .stop()
      .then(() => database.stop())
      .then(() => process.exit(0))
      .catch((err) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  createLogger('operator').fatal({ err }, 'operator failed to start');
  process.exit(1);
});
