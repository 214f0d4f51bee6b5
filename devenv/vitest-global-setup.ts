import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { startDatabase, createPool } from '../lib/db/postgres.js';
import { prepareTemplate } from './test-database.js';
import { freePort } from './ports.js';

/**
 * One real PostgreSQL for the whole run (embedded unless DATABASE_URL is set);
 * every test file clones a migrated template into a database of its own. Each
 * run gets its own data directory and port, so runs side by side never collide.
 */
export default async function setup(project: TestProject) {
  const dataDir = join(process.cwd(), '.herald', 'test', `${process.pid}-${randomBytes(3).toString('hex')}`);
  const server = await startDatabase({
    databaseUrl: process.env.DATABASE_URL,
    dataDir,
    port: await freePort(),
  });
  const pool = createPool(server.url, 2, 'test-setup');
  await prepareTemplate(pool);
  await pool.end();
  project.provide('databaseUrl', server.url);
  return async () => {
    await server.stop();
    if (server.embedded) rmSync(dataDir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}
