import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createPool, startDatabase } from '../lib/db/postgres.js';
import { migrate } from '../lib/db/migrate.js';
import { startBoss } from '../lib/queue.js';

// The migration Job of a rollout: Herald's schema, then pg-boss's, then exit.
const config = loadConfig();
const log = createLogger('migrate');
const db = await startDatabase({ databaseUrl: config.databaseUrl, dataDir: config.HERALD_DATA_DIR, port: config.HERALD_PG_PORT, log });
const pool = createPool(db.url, 2, 'migrate');
const applied = await migrate(pool);
const boss = await startBoss(db.url, { supervise: false });
await boss.stop({ graceful: false });
await pool.end();
await db.stop();
log.info({ applied }, applied.length ? 'migrations applied' : 'schema up to date');
