import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ADMIN_TOKEN, makeTenant, startTestApi, type TestApi } from './test-support.js';

/** What schemathesis (services/api/schemathesis.test.ts) found, each held here as a plain request. */
let db: TestDatabase;
let api: TestApi;
let key: string;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, new ManualClock('2026-09-01T08:00:00Z'));
  key = (await makeTenant(api, 'findings')).key;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

/** fetch refuses TRACE; node:http sends any method. */
function trace(path: string, token?: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${api.base}${path}`, { method: 'TRACE', headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: the router's plain-text answer
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('schemathesis findings', () => {
  it('a method no route has (TRACE) is a 405 with the error body, not a 501', async () => {
    for (const [path, token] of [['/v1/contacts', key], ['/admin/tenants', ADMIN_TOKEN], ['/healthz', undefined], ['/webhooks/telnyx', undefined]] as const) {
      const r = await trace(path, token);
      expect(r.status, path).toBe(405);
      expect(r.body, path).toEqual({ error: { field: null, reason: `TRACE is not allowed on ${path}` } });
    }
    // A method the path lacks keeps its Allow header.
    const put = await api.request('PUT', '/v1/contacts', { token: key });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toMatch(/GET/);
    expect(put.body.error.reason).toBe('PUT is not allowed on /v1/contacts');
  });

  it('an empty query parameter is validated, not read as absent', async () => {
    const cases: Array<[string, string, string]> = [
      ['/v1/contacts?limit=', 'limit', key],
      ['/v1/opt-outs?cursor=', 'cursor', key],
      ['/v1/broadcasts?limit=', 'limit', key],
      ['/admin/tenants?limit=', 'limit', ADMIN_TOKEN],
      ['/v1/broadcasts/00000000-0000-4000-8000-000000000001/deliveries?status=', 'status', key],
    ];
    for (const [path, field, token] of cases) {
      const r = await api.request('GET', path, { token });
      expect(r.status, path).toBe(400);
      expect(r.body.error.field, path).toBe(field);
    }
    const upload = await api.request('POST', '/v1/contacts?consent_source=', { token: key, json: [{ phone: '+12025550143' }] });
    expect(upload.status).toBe(400);
    expect(upload.body.error.field).toBe('consent_source');
  });
});

describe('schemathesis findings (bodies)', () => {
  it('the {"contacts": [...]} upload refuses a key beside contacts, naming it', async () => {
    const r = await api.request('POST', '/v1/contacts', { token: key, json: { contacts: [{ phone: '+12025550143' }], __main__: [] } });
    expect(r.status).toBe(400);
    expect(r.body.error.field).toBe('__main__');
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM contacts WHERE tenant_id = 'findings'`)).rows[0].n).toBe(0);
  });

  it('PATCH /admin/tenants/{id} with a JSON null body is a 400; no body is an empty patch', async () => {
    const nul = await api.request('PATCH', '/admin/tenants/findings', { token: ADMIN_TOKEN, body: 'null', contentType: 'application/json' });
    expect(nul.status).toBe(400);
    expect(nul.body.error.field).toBe('body');
    const empty = await api.request('PATCH', '/admin/tenants/findings', { token: ADMIN_TOKEN });
    expect(empty.status).toBe(200);
    expect(empty.body.id).toBe('findings');
  });
});
