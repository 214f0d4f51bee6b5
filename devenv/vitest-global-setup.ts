import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { startDatabase, createPool } from '../lib/db/postgres.js';
import { dropTemplate, prepareTemplate, templateName } from './test-database.js';
import { freePort } from './ports.js';

/**
 * One real PostgreSQL for the whole run (embedded unless DATABASE_URL is set);
 * every test file clones a migrated template into a database of its own. Each
 * run gets its own data directory, port and template database (named for the run,
 * dropped at its end), so runs side by side never collide, on DATABASE_URL's server too.
 */
export default async function setup(project: TestProject) {
  const dataDir = join(process.cwd(), '.herald', 'test', `${process.pid}-${randomBytes(3).toString('hex')}`);
  const server = await startDatabase({
    databaseUrl: process.env.DATABASE_URL,
    dataDir,
    port: await freePort(),
  });
  const template = templateName();
  const pool = createPool(server.url, 2, 'test-setup');
  await prepareTemplate(pool, template);
  project.provide('databaseUrl', server.url);
  project.provide('templateDatabase', template);
  return async () => {
    await dropTemplate(pool, template).catch(() => {});
    await pool.end();
    await server.stop();
    if (server.embedded) rmSync(dataDir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    /** This run's migrated template database (devenv/test-database.ts). */
    templateDatabase: string;
  }
}
