import { randomBytes } from 'node:crypto';
import { createPool, type Pool } from '../lib/db/postgres.js';
import { migrate } from '../lib/db/migrate.js';
import { startBoss } from '../lib/queue.js';

export const TEMPLATE_DB = 'herald_test_template';

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** Build the migrated template (Herald's schema and pg-boss's) that test databases clone. */
export async function prepareTemplate(admin: Pool): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  const url = withDatabase(connectionUrl(admin), TEMPLATE_DB);
  const pool = createPool(url, 2, 'template');
  await migrate(pool);
  const boss = await startBoss(url, { supervise: false, schedule: false });
  await boss.stop({ graceful: false });
  await pool.end();
}

function connectionUrl(pool: Pool): string {
  const o = (pool as unknown as { options: { connectionString: string } }).options;
  return o.connectionString;
}

export interface TestDatabase {
  url: string;
  pool: Pool;
  drop(): Promise<void>;
}

/** A fresh, migrated database of this test's own, cloned from the template. */
export async function createTestDatabase(serverUrl: string, poolMax = 10): Promise<TestDatabase> {
  const name = `herald_t_${randomBytes(6).toString('hex')}`;
  const admin = createPool(serverUrl, 1, 'test-admin');
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`);
  const url = withDatabase(serverUrl, name);
  const pool = createPool(url, poolMax, 'test');
  return {
    url,
    pool,
    drop: async () => {
      await pool.end();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
