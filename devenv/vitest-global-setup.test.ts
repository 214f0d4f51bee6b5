import { afterAll, describe, expect, inject, it } from 'vitest';
import type { TestProject } from 'vitest/node';
import { createPool } from '../lib/db/postgres.js';
import setup from './vitest-global-setup.js';

/** Two test runs side by side on one DATABASE_URL server (this run's own server stands in for it). */
const server = inject('databaseUrl');
const admin = createPool(server, 1, 'side-by-side');
afterAll(() => admin.end());

async function run(): Promise<{ template: string; teardown: () => Promise<void> }> {
  const provided = new Map<string, unknown>();
  const saved = process.env.DATABASE_URL;
  process.env.DATABASE_URL = server;
  try {
    const teardown = await setup({ provide: (k: string, v: unknown) => provided.set(k, v) } as unknown as TestProject);
    return { template: provided.get('templateDatabase') as string, teardown };
  } finally {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  }
}

const templates = async (names: string[]) =>
  (await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname', [names])).rows.map((r) => r.datname);

describe('vitest global setup with DATABASE_URL', { timeout: 120_000 }, () => {
  it('gives each run a template of its own; a run that ends drops only its own', async () => {
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.template).not.toBe(b.template);
    expect(await templates([a.template, b.template])).toEqual([a.template, b.template].sort());
    await a.teardown();
    expect(await templates([a.template, b.template])).toEqual([b.template]);
    // The other run still clones its template.
    await admin.query(`CREATE DATABASE side_by_side_clone TEMPLATE ${b.template}`);
    await admin.query('DROP DATABASE side_by_side_clone');
    await b.teardown();
    expect(await templates([a.template, b.template])).toEqual([]);
  });
});
