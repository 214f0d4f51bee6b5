import { loadConfig } from '../../lib/config.js';
import { exitOnUnhandled } from '../../lib/crash.js';
import { clockFromEnv } from '../../lib/clock.js';
import { createLogger, redactUrl } from '../../lib/logger.js';
import { createPool, startDatabase } from '../../lib/db/postgres.js';
import { migrate } from '../../lib/db/migrate.js';
import { createTelnyxProvider } from '../providers/telnyx.js';
import { createApiApp } from './app.js';
import { startHttpServer } from './server.js';
import { matchPendingReceipts } from '../../core/delivery/receipts.js';
import { SIMULATOR_TELNYX_API_KEY } from '../simulator/client.js';

/**
 * The api process: configuration, database (embedded unless DATABASE_URL), migrations,
 * the Koa app on HERALD_API_PORT, the late-receipt matcher, and a graceful SIGTERM:
 * stop accepting, finish requests in flight (HERALD_SHUTDOWN_GRACE_MS), close the pool.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('api');
  exitOnUnhandled(log);
  const clock = clockFromEnv();
  const db = await startDatabase({ databaseUrl: config.databaseUrl, dataDir: config.HERALD_DATA_DIR, port: config.HERALD_PG_PORT, log });
  const pool = createPool(db.url, config.HERALD_DB_POOL_MAX, 'api');
  const applied = await migrate(pool);
  log.info({ database: redactUrl(db.url), embedded: db.embedded, migrations: applied }, 'database ready');

  if (!config.adminToken) log.warn('HERALD_ADMIN_TOKEN is not set: the admin routes refuse every request');
  if (!config.telnyxPublicKey) log.warn('TELNYX_PUBLIC_KEY is not set: the Telnyx webhook refuses every event');
  // HELP replies go out through the same Telnyx adapter as broadcasts (the simulator unless credentials are given).
  const replyToHelp =
    config.telnyxApiKey || config.TELNYX_BASE_URL
      ? createTelnyxProvider({ apiKey: config.telnyxApiKey ?? SIMULATOR_TELNYX_API_KEY, baseURL: config.TELNYX_BASE_URL, log })
      : undefined;

  const app = createApiApp({
    pool,
    clock,
    log,
    adminToken: config.adminToken,
    telnyxPublicKey: config.telnyxPublicKey,
    replyToHelp,
  });
  const server = await startHttpServer(app, config.HERALD_API_PORT);
  log.info({ port: server.port }, 'api listening');

  // Imports staged by a process that stopped (or by another replica) are picked up here.
  app.imports.kick();
  let matching = false;
  const matcher = setInterval(() => {
    app.imports.kick();
    if (matching) return;
    matching = true;
    matchPendingReceipts(pool, clock)
      .then((n) => n > 0 && log.info({ matched: n }, 'late receipts matched'))
      .catch((err) => log.warn({ err }, 'late receipt matching failed'))
      .finally(() => {
        matching = false;
      });
  }, 5_000);

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'shutting down: draining requests');
    clearInterval(matcher);
    const { drained } = await server.stop(config.HERALD_SHUTDOWN_GRACE_MS);
    await pool.end().catch(() => {});
    if (db.embedded) await db.stop().catch(() => {});
    log.info({ drained }, 'api stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  createLogger('api').fatal({ err }, 'api failed to start');
  process.exit(1);
});
