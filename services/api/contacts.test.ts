import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { makeTenant, startTestApi, type TestApi } from './test-support.js';
import { normalizePhone } from './validation.js';

let db: TestDatabase;
let api: TestApi;
let key: string;
const clock = new ManualClock('2026-03-01T12:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, clock);
  key = (await makeTenant(api, 'church')).key;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

const post = (body: string, contentType: string, query = '') =>
  api.request('POST', `/v1/contacts${query}`, { token: key, body, contentType });

async function contact(phone: string) {
  const { rows } = await db.pool.query('SELECT * FROM contacts WHERE tenant_id = $1 AND phone = $2', ['church', phone]);
  return rows[0];
}

describe('phone normalisation', () => {
  it('reads numbers as people type them and keeps only valid ones', () => {
    expect(normalizePhone('(202) 555-0143', 'US')).toEqual({ ok: true, e164: '+12025550143' });
    expect(normalizePhone('202.555.0143', 'US')).toEqual({ ok: true, e164: '+12025550143' });
    expect(normalizePhone('+44 20 7183 8750', 'US')).toEqual({ ok: true, e164: '+442071838750' });
    expect(normalizePhone('020 7183 8750', 'GB')).toEqual({ ok: true, e164: '+442071838750' });
    expect(normalizePhone('0491 570 006', 'AU')).toEqual({ ok: true, e164: '+61491570006' });
    expect(normalizePhone('555-0100', 'US').ok).toBe(false);
    expect(normalizePhone('+15551234567', 'US').ok).toBe(false);
    expect(normalizePhone('call me', 'US').ok).toBe(false);
    expect(normalizePhone('', 'US')).toEqual({ ok: false, reason: 'required' });
  });
});

describe('bulk upsert', () => {
  it('CSV with good and bad rows: exact per-row errors, good rows stored', async () => {
    const csv = [
      'phone,name,time_zone,tags,external_id,sms_consent',
      '(202) 555-0143,Ann Lee,America/Chicago,youth;choir,m-1,true', // 1 ok
      '555-0100,Bad Number,,,,', // 2 bad phone
      '+1 415 555 2671,Bob,Mars/Base,,m-3,yes', // 3 bad zone
      '+14155552672,Cy,,,m-4,maybe', // 4 bad consent
      '+14155552673,Di', // 5 wrong cell count
      ',No Phone,,,,', // 6 missing phone
      '+442071838750,"Eve, Jr.",Europe/London," adults ; ;choir ",m-7,false', // 7 ok
      '202-555-0143,Ann again,,,,', // 8 duplicate of row 1
      '+14155552674,Fay,us/pacific,,,', // 9 ok, zone canonicalised
    ].join('\n');
    const r = await post(csv, 'text/csv');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      created: 3,
      updated: 0,
      failed: 6,
      errors: [
        { row: 2, field: 'phone', reason: 'not a valid US number' },
        { row: 3, field: 'time_zone', reason: 'not an IANA time zone: Mars/Base' },
        { row: 4, field: 'sms_consent', reason: 'expected true or false' },
        { row: 5, field: 'row', reason: 'expected 6 cells, got 2' },
        { row: 6, field: 'phone', reason: 'required' },
        { row: 8, field: 'phone', reason: 'same number as row 1' },
      ],
      errors_total: 6,
    });
    expect(await contact('+12025550143')).toMatchObject({
      name: 'Ann Lee', time_zone: 'America/Chicago', tags: ['youth', 'choir'], external_id: 'm-1', sms_consent: true,
      consent_source: 'csv_import',
    });
    expect((await contact('+12025550143')).consent_at.toISOString()).toBe('2026-03-01T12:00:00.000Z');
    expect(await contact('+442071838750')).toMatchObject({ name: 'Eve, Jr.', tags: ['adults', 'choir'], sms_consent: false });
    expect(await contact('+14155552674')).toMatchObject({ time_zone: 'America/Los_Angeles' });
    expect(await contact('+14155552671')).toBeUndefined();
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM contacts');
    expect(rows[0].n).toBe(3);
  });

  it('upserts by phone: a second upload updates, keeping fields it does not give', async () => {
    clock.advance(60_000);
    const r = await api.request('POST', '/v1/contacts', {
      token: key,
      json: [
        { phone: '+1 202 555 0143', name: 'Ann B. Lee' }, // update name only
        { phone: '+442071838750', sms_consent: true, consent_source: 'web_form' }, // consent given now
        { phone: '+12025550150', tags: ['cs101'], external_id: 's-1' }, // new
      ],
    });
    expect(r.body).toEqual({ created: 1, updated: 2, failed: 0, errors: [], errors_total: 0 });
    const ann = await contact('+12025550143');
    expect(ann).toMatchObject({ name: 'Ann B. Lee', time_zone: 'America/Chicago', tags: ['youth', 'choir'], external_id: 'm-1' });
    expect(ann.consent_at.toISOString()).toBe('2026-03-01T12:00:00.000Z'); // consent not touched
    const eve = await contact('+442071838750');
    expect(eve).toMatchObject({ sms_consent: true, consent_source: 'web_form' });
    expect(eve.consent_at.toISOString()).toBe('2026-03-01T12:01:00.000Z');
    expect(await contact('+12025550150')).toMatchObject({ sms_consent: true, consent_source: 'api', tags: ['cs101'] });
  });

  it('JSON rows are checked field by field, unknown fields named', async () => {
    const r = await api.request('POST', '/v1/contacts', {
      token: key,
      json: [
        { phone: 2025550143 },
        'not an object',
        { phone: '+12025550151', tags: [1, 2] },
        { phone: '+12025550152', timezone: 'UTC' },
        { phone: 'nope', time_zone: 'Nowhere/Land' },
        { phone: '+12025550153', name: null, time_zone: 'UTC' },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      created: 1,
      updated: 0,
      failed: 5,
      errors: [
        { row: 1, field: 'phone', reason: 'expected a string' },
        { row: 2, field: 'row', reason: 'expected an object' },
        { row: 3, field: 'tags', reason: 'expected an array of strings or a semicolon-separated string' },
        { row: 4, field: 'timezone', reason: 'unknown field' },
        { row: 5, field: 'phone', reason: 'not a phone number' },
        { row: 5, field: 'time_zone', reason: 'not an IANA time zone: Nowhere/Land' },
      ],
      errors_total: 6,
    });
  });

  it('reads national numbers in default_country', async () => {
    const r = await post('phone,name\n020 7946 0958,Gee\n', 'text/csv', '?default_country=gb');
    expect(r.body).toMatchObject({ created: 1, failed: 0 });
    expect(await contact('+442079460958')).toMatchObject({ name: 'Gee' });
    const bad = await post('phone\n123\n', 'text/csv', '?default_country=XX');
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('default_country');
  });

  it('refuses what is not a contact upload with a 4xx naming the field', async () => {
    const unknownColumn = await post('phone,timezone\n+12025550160,UTC\n', 'text/csv');
    expect(unknownColumn.status).toBe(400);
    expect(unknownColumn.body.error.field).toBe('columns');
    const noPhone = await post('name\nAnn\n', 'text/csv');
    expect(noPhone.body.error).toEqual({ field: 'columns', reason: 'a phone column is required' });
    const broken = await post('phone,name\n"+12025550161,Ann\n', 'text/csv');
    expect(broken.status).toBe(400);
    expect(broken.body.error.field).toBe('body');
    const notArray = await api.request('POST', '/v1/contacts', { token: key, json: { phone: '+12025550162' } });
    expect(notArray.status).toBe(400);
    expect(notArray.body.error.field).toBe('body');
    const xml = await post('<contacts/>', 'application/xml');
    expect(xml.status).toBe(415);
    expect(xml.body.error.field).toBe('content-type');
    const nul = await api.request('POST', '/v1/contacts', { token: key, json: [{ phone: '+12025550163', name: 'a\u0000b' }, { phone: '+12025550164' }] });
    expect(nul.body).toMatchObject({ created: 1, failed: 1, errors: [{ row: 1, field: 'name', reason: 'contains a NUL character' }] });
    // Elsewhere PostgreSQL's refusal of NUL is a 400 too, never a 500.
    const nulTag = await api.request('POST', '/v1/device-tokens', { token: key, json: { token: 't\u0000' } });
    expect(nulTag.status).toBe(400);
    expect(nulTag.body.error).toEqual({ field: 'body', reason: 'text may not contain NUL characters' });
    const malformed = await post('[{"phone": ', 'application/json');
    expect(malformed.body.error).toEqual({ field: 'body', reason: 'malformed JSON' });
  });

  it('limits the body size with a 413 naming the limit', async () => {
    const small = await startTestApi(db.pool, clock, { maxBodyBytes: 1024 * 1024 });
    try {
      const t = (await db.pool.query('SELECT 1')).rowCount; // same database, same key
      expect(t).toBe(1);
      // JSON: a CSV this large would become an import job (import-jobs.test.ts).
      const big = JSON.stringify([{ phone: '+12025550199', name: 'x'.repeat(1024 * 1024) }]);
      const r = await small.request('POST', '/v1/contacts', { token: key, body: big, contentType: 'application/json' });
      expect(r.status).toBe(413);
      expect(r.body.error).toEqual({ field: 'body', reason: 'request body exceeds the 1 MB limit' });
    } finally {
      await small.stop();
    }
    expect(await contact('+12025550199')).toBeUndefined();
  });

  it('a body of bad rows gets at most 100 errors back, with their count; past the row cap, a 413 and nothing stored', async () => {
    // The attack of the issue: a body of [1,1,1,...] used to answer one error per row.
    const ones = `[${Array.from({ length: 5_000 }, () => '1').join(',')}]`;
    const r = await post(ones, 'application/json');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ created: 0, failed: 5_000, errors_total: 5_000 });
    expect(r.body.errors).toHaveLength(100);
    expect(r.body.errors[0]).toMatchObject({ row: 1 });
    expect(r.body.errors[99]).toMatchObject({ row: 100 });

    const capped = await startTestApi(db.pool, clock, { maxUploadRows: 1_000 });
    try {
      const csv = ['phone', ...Array.from({ length: 1_001 }, (_, i) => `+1312556${String(1000 + i).padStart(4, '0')}`)].join('\n');
      const tooMany = await capped.request('POST', '/v1/contacts', { token: key, body: csv, contentType: 'text/csv' });
      expect(tooMany.status).toBe(413);
      expect(tooMany.body.error).toEqual({ field: 'body', reason: 'at most 1000 contacts per upload, got 1001: split the file into several uploads' });
      const json = JSON.stringify(Array.from({ length: 1_001 }, () => 1));
      expect((await capped.request('POST', '/v1/contacts', { token: key, body: json, contentType: 'application/json' })).status).toBe(413);
    } finally {
      await capped.stop();
    }
    expect(await contact('+13125561000')).toBeUndefined();
  });

  it('a large CSV goes in chunks and reports every row', async () => {
    const lines = ['phone,tags'];
    for (let i = 0; i < 2500; i++) lines.push(`+1312555${String(1000 + i).padStart(4, '0')},bulk`);
    lines.push('bogus,bulk');
    const r = await post(lines.join('\n'), 'text/csv');
    expect(r.body.created).toBe(2500);
    expect(r.body.errors).toEqual([{ row: 2501, field: 'phone', reason: 'not a phone number' }]);
    const again = await post(lines.join('\n'), 'text/csv');
    expect(again.body).toMatchObject({ created: 0, updated: 2500, failed: 1 });
  });
});

describe('reading and deleting contacts', () => {
  it('reads one and pages through all of the tenant', async () => {
    const list = await api.request('GET', '/v1/contacts?limit=2', { token: key });
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(2);
    expect(list.body.next_cursor).toEqual(expect.any(String));
    const one = await api.request('GET', `/v1/contacts/${list.body.items[0].id}`, { token: key });
    expect(one.body.phone).toBe(list.body.items[0].phone);
    expect((await api.request('GET', '/v1/contacts/999999', { token: key })).status).toBe(404);
    expect((await api.request('GET', '/v1/contacts/abc', { token: key })).status).toBe(404);
    const bad = await api.request('GET', '/v1/contacts?cursor=%%%', { token: key });
    expect(bad.status).toBe(400);
    expect((await api.request('GET', '/v1/contacts?limit=0', { token: key })).body.error.field).toBe('limit');
  });

  it('deleting a contact removes their device tokens but not their opt-out', async () => {
    const created = await api.request('POST', '/v1/contacts', { token: key, json: [{ phone: '+12025550170', external_id: 'del-1' }] });
    expect(created.body.created).toBe(1);
    const c = await contact('+12025550170');
    expect((await api.request('POST', '/v1/device-tokens', { token: key, json: { token: 'tok-del-1', contact_id: c.id } })).status).toBe(201);
    expect((await api.request('POST', '/v1/opt-outs', { token: key, json: { phone: '+12025550170' } })).status).toBe(201);
    expect((await api.request('GET', `/v1/contacts/${c.id}`, { token: key })).body.opted_out).toBe(true);

    const del = await api.request('DELETE', `/v1/contacts/${c.id}`, { token: key });
    expect(del.status).toBe(204);
    expect(await contact('+12025550170')).toBeUndefined();
    expect((await db.pool.query(`SELECT 1 FROM device_tokens WHERE token = 'tok-del-1'`)).rowCount).toBe(0);
    const optOut = await db.pool.query(`SELECT * FROM opt_outs WHERE tenant_id = 'church' AND phone = '+12025550170'`);
    expect(optOut.rows[0]).toMatchObject({ source: 'api' });
    expect((await api.request('DELETE', `/v1/contacts/${c.id}`, { token: key })).status).toBe(404);

    // Re-imported, the number is still opted out.
    await api.request('POST', '/v1/contacts', { token: key, json: [{ phone: '+12025550170', sms_consent: true }] });
    const again = await contact('+12025550170');
    expect((await api.request('GET', `/v1/contacts/${again.id}`, { token: key })).body.opted_out).toBe(true);
  });

  it('deletes by phone, as typed or encoded', async () => {
    await api.request('POST', '/v1/contacts', { token: key, json: [{ phone: '+12025550171' }, { phone: '+12025550172' }] });
    expect((await api.request('DELETE', '/v1/contacts?phone=%2B12025550171', { token: key })).status).toBe(204);
    expect((await api.request('DELETE', '/v1/contacts?phone=+12025550172', { token: key })).status).toBe(204);
    expect((await api.request('DELETE', '/v1/contacts?phone=%2B12025550172', { token: key })).status).toBe(404);
    const bad = await api.request('DELETE', '/v1/contacts?phone=hello', { token: key });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('phone');
  });
});
