import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/database.js';
import { migrate } from './migrate.js';

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
