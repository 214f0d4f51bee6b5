import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';

/**
 * The api's own hot queries use their indexes (migration 003_api), shown with EXPLAIN
 * over a table big enough for the planner to care.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  const q = (sql: string) => db.pool.query(sql);
  await q(`INSERT INTO tenants (id, name) VALUES ('big', 'Big'), ('small', 'Small')`);
  await q(`INSERT INTO broadcasts (id, tenant_id, channel, message_text)
           SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'big', 'sms', 'x' FROM generate_series(1, 20) i`);
  await q(`INSERT INTO occurrences (id, broadcast_id, key, scheduled_at)
           SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'once', now()
             FROM generate_series(1, 20) i`);
  await q(`INSERT INTO deliveries (occurrence_id, broadcast_id, tenant_id, channel, recipient_key, address, batch_no, status, due_at, expires_at)
           SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(1 + i % 20), 12, '0'))::uuid, ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 20), 12, '0'))::uuid,
                  'big', 'sms', 'p:' || i, '+1206' || (2000000 + i), 0,
                  (ARRAY['sent', 'delivered', 'failed', 'queued'])[1 + i % 4], now(), now() + interval '6 hours'
             FROM generate_series(1, 100000) i`);
  await q(`INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source)
           SELECT CASE WHEN i % 10 = 0 THEN 'small' ELSE 'big' END, '+1206' || (3000000 + i), now() - i * interval '1 minute', 'api'
             FROM generate_series(1, 20000) i`);
  await q(`INSERT INTO contacts (tenant_id, phone, external_id)
           SELECT 'big', '+1206' || (4000000 + i), 'ext-' || i FROM generate_series(1, 20000) i`);
  await q(`INSERT INTO api_keys (tenant_id, prefix, key_hash)
           SELECT 'big', lpad(to_hex(i), 12, '0'), md5(i::text) || md5(i::text) FROM generate_series(1, 5000) i`);
  await q('ANALYZE');
});
afterAll(async () => db?.drop());

async function plan(sql: string, params: unknown[]): Promise<string> {
  const { rows } = await db.pool.query(`EXPLAIN ${sql}`, params);
  const text = rows.map((r) => r['QUERY PLAN']).join('\n');
  console.log(`${sql}\n${text}`);
  return text;
}

describe('api hot queries use their indexes', () => {
  it('a page of a broadcast’s deliveries, filtered by status', async () => {
    const p = await plan(
      `SELECT id FROM deliveries WHERE broadcast_id = $1 AND tenant_id = $2 AND status = $3 AND (status, id) > ($3, $4::bigint)
        ORDER BY status, id LIMIT 51`,
      ['00000000-0000-4000-8000-000000000003', 'big', 'failed', 500],
    );
    expect(p).toContain('deliveries_broadcast_status_id');
    expect(p).not.toMatch(/\bSort\b/);
  });

  it('a page of a broadcast’s deliveries, every status', async () => {
    const p = await plan(
      `SELECT id FROM deliveries WHERE broadcast_id = $1 AND tenant_id = $2 AND (status, id) > ($3, $4::bigint) ORDER BY status, id LIMIT 51`,
      ['00000000-0000-4000-8000-000000000003', 'big', 'delivered', 0],
    );
    expect(p).toContain('deliveries_broadcast_status_id');
    expect(p).not.toMatch(/\bSort\b/);
  });

  it('a page of a tenant’s opt-outs, newest first', async () => {
    const p = await plan(
      `SELECT phone FROM opt_outs WHERE tenant_id = $1 AND (opted_out_at, phone) < ($2::timestamptz, $3::text)
        ORDER BY opted_out_at DESC, phone DESC LIMIT 51`,
      ['small', new Date(), '+2'],
    );
    expect(p).toContain('opt_outs_tenant_time');
    expect(p).not.toMatch(/\bSort\b/);
  });

  it('a device token naming its contact by external id', async () => {
    const p = await plan('SELECT id FROM contacts WHERE tenant_id = $1 AND external_id = $2 LIMIT 2', ['big', 'ext-77']);
    expect(p).toContain('contacts_external_id');
  });

  it('an API key found by its prefix', async () => {
    const p = await plan('SELECT id, tenant_id, key_hash, revoked_at FROM api_keys WHERE prefix = $1', ['0123456789ab']);
    expect(p).toContain('api_keys_prefix_key');
  });
});
