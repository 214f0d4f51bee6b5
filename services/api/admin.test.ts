import { createHash } from 'node:crypto';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ADMIN_TOKEN, makeTenant, startTestApi, type TestApi } from './test-support.js';

let db: TestDatabase;
let api: TestApi;
const clock = new ManualClock('2026-03-01T12:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, clock);
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

describe('admin credential', () => {
  it('is required on every admin route, compared exactly', async () => {
    for (const [method, path] of [['GET', '/admin/tenants'], ['POST', '/admin/tenants'], ['POST', '/admin/tenants/x/api-keys']] as const) {
      const none = await api.request(method, path);
      expect(none.status).toBe(401);
      expect(none.body.error.field).toBe('authorization');
      expect((await api.request(method, path, { token: `${ADMIN_TOKEN}x` })).status).toBe(401);
      expect((await api.request(method, path, { token: ADMIN_TOKEN.slice(0, -1) })).status).toBe(401);
    }
    expect((await api.admin('GET', '/admin/tenants')).status).toBe(200);
  });

  it('is refused to everyone when no admin token is configured', async () => {
    const other = await startTestApi(db.pool, clock, { adminToken: undefined });
    try {
      const r = await other.request('GET', '/admin/tenants', { token: 'anything' });
      expect(r.status).toBe(503);
    } finally {
      await other.stop();
    }
  });

  it('is not a tenant key, and a tenant key is not an admin credential', async () => {
    const t = await makeTenant(api, 'cred-check');
    expect((await api.request('GET', '/v1/contacts', { token: ADMIN_TOKEN })).status).toBe(401);
    expect((await api.request('GET', '/admin/tenants', { token: t.key })).status).toBe(401);
  });
});

describe('tenants', () => {
  it('are created with validated fields and listed with keyset pagination', async () => {
    const r = await api.admin('POST', '/admin/tenants', {
      id: 'grace-church',
      name: 'Grace Church',
      default_time_zone: 'america/new_york',
      quiet_hours_start: '21:00',
      quiet_hours_end: '08:30',
      sms_per_second: 5,
      push_per_second: 200,
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      id: 'grace-church', default_time_zone: 'America/New_York', quiet_hours_start: '21:00', quiet_hours_end: '08:30',
      sms_per_second: 5, push_per_second: 200,
    });
    expect((await api.admin('POST', '/admin/tenants', { id: 'grace-church', name: 'again' })).status).toBe(409);

    for (const id of ['t-a', 't-b', 't-c']) expect((await api.admin('POST', '/admin/tenants', { id, name: id })).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: any } = await api.admin('GET', `/admin/tenants?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((t: { id: string }) => t.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toEqual(expect.arrayContaining(['grace-church', 't-a', 't-b', 't-c']));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('refuses bad input with a 4xx naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ id: 'Bad_Slug', name: 'x' }, 'id'],
      [{ id: 'ok-1', name: '' }, 'name'],
      [{ id: 'ok-1', name: 'x', default_time_zone: 'Mars/Olympus' }, 'default_time_zone'],
      [{ id: 'ok-1', name: 'x', default_time_zone: '+01:00' }, 'default_time_zone'],
      [{ id: 'ok-1', name: 'x', quiet_hours_start: '25:00', quiet_hours_end: '07:00' }, 'quiet_hours_start'],
      [{ id: 'ok-1', name: 'x', quiet_hours_start: '21:00' }, 'quiet_hours_end'],
      [{ id: 'ok-1', name: 'x', sms_per_second: -1 }, 'sms_per_second'],
      [{ id: 'ok-1', name: 'x', push_per_second: 'fast' }, 'push_per_second'],
      [{ id: 'ok-1', name: 'x', colour: 'blue' }, 'colour'],
      [[{ id: 'ok-1', name: 'x' }], 'body'],
    ];
    for (const [body, field] of cases) {
      const r = await api.admin('POST', '/admin/tenants', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      if (field) expect(r.body.error.field, JSON.stringify(body)).toBe(field);
      expect(r.body.error.reason).toEqual(expect.any(String));
    }
    const bad = await api.request('POST', '/admin/tenants', { token: ADMIN_TOKEN, body: '{not json', contentType: 'application/json' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ field: 'body', reason: 'malformed JSON' });
    expect((await api.admin('GET', '/admin/tenants/nope')).status).toBe(404);
  });

  it('are updated in part', async () => {
    await api.admin('POST', '/admin/tenants', { id: 'patch-me', name: 'P', quiet_hours_start: '22:00', quiet_hours_end: '07:00' });
    const r = await api.admin('PATCH', '/admin/tenants/patch-me', { default_time_zone: 'Europe/Berlin', quiet_hours_start: null, quiet_hours_end: null });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'P', default_time_zone: 'Europe/Berlin', quiet_hours_start: null, quiet_hours_end: null });
  });
});

describe('tenant plans and namespaces', () => {
  it('a tenant has a plan (free unless given), changed by an admin; an unknown plan is refused naming the choices', async () => {
    expect((await api.admin('POST', '/admin/tenants', { id: 'planned', name: 'P' })).body).toMatchObject({ plan: 'free', inline_numbers_consented: false });
    expect((await api.admin('PATCH', '/admin/tenants/planned', { inline_numbers_consented: true })).body.inline_numbers_consented).toBe(true);
    expect((await api.admin('PATCH', '/admin/tenants/planned', { plan: 'pro' })).body.plan).toBe('pro');
    const bad = await api.admin('POST', '/admin/tenants', { id: 'gold', name: 'G', plan: 'platinum' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ field: 'plan', reason: 'unknown plan platinum; plans: free, standard, pro, synthetic' });
    expect((await api.admin('GET', '/admin/tenants/gold')).status).toBe(404);
  });

  it("prints the tenant's namespace manifest: bound by label, restricted, with a Broadcast quota", async () => {
    await api.admin('POST', '/admin/tenants', { id: 'chapel', name: 'Chapel' });
    const r = await api.request('GET', '/admin/tenants/chapel/namespace?urgent=true', { token: ADMIN_TOKEN });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/yaml/);
    const list = load(r.body as string) as { kind: string; items: { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: unknown }[] };
    expect(list.kind).toBe('List');
    const [ns, quota] = list.items;
    expect(ns).toMatchObject({ kind: 'Namespace', metadata: { name: 'chapel', labels: { 'herald.dev/tenant': 'chapel', 'herald.dev/urgent': 'true', 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    expect(quota).toMatchObject({ kind: 'ResourceQuota', metadata: { name: 'herald-broadcasts' }, spec: { hard: { 'count/broadcasts.herald.dev': '500' } } });
    const plain = await api.request('GET', '/admin/tenants/chapel/namespace', { token: ADMIN_TOKEN });
    expect((load(plain.body as string) as { items: { metadata: { labels: Record<string, string> } }[] }).items[0]!.metadata.labels['herald.dev/urgent']).toBeUndefined();
    expect((await api.request('GET', '/admin/tenants/nope/namespace', { token: ADMIN_TOKEN })).status).toBe(404);
    expect((await api.request('GET', '/admin/tenants/chapel/namespace', { token: 'tenant-key' })).status).toBe(401);
  });
});

describe('sending numbers', () => {
  it('are normalised, default their rate by kind, and are unique', async () => {
    await api.admin('POST', '/admin/tenants', { id: 'numbers', name: 'N' });
    const tf = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', { phone_number: '+1 (888) 555-0100', kind: 'toll_free' });
    expect(tf.status).toBe(201);
    expect(tf.body).toMatchObject({ phone_number: '+18885550100', kind: 'toll_free', per_second: 20 });
    const dlc = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', { phone_number: '+12025550101', kind: '10dlc', campaign_id: 'C123' });
    expect(dlc.body).toMatchObject({ per_second: 1, campaign_id: 'C123' });
    const dlc2 = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', { phone_number: '+12025550102', kind: '10dlc', per_second: 4.5 });
    expect(dlc2.body.per_second).toBe(4.5);
    const lc = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', { phone_number: '+12025550103', kind: 'long_code' });
    expect(lc.body.per_second).toBe(1);
    const sc = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', { phone_number: '55555', kind: 'short_code' });
    expect(sc.body).toMatchObject({ phone_number: '55555', per_second: 100 });

    const dup = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', { phone_number: '+18885550100', kind: 'toll_free' });
    expect(dup.status).toBe(409);
    for (const [body, field] of [
      [{ phone_number: '2025550104', kind: 'long_code' }, 'phone_number'],
      [{ phone_number: '+15551234567', kind: 'long_code' }, 'phone_number'],
      [{ phone_number: '+12025550104', kind: 'landline' }, 'kind'],
      [{ phone_number: '+12025550104', kind: 'long_code', per_second: 0 }, 'per_second'],
      [{ phone_number: '12', kind: 'short_code' }, 'phone_number'],
    ] as const) {
      const r = await api.admin('POST', '/admin/tenants/numbers/sending-numbers', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.field).toBe(field);
    }
    const list = await api.admin('GET', '/admin/tenants/numbers/sending-numbers');
    expect(list.body.items).toHaveLength(5);
    expect((await api.admin('POST', '/admin/tenants/nobody/sending-numbers', { phone_number: '+12025550109', kind: 'long_code' })).status).toBe(404);
  });
});

describe('API keys', () => {
  it('are shown once, stored only as a SHA-256, and authenticate their tenant', async () => {
    const t = await makeTenant(api, 'keys-1');
    expect(t.key).toMatch(/^hk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const secret = t.key.split('_').slice(2).join('_');

    const { rows } = await db.pool.query('SELECT * FROM api_keys WHERE id = $1', [t.keyId]);
    const row = rows[0];
    expect(row.key_hash).toBe(createHash('sha256').update(t.key).digest('hex'));
    // Nothing in the row holds the key or its secret.
    for (const value of Object.values(row)) {
      expect(String(value)).not.toContain(secret);
    }
    expect(t.key.split('_')[1]).toBe(row.prefix);

    const list = await api.admin('GET', '/admin/tenants/keys-1/api-keys');
    expect(list.body.items).toHaveLength(1);
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(list.body.items[0]).not.toHaveProperty('key');

    expect((await api.request('GET', '/v1/contacts', { token: t.key })).status).toBe(200);
    // Same prefix, another secret: refused.
    const forged = `hk_${row.prefix}_${'A'.repeat(43)}`;
    expect((await api.request('GET', '/v1/contacts', { token: forged })).status).toBe(401);
    expect((await api.request('GET', '/v1/contacts', { token: 'hk_nonsense' })).status).toBe(401);
    expect((await api.request('GET', '/v1/contacts')).status).toBe(401);
  });

  it('rotate: the new key works, the old one is revoked (after its grace period)', async () => {
    const t = await makeTenant(api, 'keys-2');
    const now = await api.admin('POST', `/admin/tenants/keys-2/api-keys/${t.keyId}/rotate`);
    expect(now.status).toBe(201);
    expect(now.body.key).not.toBe(t.key);
    expect(now.body.replaces.id).toBe(t.keyId);
    expect((await api.request('GET', '/v1/contacts', { token: t.key })).status).toBe(401);
    expect((await api.request('GET', '/v1/contacts', { token: now.body.key })).status).toBe(200);
    // A revoked key cannot be rotated again.
    expect((await api.admin('POST', `/admin/tenants/keys-2/api-keys/${t.keyId}/rotate`)).status).toBe(409);

    const graced = await api.admin('POST', `/admin/tenants/keys-2/api-keys/${now.body.id}/rotate`, { grace_seconds: 3600 });
    expect(graced.status).toBe(201);
    expect((await api.request('GET', '/v1/contacts', { token: now.body.key })).status).toBe(200);
    expect((await api.request('GET', '/v1/contacts', { token: graced.body.key })).status).toBe(200);
    clock.advance(3601_000);
    expect((await api.request('GET', '/v1/contacts', { token: now.body.key })).status).toBe(401);
    expect((await api.request('GET', '/v1/contacts', { token: graced.body.key })).status).toBe(200);

    const bad = await api.admin('POST', `/admin/tenants/keys-2/api-keys/${graced.body.id}/rotate`, { grace_seconds: -5 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('grace_seconds');
  });

  it('revoke: the key stops working at once', async () => {
    const t = await makeTenant(api, 'keys-3');
    const r = await api.admin('POST', `/admin/tenants/keys-3/api-keys/${t.keyId}/revoke`);
    expect(r.status).toBe(200);
    expect(r.body.revoked_at).toBeTruthy();
    expect((await api.request('GET', '/v1/contacts', { token: t.key })).status).toBe(401);
    // A key of another tenant cannot be revoked through this tenant's path.
    const u = await makeTenant(api, 'keys-4');
    expect((await api.admin('POST', `/admin/tenants/keys-3/api-keys/${u.keyId}/revoke`)).status).toBe(404);
    expect((await api.request('GET', '/v1/contacts', { token: u.key })).status).toBe(200);
  });
});
