import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/database.js';
import { migrate } from './migrate.js';
import pg from 'pg';
import { clientClass, createPool, planEachTime, PreparingClient, type PoolClient } from './postgres.js';

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
});

describe('prepared statements', () => {
  const preparedOn = async (client: PoolClient) =>
    (await client.query('SELECT statement FROM pg_prepared_statements')).rows.map((r: { statement: string }) => r.statement);

  it('a parameterised query is prepared once per connection and runs again by name', async () => {
    const pool = createPool(db.url, 1, 'prepare-test');
    try {
      const text = 'SELECT $1::int + 1 AS n';
      expect((await pool.query(text, [1])).rows[0].n).toBe(2);
      expect((await pool.query(text, [41])).rows[0].n).toBe(42);
      const client = await pool.connect();
      try {
        expect(await preparedOn(client)).toEqual([text]);
        // Without parameters a query goes as before (simple protocol: several statements allowed).
        await client.query('SELECT 1; SELECT 2');
        expect(await preparedOn(client)).toEqual([text]);
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  });

  it('a connection keeps at most 256 prepared; beyond, queries still run unnamed', async () => {
    const client = new PreparingClient({ connectionString: db.url });
    await client.connect();
    try {
      for (let i = 0; i < 300; i++) expect((await client.query(`SELECT $1::int AS v${i}`, [i])).rows[0][`v${i}`]).toBe(i);
      expect((await preparedOn(client as unknown as PoolClient)).length).toBe(256);
    } finally {
      await client.end();
    }
  });

  it('a value pg cannot send fails its query only; the statement still runs on that connection', async () => {
    const pool = createPool(db.url, 1, 'prepare-test');
    try {
      const text = 'SELECT $1::jsonb AS j';
      expect((await pool.query(text, [{ a: 1 }])).rows[0].j).toEqual({ a: 1 });
      const client = await pool.connect();
      try {
        await expect(client.query(text, [{ a: 1n }])).rejects.toThrow(/BigInt/);
        expect((await client.query(text, [{ b: 2 }])).rows[0].j).toEqual({ b: 2 });
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  });

  it('planEachTime leaves a statement unnamed: planned with its values on every run', async () => {
    const client = new PreparingClient({ connectionString: db.url });
    await client.connect();
    try {
      await client.query(planEachTime('SELECT $1::int AS audience', [1]));
      expect(await preparedOn(client as unknown as PoolClient)).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it('HERALD_DB_PREPARED_STATEMENTS false keeps pg’s plain client (for poolers that multiplex transactions); nonsense is refused', () => {
    for (const off of ['false', 'FALSE', '0', 'no']) expect(clientClass({ HERALD_DB_PREPARED_STATEMENTS: off })).toBe(pg.Client);
    for (const on of [undefined, 'true', '1']) expect(clientClass({ HERALD_DB_PREPARED_STATEMENTS: on })).toBe(PreparingClient);
    expect(() => clientClass({ HERALD_DB_PREPARED_STATEMENTS: 'sometimes' })).toThrow(/HERALD_DB_PREPARED_STATEMENTS: "sometimes" is not true or false/);
  });
});
