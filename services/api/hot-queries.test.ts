import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { explain } from '../../devenv/explain.js';
import { API_KEY_BY_PREFIX } from './auth.js';
import { WRITE_RECEIPTS } from '../../core/delivery/receipt-writer.js';
import { CONTACT_BY_EXTERNAL_ID } from './routes/device-tokens.js';
import { OPT_OUTS_PAGE } from './routes/queries.js';
import { DELIVERIES_PAGE } from '../../core/delivery/tenant-reads.js';
import { INSERT_EVENT } from '../../core/delivery/receipts.js';

/**
 * The api's own hot queries use their indexes (migration 003_api), shown with EXPLAIN
 * of the statements as the routes send them, over a table big enough for the planner to care.
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
  await q(`INSERT INTO deliveries (occurrence_id, broadcast_id, tenant_id, channel, recipient_key, address, batch_no, status, due_at, expires_at,
                                   provider_message_id)
           SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(1 + i % 20), 12, '0'))::uuid, ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 20), 12, '0'))::uuid,
                  'big', 'sms', 'p:' || i, '+1206' || (2000000 + i), 0,
                  (ARRAY['sent', 'delivered', 'failed', 'queued'])[1 + i % 4], now(), now() + interval '6 hours',
                  CASE WHEN i % 4 < 2 THEN 'pm-' || i END
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

const plan = (sql: string, params: unknown[]) => explain(db.pool, sql, params);

describe('api hot queries use their indexes', () => {
  it('a page of a broadcast’s deliveries, filtered by status', async () => {
    const p = await plan(DELIVERIES_PAGE, ['00000000-0000-4000-8000-000000000003', 'big', 'failed', 'failed', 500, 51]);
    expect(p).toContain('deliveries_broadcast_status_id');
    expect(p).not.toMatch(/\bSort\b/);
  });

  it('a page of a broadcast’s deliveries, every status, first and later pages', async () => {
    for (const cursor of [[null, 0], ['delivered', 500]]) {
      const p = await plan(DELIVERIES_PAGE, ['00000000-0000-4000-8000-000000000003', 'big', null, ...cursor, 51]);
      expect(p).toContain('deliveries_broadcast_status_id');
      expect(p).not.toMatch(/\bSort\b/);
    }
  });

  it('a page of a tenant’s opt-outs, newest first, first and later pages', async () => {
    for (const cursor of [[null, null], [new Date(), '+2']]) {
      const p = await plan(OPT_OUTS_PAGE, ['small', ...cursor, 51]);
      expect(p).toContain('opt_outs_tenant_time');
      expect(p).not.toMatch(/\bSort\b/);
    }
  });

  it('a device token naming its contact by external id', async () => {
    const p = await plan(CONTACT_BY_EXTERNAL_ID, ['big', 'ext-77']);
    expect(p).toContain('contacts_external_id');
  });

  it('an API key found by its prefix', async () => {
    const p = await plan(API_KEY_BY_PREFIX, ['0123456789ab']);
    expect(p).toContain('api_keys_prefix_key');
  });

  it('a receipt finding its delivery by the provider’s message id, one at a time and in bulk', async () => {
    const at = new Date();
    const one = await plan(INSERT_EVENT, ['ev-1', 'message.finalized', null, 'pm-42', '{}', at, at]);
    const bulk = await plan(WRITE_RECEIPTS, [['ev-1'], ['message.finalized'], ['pm-42'], ['{}'], [at], [at], [true]]);
    for (const p of [one, bulk]) {
      expect(p).toContain('deliveries_provider_id');
      expect(p).not.toMatch(/Seq Scan on deliveries/);
    }
  });
});
