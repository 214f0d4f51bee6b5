import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startDatabase, createPool } from '../db/postgres.js';
import { prepareTemplate } from './database.js';

/**
 * One real PostgreSQL for the whole run (embedded unless DATABASE_URL is set);
 * every test file clones a migrated template into a database of its own.
 */
export default async function setup(project: TestProject) {
  const server = await startDatabase({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: join(process.cwd(), '.herald', 'test'),
    port: Number(process.env.HERALD_TEST_PG_PORT ?? 54339),
  });
  const pool = createPool(server.url, 2, 'test-setup');
  await prepareTemplate(pool);
  await pool.end();
  project.provide('databaseUrl', server.url);
  return async () => {
    await server.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}
