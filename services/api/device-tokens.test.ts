import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { makeTenant, startTestApi, type TestApi } from './test-support.js';

let db: TestDatabase;
let api: TestApi;
let key: string;
let contactId: number;
const clock = new ManualClock('2026-09-01T08:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, clock);
  key = (await makeTenant(api, 'campus')).key;
  await api.request('POST', '/v1/contacts', { token: key, json: [{ phone: '+12025550143', external_id: 'student-7' }] });
  contactId = (await db.pool.query(`SELECT id FROM contacts WHERE external_id = 'student-7'`)).rows[0].id;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

const register = (json: unknown) => api.request('POST', '/v1/device-tokens', { token: key, json });
const row = async (token: string) => (await db.pool.query('SELECT * FROM device_tokens WHERE token = $1', [token])).rows[0];

describe('device tokens', () => {
  it('register, then re-register: upsert by token, last_seen_at moves', async () => {
    const first = await register({ token: 'fcm-aaa', platform: 'ios', tags: ['cs101', 'MATH200'], contact_external_id: 'student-7' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ platform: 'ios', tags: ['cs101', 'MATH200'], contact_id: contactId, active: true, created: true });
    clock.advance(86_400_000);
    const again = await register({ token: 'fcm-aaa', tags: 'cs101;cs102' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, platform: 'ios', tags: ['cs101', 'cs102'], contact_id: contactId, created: false });
    expect((await row('fcm-aaa')).last_seen_at.toISOString()).toBe('2026-09-02T08:00:00.000Z');
  });

  it('a refreshed token replaces the old one: old deactivated as refreshed, contact and tags carried over', async () => {
    await register({ token: 'fcm-old', platform: 'android', tags: ['cs101'], contact_id: contactId });
    const r = await register({ token: 'fcm-new', replaces: 'fcm-old' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ contact_id: contactId, tags: ['cs101'], platform: 'android', active: true });
    const old = await row('fcm-old');
    expect(old).toMatchObject({ active: false, invalid_reason: 'refreshed' });
    expect(old.invalidated_at.toISOString()).toBe(clock.now().toISOString());
    expect(r.body.replaced_token_id).toBe(old.id);
    // Replacing a token that is unknown is not an error: the new one is still registered.
    const unknown = await register({ token: 'fcm-new2', replaces: 'never-seen' });
    expect(unknown.status).toBe(201);
    expect(unknown.body.replaced_token_id).toBeNull();
  });

  it('a token the provider invalidated comes back when the app registers it again', async () => {
    await db.pool.query(`UPDATE device_tokens SET active = false, invalid_reason = 'UNREGISTERED', invalidated_at = now() WHERE token = 'fcm-aaa'`);
    await register({ token: 'fcm-aaa' });
    expect(await row('fcm-aaa')).toMatchObject({ active: true, invalid_reason: null, invalidated_at: null });
  });

  it('names its contact by id, external id or phone, of this tenant only', async () => {
    expect((await register({ token: 't-phone', contact_phone: '(202) 555-0143' })).body.contact_id).toBe(contactId);
    const missing = await register({ token: 't-x', contact_external_id: 'nobody' });
    expect(missing.status).toBe(404);
    expect(missing.body.error.field).toBe('contact_external_id');
    expect((await register({ token: 't-x', contact_id: 987654 })).body.error.field).toBe('contact_id');
    const two = await register({ token: 't-x', contact_id: contactId, contact_phone: '+12025550143' });
    expect(two.status).toBe(400);
    expect((await register({ token: 't-x', contact_phone: 'abc' })).body.error.field).toBe('contact_phone');
  });

  it('refuses bad input naming the field', async () => {
    for (const [body, field] of [
      [{}, 'token'],
      [{ token: '' }, 'token'],
      [{ token: 'x', platform: 'symbian' }, 'platform'],
      [{ token: 'x', tags: [3] }, 'tags'],
      [{ token: 'x', contact_id: 'seven' }, 'contact_id'],
      [{ token: 'x', extra: 1 }, 'extra'],
    ] as const) {
      const r = await register(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      if (field) expect(r.body.error.field).toBe(field);
    }
    expect((await api.request('POST', '/v1/device-tokens', { token: key })).status).toBe(400);
  });

  it('unregister deactivates', async () => {
    await register({ token: 'fcm-bye' });
    const r = await api.request('POST', '/v1/device-tokens/unregister', { token: key, json: { token: 'fcm-bye' } });
    expect(r.status).toBe(200);
    expect(await row('fcm-bye')).toMatchObject({ active: false, invalid_reason: 'unregistered' });
    expect((await api.request('POST', '/v1/device-tokens/unregister', { token: key, json: { token: 'nope' } })).status).toBe(404);
  });
});
