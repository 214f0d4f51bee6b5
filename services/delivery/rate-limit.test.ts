import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { createPool, type Pool } from '../../lib/db/postgres.js';
import { RateLimiter } from './rate-limit.js';

let db: TestDatabase;
let other: Pool;
beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  other = createPool(db.url, 4, 'second-worker');
});
afterAll(async () => {
  await other?.end();
  await db?.drop();
});

describe('RateLimiter', () => {
  it('holds one rate across two workers: 60 tokens at 20/s from two pools take at least (60 − 20 burst) / 20 s', async () => {
    const keys = [{ key: 'tenant:shared:sms', perSecond: 20 }];
    const a = new RateLimiter(db.pool);
    const b = new RateLimiter(other);
    const grants: number[] = [];
    const started = Date.now();
    await Promise.all(
      [a, b].map(async (limiter) => {
        for (let i = 0; i < 30; i++) {
          await limiter.take(keys, 1);
          grants.push(Date.now() - started);
        }
      }),
    );
    expect(grants).toHaveLength(60);
    // The limiter is the only thing that can make 60 local round trips take this long.
    expect(Math.max(...grants)).toBeGreaterThanOrEqual(1_800);
    // Never more than the burst plus one second's rate in any one-second window.
    for (const t of grants) expect(grants.filter((g) => g >= t && g < t + 1000).length).toBeLessThanOrEqual(41);
  });

  it('every key binds: a slow sending number holds back a fast tenant', async () => {
    const limiter = new RateLimiter(db.pool);
    const keys = [{ key: 'tenant:fast:sms', perSecond: 1000 }, { key: 'number:+18885550000', perSecond: 4 }];
    const started = Date.now();
    for (let i = 0; i < 8; i++) await limiter.take(keys, 1);
    // a full bucket (4) plus one grant on a barely positive balance go at once; the other 3 wait 0.25 s each
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    const { rows } = await db.pool.query(`SELECT key FROM rate_buckets WHERE key LIKE '%fast%' OR key LIKE 'number:%' ORDER BY key`);
    expect(rows.map((r) => r.key)).toEqual(['number:+18885550000', 'tenant:fast:sms']);
  });

  it('sizes grants to a quarter second of the slowest bucket', () => {
    expect(RateLimiter.grantSize([{ key: 'a', perSecond: 50 }, { key: 'b', perSecond: 1000 }], 100)).toBe(12);
    expect(RateLimiter.grantSize([{ key: 'a', perSecond: 0.1 }], 100)).toBe(1);
    expect(RateLimiter.grantSize([{ key: 'a', perSecond: 100_000 }], 50)).toBe(50);
  });
});
