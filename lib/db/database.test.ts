import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { migrate } from './migrate.js';
import pg from 'pg';
import { clientClass, createPool, planEachTime, PreparingClient, type Pool, type PoolClient } from './postgres.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
});
afterAll(async () => db?.drop());

describe('migrations', () => {
  it('are recorded and a second run applies nothing', async () => {
    const { rows } = await db.pool.query('SELECT version FROM herald_schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toContain('001_core');
    expect(await migrate(db.pool)).toEqual([]);
  });

  it('refuses a contact phone that is not E.164', async () => {
    await db.pool.query(`INSERT INTO tenants (id, name) VALUES ('t1', 'T1')`);
    await expect(db.pool.query(`INSERT INTO contacts (tenant_id, phone) VALUES ('t1', '555-1234')`)).rejects.toThrow(/contacts_phone_check/);
  });

  it('gives a tenant the free plan by default and refuses a plan that does not exist', async () => {
    await db.pool.query(`INSERT INTO tenants (id, name) VALUES ('t2', 'T2')`);
    const { rows } = await db.pool.query(
      `SELECT t.plan, p.api_requests_per_minute, p.fair_share_weight FROM tenants t JOIN tenant_plans p USING (plan) WHERE t.id = 't2'`,
    );
    expect(rows).toEqual([{ plan: 'free', api_requests_per_minute: 100, fair_share_weight: 1 }]);
    const plans = await db.pool.query('SELECT plan, api_requests_per_minute FROM tenant_plans ORDER BY api_requests_per_minute');
    expect(plans.rows).toEqual([
      { plan: 'free', api_requests_per_minute: 100 },
      { plan: 'standard', api_requests_per_minute: 300 }, { plan: 'pro', api_requests_per_minute: 1000 },
      // the synthetic load-test tenant's (migration 013)
      { plan: 'synthetic', api_requests_per_minute: 60000 },
    ]);
    await expect(db.pool.query(`UPDATE tenants SET plan = 'platinum' WHERE id = 't2'`)).rejects.toThrow(/tenants_plan_fkey/);
  });
});

describe('prepared statements', () => {
  const preparedOn = async (client: pg.ClientBase) =>
    (await client.query('SELECT statement FROM pg_prepared_statements')).rows.map((r: { statement: string }) => r.statement);

  /** A pool of one connection: what a pool query leaves on it, a client checked out afterwards sees. */
  async function withOneConnection(fn: (pool: Pool, client: () => Promise<PoolClient>) => Promise<void>): Promise<void> {
    const pool = createPool(db.url, 1, 'prepare-test');
    const held: PoolClient[] = [];
    try {
      await fn(pool, async () => {
        const c = await pool.connect();
        held.push(c);
        return c;
      });
    } finally {
      for (const c of held) c.release();
      await pool.end();
    }
  }

  async function withClient(fn: (client: PreparingClient) => Promise<void>): Promise<void> {
    const client = new PreparingClient({ connectionString: db.url });
    await client.connect();
    try {
      await fn(client);
    } finally {
      await client.end();
    }
  }

  it('a parameterised query is prepared once per connection and runs again by name', () =>
    withOneConnection(async (pool, checkout) => {
      const text = 'SELECT $1::int + 1 AS n';
      expect((await pool.query(text, [1])).rows[0].n).toBe(2);
      expect((await pool.query(text, [41])).rows[0].n).toBe(42);
      const client = await checkout();
      expect(await preparedOn(client)).toEqual([text]);
      // Without parameters a query goes as before (simple protocol: several statements allowed).
      await client.query('SELECT 1; SELECT 2');
      expect(await preparedOn(client)).toEqual([text]);
    }));

  it('a connection keeps at most 256 prepared; beyond, queries still run unnamed', () =>
    withClient(async (client) => {
      for (let i = 0; i < 300; i++) expect((await client.query(`SELECT $1::int AS v${i}`, [i])).rows[0][`v${i}`]).toBe(i);
      expect((await preparedOn(client)).length).toBe(256);
    }));

  it('a value pg cannot send fails its query only; the statement still runs on that connection', () =>
    withOneConnection(async (pool, checkout) => {
      const text = 'SELECT $1::jsonb AS j';
      expect((await pool.query(text, [{ a: 1 }])).rows[0].j).toEqual({ a: 1 });
      const client = await checkout();
      await expect(client.query(text, [{ a: 1n }])).rejects.toThrow(/BigInt/);
      expect((await client.query(text, [{ b: 2 }])).rows[0].j).toEqual({ b: 2 });
    }));

  it('planEachTime leaves a statement unnamed: planned with its values on every run', () =>
    withClient(async (client) => {
      await client.query(planEachTime('SELECT $1::int AS audience', [1]));
      expect(await preparedOn(client)).toEqual([]);
    }));

  it('HERALD_DB_PREPARED_STATEMENTS false keeps pg’s plain client (for poolers that multiplex transactions); nonsense is refused', () => {
    for (const off of ['false', 'FALSE', '0', 'no']) expect(clientClass({ HERALD_DB_PREPARED_STATEMENTS: off })).toBe(pg.Client);
    for (const on of [undefined, 'true', '1']) expect(clientClass({ HERALD_DB_PREPARED_STATEMENTS: on })).toBe(PreparingClient);
    expect(() => clientClass({ HERALD_DB_PREPARED_STATEMENTS: 'sometimes' })).toThrow(/HERALD_DB_PREPARED_STATEMENTS: "sometimes" is not true or false/);
  });
});
