import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { createPool, type Pool } from '../../lib/db/postgres.js';
import { makeTenant, startTestApi, type TestApi } from './test-support.js';

/**
 * A tenant's API allowance (its plan's requests a minute) holds across api replicas, and
 * an API key does only what its scopes allow. Each case performs the abuse over HTTP.
 */
let db: TestDatabase;
let replicaA: TestApi;
let replicaB: TestApi;
let poolB: Pool;
const clock = new ManualClock('2026-05-01T12:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  // Two api processes' worth of state: each its own app and pool, one database.
  replicaA = await startTestApi(db.pool, clock);
  poolB = createPool(db.url, 4, 'replica-b');
  replicaB = await startTestApi(poolB, clock);
  // A plan of 5 requests a minute, so the test reaches the limit in a few requests.
  await db.pool.query(`INSERT INTO tenant_plans (plan, api_requests_per_minute, fair_share_weight) VALUES ('tiny', 5, 1)`);
});
afterAll(async () => {
  await replicaA?.stop();
  await replicaB?.stop();
  await poolB?.end();
  await db?.drop();
});

describe('per-tenant API allowance by plan', () => {
  it('the sixth request in a minute is refused with 429 and Retry-After, whichever replica it reaches, and does nothing', async () => {
    const t = await makeTenant(replicaA, 'small-church', undefined, 'tiny');
    for (let i = 0; i < 5; i++) {
      const api = i % 2 === 0 ? replicaA : replicaB;
      expect((await api.request('GET', '/v1/opt-outs', { token: t.key })).status).toBe(200);
    }
    const over = await replicaB.request('POST', '/v1/opt-outs', { token: t.key, json: { phone: '+12025550111' } });
    expect(over.status).toBe(429);
    // 5 a minute refill one request every 12 seconds.
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(11);
    expect(Number(over.headers.get('retry-after'))).toBeLessThanOrEqual(12);
    expect(over.body.error.reason).toMatch(/over its plan's API requests a minute/);
    expect((await db.pool.query(`SELECT 1 FROM opt_outs WHERE tenant_id = 'small-church'`)).rowCount).toBe(0);
    expect((await replicaA.request('GET', '/v1/opt-outs', { token: t.key })).status).toBe(429);
  });

  it("one tenant over its allowance leaves another tenant's untouched", async () => {
    const busy = await makeTenant(replicaA, 'busy', undefined, 'tiny');
    const quiet = await makeTenant(replicaA, 'quiet', undefined, 'tiny');
    for (let i = 0; i < 7; i++) await replicaA.request('GET', '/v1/opt-outs', { token: busy.key });
    expect((await replicaA.request('GET', '/v1/opt-outs', { token: busy.key })).status).toBe(429);
    expect((await replicaB.request('GET', '/v1/opt-outs', { token: quiet.key })).status).toBe(200);
  });

  it('the allowance refills on the database clock: once the wait has passed, a request is admitted again', async () => {
    const t = await makeTenant(replicaA, 'refill', undefined, 'tiny');
    for (let i = 0; i < 5; i++) await replicaA.request('GET', '/v1/opt-outs', { token: t.key });
    expect((await replicaA.request('GET', '/v1/opt-outs', { token: t.key })).status).toBe(429);
    // Thirteen seconds of the database clock, without the test waiting them.
    await db.pool.query(`UPDATE api_allowances SET updated_at = updated_at - interval '13 seconds' WHERE tenant_id = 'refill'`);
    expect((await replicaB.request('GET', '/v1/opt-outs', { token: t.key })).status).toBe(200);
    expect((await replicaB.request('GET', '/v1/opt-outs', { token: t.key })).status).toBe(429);
  });

  it('the plans are the ones REQUIREMENTS.md names (free 100, standard 300, pro 1,000 a minute), and a new tenant is on free', async () => {
    const { rows } = await db.pool.query(`SELECT plan, api_requests_per_minute AS n FROM tenant_plans WHERE plan IN ('free', 'standard', 'pro') ORDER BY n`);
    expect(rows).toEqual([{ plan: 'free', n: 100 }, { plan: 'standard', n: 300 }, { plan: 'pro', n: 1000 }]);
    const created = await replicaA.admin('POST', '/admin/tenants', { id: 'newcomer', name: 'Newcomer' });
    expect(created.body.plan).toBe('free');
  });
});

describe('scoped API keys', () => {
  let tenant: { id: string; key: string };
  let deviceKey: { id: number; key: string };

  beforeAll(async () => {
    tenant = await makeTenant(replicaA, 'campus');
    await replicaA.request('POST', '/v1/contacts', { token: tenant.key, json: [{ phone: '+12025550143', name: 'A student' }] });
    const k = await replicaA.admin('POST', '/admin/tenants/campus/api-keys', { scopes: ['devices:write'] });
    expect(k.status).toBe(201);
    expect(k.body.scopes).toEqual(['devices:write']);
    deviceKey = { id: k.body.id, key: k.body.key };
  });

  it('a device-registration key registers a device but cannot read or change contacts, broadcasts or opt-outs', async () => {
    expect((await replicaA.request('POST', '/v1/device-tokens', { token: deviceKey.key, json: { token: 'campus-device-1:APA91b', tags: ['cs101'] } })).status).toBe(201);
    const read = await replicaA.request('GET', '/v1/contacts', { token: deviceKey.key });
    expect(read.status).toBe(403);
    expect(read.body.error).toEqual({ field: 'authorization', reason: 'this API key lacks the scope contacts:read' });
    expect((await replicaA.request('POST', '/v1/contacts', { token: deviceKey.key, json: [{ phone: '+12025550144' }] })).status).toBe(403);
    expect((await replicaA.request('GET', '/v1/broadcasts', { token: deviceKey.key })).status).toBe(403);
    expect((await replicaA.request('GET', '/v1/opt-outs', { token: deviceKey.key })).status).toBe(403);
    expect((await db.pool.query(`SELECT 1 FROM contacts WHERE tenant_id = 'campus'`)).rowCount).toBe(1);
    // The tenant's full key still reads them.
    expect((await replicaA.request('GET', '/v1/contacts', { token: tenant.key })).status).toBe(200);
  });

  it('a rotated key keeps exactly the scopes of the key it replaces', async () => {
    const r = await replicaA.admin('POST', `/admin/tenants/campus/api-keys/${deviceKey.id}/rotate`, { grace_seconds: 0 });
    expect(r.status).toBe(201);
    expect(r.body.scopes).toEqual(['devices:write']);
    expect((await replicaA.request('GET', '/v1/contacts', { token: r.body.key })).status).toBe(403);
  });

  it('unknown, repeated or no scopes are refused with the field named; the database refuses an unknown scope too', async () => {
    const unknown = await replicaA.admin('POST', '/admin/tenants/campus/api-keys', { scopes: ['contacts:read', 'admin'] });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.field).toBe('scopes.1');
    const repeated = await replicaA.admin('POST', '/admin/tenants/campus/api-keys', { scopes: ['devices:write', 'devices:write'] });
    expect(repeated.body.error).toMatchObject({ field: 'scopes', reason: 'each scope once' });
    expect((await replicaA.admin('POST', '/admin/tenants/campus/api-keys', { scopes: [] })).body.error.field).toBe('scopes');
    await expect(db.pool.query(`UPDATE api_keys SET scopes = ARRAY['admin'] WHERE id = $1`, [deviceKey.id])).rejects.toThrow(/check constraint/);
  });
});
