import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { makeTenant, seedBroadcast, startTestApi, type TestApi } from './test-support.js';

let db: TestDatabase;
let api: TestApi;
let key: string;
const clock = new ManualClock('2026-05-01T12:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, clock);
  key = (await makeTenant(api, 'reader')).key;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

const get = (path: string) => api.request('GET', path, { token: key });

async function all(path: string, limit: number): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await get(`${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(r.status).toBe(200);
    out.push(...r.body.items);
    cursor = r.body.next_cursor;
    if (!cursor) return out;
  }
  throw new Error('pagination did not end');
}

describe('broadcasts', () => {
  it('newest first with delivery counts by status, paged without repeats or gaps', async () => {
    // Same created_at to the microsecond for two of them: the id breaks the tie.
    const t = new Date('2026-04-01T10:00:00.123Z');
    const b1 = await seedBroadcast(db.pool, 'reader', [{ address: '+12025550101', status: 'delivered' }], { createdAt: new Date('2026-03-01T00:00:00Z') });
    const b2 = await seedBroadcast(db.pool, 'reader', [
      { address: '+12025550102', status: 'sent' },
      { address: '+12025550103', status: 'failed' },
      { address: '+12025550104', status: 'sent' },
    ], { createdAt: t });
    const b3 = await seedBroadcast(db.pool, 'reader', [], { createdAt: t });
    await db.pool.query(`UPDATE broadcasts SET created_at = created_at + interval '456 microseconds' WHERE id IN ($1, $2)`, [b2.broadcastId, b3.broadcastId]);

    const items = await all('/v1/broadcasts', 1);
    // (created_at DESC, id DESC): the two equal instants by id descending, then the older one.
    const tied = [b2.broadcastId, b3.broadcastId].sort().reverse();
    expect(items.map((b) => b.id)).toEqual([...tied, b1.broadcastId]);
    const two = items.find((b) => b.id === b2.broadcastId);
    expect(two.counts).toEqual({ total: 3, sent: 2, failed: 1 });
    expect(items.find((b) => b.id === b3.broadcastId).counts).toEqual({ total: 0 });

    const one = await get(`/v1/broadcasts/${b1.broadcastId}`);
    expect(one.body).toMatchObject({ id: b1.broadcastId, channel: 'sms', counts: { total: 1, delivered: 1 } });
    expect(one.body).not.toHaveProperty('_ts');
    expect((await get('/v1/broadcasts/not-a-uuid')).status).toBe(404);
    expect((await get('/v1/broadcasts/00000000-0000-4000-8000-ffffffffffff')).status).toBe(404);
  });

  it('a forged cursor is a 400, not a 500', async () => {
    const forged = Buffer.from(JSON.stringify(['not a time', '00000000-0000-4000-8000-000000000001'])).toString('base64url');
    const r = await get(`/v1/broadcasts?cursor=${forged}`);
    expect(r.status).toBe(400);
    expect(r.body.error.field).toBe('cursor');
    expect((await get('/v1/broadcasts?cursor=W10')).status).toBe(400);
  });
});

describe('deliveries of a broadcast', () => {
  it('filter by status, page, and never show a whole number or token', async () => {
    const statuses = ['sent', 'failed', 'sent', 'delivered', 'sent', 'queued', 'sent'];
    const b = await seedBroadcast(db.pool, 'reader', statuses.map((status, i) => ({ address: `+1202555020${i}`, status })));
    await db.pool.query(`UPDATE deliveries SET last_error = 'number +12025550201 is unreachable', error_code = '40001' WHERE status = 'failed'`);

    const every = await all(`/v1/broadcasts/${b.broadcastId}/deliveries`, 2);
    expect(every).toHaveLength(7);
    expect(new Set(every.map((d) => d.id)).size).toBe(7);
    expect(every.map((d) => d.status)).toEqual([...statuses].sort());

    const sent = await all(`/v1/broadcasts/${b.broadcastId}/deliveries?status=sent`, 3);
    expect(sent).toHaveLength(4);
    expect(sent.every((d) => d.status === 'sent')).toBe(true);
    expect(sent.map((d) => d.id)).toEqual([...sent.map((d) => d.id)].sort((x, y) => x - y));

    const body = JSON.stringify(every);
    for (let i = 0; i < 7; i++) expect(body).not.toContain(`+1202555020${i}`);
    expect(every[0].recipient).toMatch(/^\+1202\*\*\*020\d$/);
    const failed = every.find((d) => d.status === 'failed');
    expect(failed.last_error).toBe('number +1202***0201 is unreachable');
    expect(failed).not.toHaveProperty('address');

    const bad = await get(`/v1/broadcasts/${b.broadcastId}/deliveries?status=lost`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('status');
  });

  it('push tokens are shortened', async () => {
    const b = await seedBroadcast(db.pool, 'reader', [{ address: 'dGhpcyBpcyBhIGxvbmcgZmNtIHRva2Vu', status: 'sent' }], { channel: 'push' });
    const r = await get(`/v1/broadcasts/${b.broadcastId}/deliveries`);
    expect(r.body.items[0].recipient).toBe('dGhpcy…Vu');
  });
});

describe('opt-outs', () => {
  it('newest first, paged', async () => {
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      const r = await api.request('POST', '/v1/opt-outs', { token: key, json: { phone: `+1202555030${i}` } });
      expect(r.status).toBe(201);
    }
    const items = await all('/v1/opt-outs', 2);
    expect(items.map((o) => o.phone)).toEqual(['+12025550304', '+12025550303', '+12025550302', '+12025550301', '+12025550300']);
    expect(items[0]).toMatchObject({ source: 'api', keyword: null });
    const bad = await api.request('POST', '/v1/opt-outs', { token: key, json: { phone: 'x' } });
    expect(bad.body.error.field).toBe('phone');
  });
});
