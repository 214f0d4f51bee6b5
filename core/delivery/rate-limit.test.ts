import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { createPool, type Pool } from '../../lib/db/postgres.js';
import { RateLimiter } from './rate-limit.js';

let db: TestDatabase;
let other: Pool;
beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  other = createPool(db.url, 4, 'second-worker');
  // The bucket's own accounting, grant by grant: herald_take_tokens writes a bucket
  // only when it grants, stamping updated_at with the database clock at that grant.
  await db.pool.query(`
    CREATE TABLE test_grants (id bigserial PRIMARY KEY, key text NOT NULL, at timestamptz NOT NULL, balance float8 NOT NULL);
    CREATE FUNCTION test_record_grant() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO test_grants (key, at, balance) VALUES (NEW.key, NEW.updated_at, NEW.tokens);
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_record_grant AFTER UPDATE ON rate_buckets FOR EACH ROW EXECUTE FUNCTION test_record_grant();`);
});
afterAll(async () => {
  await other?.end();
  await db?.drop();
});

/** When each grant of this key happened, in ms on the database clock from the first. */
async function grantTimes(key: string): Promise<number[]> {
  const { rows } = await db.pool.query<{ ms: number }>(
    `SELECT extract(epoch FROM at - min(at) OVER ()) * 1000 AS ms FROM test_grants WHERE key = $1 ORDER BY at, id`, [key]);
  return rows.map((r) => Number(r.ms));
}

describe('RateLimiter', () => {
  it('holds one rate across two workers: 60 tokens at 20/s from two pools, counted on the bucket’s database clock', async () => {
    const keys = [{ key: 'tenant:shared:sms', perSecond: 20 }];
    const a = new RateLimiter(db.pool);
    const b = new RateLimiter(other);
    await Promise.all([a, b].map(async (limiter) => {
      for (let i = 0; i < 30; i++) await limiter.take(keys, 1);
    }));
    const grants = await grantTimes('tenant:shared:sms');
    expect(grants).toHaveLength(60);
    // A full bucket (20) plus one grant on a barely positive balance, then 20 a second:
    // the 60th grant cannot come before (60 − 21) / 20 s after the first.
    expect(grants.at(-1)!).toBeGreaterThanOrEqual(((60 - 21) / 20) * 1000 - 1);
    // Never more than the bucket plus one second's rate (and that one overdraft) in any one-second window.
    for (const t of grants) expect(grants.filter((g) => g >= t && g < t + 1000).length).toBeLessThanOrEqual(20 + 20 + 1);
  });

  it('every key binds: a slow sending number holds back a fast tenant', async () => {
    const limiter = new RateLimiter(db.pool);
    const keys = [{ key: 'tenant:fast:sms', perSecond: 1000 }, { key: 'number:+18885550000', perSecond: 4 }];
    for (let i = 0; i < 8; i++) await limiter.take(keys, 1);
    // A full bucket (4) plus one grant on a barely positive balance go at once; the other 3 wait 0.25 s each.
    for (const key of ['number:+18885550000', 'tenant:fast:sms']) {
      const grants = await grantTimes(key);
      expect(grants).toHaveLength(8);
      expect(grants.at(-1)!).toBeGreaterThanOrEqual(((8 - 5) / 4) * 1000 - 1);
    }
  });

  it('sizes grants to a quarter second of the slowest bucket', () => {
    expect(RateLimiter.grantSize([{ key: 'a', perSecond: 50 }, { key: 'b', perSecond: 1000 }], 100)).toBe(12);
    expect(RateLimiter.grantSize([{ key: 'a', perSecond: 0.1 }], 100)).toBe(1);
    expect(RateLimiter.grantSize([{ key: 'a', perSecond: 100_000 }], 50)).toBe(50);
  });
});
