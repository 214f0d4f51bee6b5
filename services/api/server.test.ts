import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../lib/clock.js';
import { createPool } from '../../lib/db/postgres.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ADMIN_TOKEN, makeTenant, startTestApi, type TestApi } from './test-support.js';

let db: TestDatabase;
let api: TestApi;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, systemClock);
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

describe('health and metrics', () => {
  it('/healthz says the process is up; /readyz runs a real query', async () => {
    expect(await api.request('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await api.request('GET', '/readyz')).toMatchObject({ status: 200, body: { database: 'ok' } });

    const deadPool = createPool('postgres://herald:herald@127.0.0.1:1/herald', 1, 'dead');
    const down = await startTestApi(deadPool, systemClock);
    try {
      expect((await down.request('GET', '/healthz')).status).toBe(200);
      const r = await down.request('GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ status: 'unavailable', database: 'unreachable' });
    } finally {
      await down.stop();
      await deadPool.end();
    }
  });

  it('/metrics counts requests by method, route template and status', async () => {
    const t = await makeTenant(api, 'metrics');
    await api.request('GET', '/v1/contacts/12345', { token: t.key });
    await api.request('GET', '/nowhere');
    const r = await api.request('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    const text = r.body as string;
    expect(text).toMatch(/herald_http_requests_total\{service="api",method="GET",route="\/v1\/contacts\/:id",status="404"\} \d+/);
    expect(text).toMatch(/herald_http_requests_total\{service="api",method="POST",route="\/admin\/tenants",status="201"\} \d+/);
    expect(text).toMatch(/herald_http_request_duration_seconds_bucket\{le="[^"]+",service="api",method="GET",route="unmatched",status="404"\}/);
    expect(text).not.toContain('/v1/contacts/12345');
  });

  it('never leaks a stack trace: an internal error is a bare 500', async () => {
    const t = await makeTenant(api, 'crash');
    await db.pool.query(`ALTER TABLE device_tokens RENAME COLUMN last_seen_at TO last_seen_at_x`);
    try {
      const r = await api.request('POST', '/v1/device-tokens', { token: t.key, json: { token: 'x' } });
      expect(r.status).toBe(500);
      expect(r.body).toEqual({ error: { field: null, reason: 'internal error' } });
    } finally {
      await db.pool.query(`ALTER TABLE device_tokens RENAME COLUMN last_seen_at_x TO last_seen_at`);
    }
  });
});

describe('graceful stop', () => {
  it('stops accepting, lets the request in flight finish, then reports drained', async () => {
    const other = await startTestApi(db.pool, systemClock);
    await other.admin('POST', '/admin/tenants', { id: 'slow', name: 'Slow' });
    // Hold the tenant row so the next PATCH waits in the database: a request in flight.
    const blocker = await db.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM tenants WHERE id = 'slow' FOR UPDATE`);
    const inFlight = fetch(`${other.base}/admin/tenants/slow`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Slower' }),
    });
    await new Promise((r) => setTimeout(r, 200));
    const stopping = other.server.stop(10_000);
    expect(other.app.draining).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    // No new connections...
    await expect(fetch(`${other.base}/healthz`)).rejects.toThrow();
    // ...but the one in flight completes once the database lets it.
    await blocker.query('COMMIT');
    blocker.release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { name: string }).name).toBe('Slower');
    expect(await stopping).toEqual({ drained: true });
  });
});
