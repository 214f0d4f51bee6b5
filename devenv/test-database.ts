import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createPool, type Pool } from '../lib/db/postgres.js';
import { migrate } from '../lib/db/migrate.js';
import { startBoss } from '../lib/queue.js';

/** A template name of this run's own, so runs side by side on one server never share or drop each other's. */
export const templateName = (): string => `herald_test_template_${process.pid}_${randomBytes(3).toString('hex')}`;

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/** Build the migrated template (Herald's schema and pg-boss's) that this run's test databases clone. */
export async function prepareTemplate(admin: Pool, template: string): Promise<void> {
  await admin.query(`CREATE DATABASE ${template}`);
  const url = withDatabase(connectionUrl(admin), template);
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

export async function dropTemplate(admin: Pool, template: string): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
}

/** A fresh, migrated database of this test's own, cloned from the run's template (global setup provides its name). */
export async function createTestDatabase(serverUrl: string, poolMax = 10): Promise<TestDatabase> {
  const name = `herald_t_${randomBytes(6).toString('hex')}`;
  const admin = createPool(serverUrl, 1, 'test-admin');
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
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
