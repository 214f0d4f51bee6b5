import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { makeTenant, seedBroadcast, startTestApi, type TestApi } from './test-support.js';

/**
 * A key of tenant A can never read or change tenant B's rows: for each resource, B's
 * key is pointed at A's rows by every means the api offers, and A's rows are checked
 * unchanged afterwards.
 */
let db: TestDatabase;
let api: TestApi;
let a: { id: string; key: string };
let b: { id: string; key: string };
let aContactId: number;
let aBroadcast: string;
const clock = new ManualClock('2026-05-01T12:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, clock);
  a = await makeTenant(api, 'tenant-a');
  b = await makeTenant(api, 'tenant-b');
  await api.request('POST', '/v1/contacts', { token: a.key, json: [{ phone: '+12025550143', name: 'A person', external_id: 'ext-1', tags: ['a'] }] });
  aContactId = (await db.pool.query(`SELECT id FROM contacts WHERE tenant_id = 'tenant-a'`)).rows[0].id;
  await api.request('POST', '/v1/device-tokens', { token: a.key, json: { token: 'shared-token', contact_id: aContactId, tags: ['cs101'] } });
  await api.request('POST', '/v1/opt-outs', { token: a.key, json: { phone: '+12025550199' } });
  aBroadcast = (await seedBroadcast(db.pool, 'tenant-a', [{ address: '+12025550143', status: 'sent' }])).broadcastId;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

const asB = (method: string, path: string, json?: unknown) => api.request(method, path, { token: b.key, json });

describe('tenant isolation', () => {
  it('contacts: B cannot read, list, delete or overwrite A’s contact', async () => {
    expect((await asB('GET', `/v1/contacts/${aContactId}`)).status).toBe(404);
    expect((await asB('GET', '/v1/contacts')).body.items).toEqual([]);
    expect((await asB('DELETE', `/v1/contacts/${aContactId}`)).status).toBe(404);
    expect((await asB('DELETE', '/v1/contacts?phone=%2B12025550143')).status).toBe(404);
    // The same number uploaded by B is B's own contact; A's is untouched.
    const up = await asB('POST', '/v1/contacts', [{ phone: '+12025550143', name: 'B person', tags: ['b'] }]);
    expect(up.body).toMatchObject({ created: 1, updated: 0 });
    const { rows } = await db.pool.query(`SELECT tenant_id, name, tags FROM contacts WHERE phone = '+12025550143' ORDER BY tenant_id`);
    expect(rows).toEqual([
      { tenant_id: 'tenant-a', name: 'A person', tags: ['a'] },
      { tenant_id: 'tenant-b', name: 'B person', tags: ['b'] },
    ]);
    expect((await api.request('GET', `/v1/contacts/${aContactId}`, { token: a.key })).status).toBe(200);
  });

  it('device tokens: B cannot attach to A’s contact, replace or unregister A’s token', async () => {
    expect((await asB('POST', '/v1/device-tokens', { token: 'b-1', contact_id: aContactId })).status).toBe(404);
    expect((await asB('POST', '/v1/device-tokens', { token: 'b-1', contact_external_id: 'ext-1' })).status).toBe(404);
    const replace = await asB('POST', '/v1/device-tokens', { token: 'b-2', replaces: 'shared-token' });
    expect(replace.status).toBe(201);
    expect(replace.body.replaced_token_id).toBeNull();
    expect(replace.body.contact_id).toBeNull();
    expect((await asB('POST', '/v1/device-tokens/unregister', { token: 'shared-token' })).status).toBe(404);
    // Registering the same token string makes B's own row.
    const same = await asB('POST', '/v1/device-tokens', { token: 'shared-token', tags: ['b'] });
    expect(same.status).toBe(201);
    const { rows } = await db.pool.query(`SELECT tenant_id, active, tags, contact_id FROM device_tokens WHERE token = 'shared-token' ORDER BY tenant_id`);
    expect(rows).toEqual([
      { tenant_id: 'tenant-a', active: true, tags: ['cs101'], contact_id: aContactId },
      { tenant_id: 'tenant-b', active: true, tags: ['b'], contact_id: null },
    ]);
  });

  it('broadcasts and deliveries: B sees none of A’s', async () => {
    expect((await asB('GET', '/v1/broadcasts')).body.items).toEqual([]);
    expect((await asB('GET', `/v1/broadcasts/${aBroadcast}`)).status).toBe(404);
    expect((await asB('GET', `/v1/broadcasts/${aBroadcast}/deliveries`)).status).toBe(404);
    expect((await api.request('GET', `/v1/broadcasts/${aBroadcast}/deliveries`, { token: a.key })).body.items).toHaveLength(1);
  });

  it('opt-outs: B’s list holds only B’s, and B’s opt-out does not touch A’s list', async () => {
    expect((await asB('GET', '/v1/opt-outs')).body.items).toEqual([]);
    await asB('POST', '/v1/opt-outs', { phone: '+12025550143' });
    const aList = await api.request('GET', '/v1/opt-outs', { token: a.key });
    expect(aList.body.items.map((o: { phone: string }) => o.phone)).toEqual(['+12025550199']);
    const aContact = await api.request('GET', `/v1/contacts/${aContactId}`, { token: a.key });
    expect(aContact.body.opted_out).toBe(false);
  });

  it('API keys and tenants: only the admin credential reaches them', async () => {
    expect((await asB('GET', `/admin/tenants/${a.id}/api-keys`)).status).toBe(401);
    expect((await asB('POST', `/admin/tenants/${a.id}/api-keys`)).status).toBe(401);
    expect((await asB('GET', `/admin/tenants/${a.id}`)).status).toBe(401);
  });
});
