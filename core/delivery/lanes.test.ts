import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { laneReadiness, readLanes, updateLanes } from './lanes.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
});
afterAll(async () => {
  await db?.drop();
});
beforeEach(async () => {
  await db.pool.query('DELETE FROM workers');
  await db.pool.query('DELETE FROM lane_shares');
  await updateLanes(db.pool, [{ color: 'blue', weight: 100, role: 'stable', tenants: [] }, { color: 'green', weight: 0, role: 'canary', tenants: [] }]);
});

const live = (id: string, lane: string, version = 'v1', ready = true) =>
  db.pool.query('INSERT INTO workers (id, lane, version, ready) VALUES ($1, $2, $3, $4)', [id, lane, version, ready]);
const admit = async (lane: string, tenant: string, rows: number, o: { urgent?: boolean; count?: boolean } = {}) =>
  (await db.pool.query<{ v: string }>('SELECT herald_lane_admit($1, $2, $3, $4, $5, 15) AS v', [lane, tenant, rows, o.urgent ?? false, o.count ?? true])).rows[0]!.v;

describe('lanes', () => {
  it('start with blue serving everything and green idle', async () => {
    expect((await readLanes(db.pool)).map(({ color, weight, role }) => ({ color, weight, role }))).toEqual([
      { color: 'blue', weight: 100, role: 'stable' }, { color: 'green', weight: 0, role: 'canary' },
    ]);
  });

  it('refuse a split that cannot be served, naming the field and the reason', async () => {
    await expect(updateLanes(db.pool, [{ color: 'green', weight: 10 }])).rejects.toThrow('lanes: the weights of stable and canary lanes add up to 110, not 100');
    await expect(updateLanes(db.pool, [{ color: 'green', weight: 101 }, { color: 'blue', weight: -1 }])).rejects.toThrow('lanes.blue.weight: -1 is not an integer from 0 to 100');
    await expect(updateLanes(db.pool, [{ color: 'green', role: 'preview', weight: 0 }])).rejects.toThrow('lanes.green.tenants: a preview lane needs at least one (synthetic) tenant');
    await expect(updateLanes(db.pool, [{ color: 'green', role: 'stable', weight: 0 }])).rejects.toThrow('lanes: exactly one lane is stable, not 2');
    expect((await readLanes(db.pool)).map((l) => l.weight)).toEqual([100, 0]); // nothing half-applied
  });

  it("split every tenant's claims by the weights, within one chunk", async () => {
    await live('b1', 'blue');
    await live('g1', 'green');
    await updateLanes(db.pool, [{ color: 'blue', weight: 70 }, { color: 'green', weight: 30 }]);
    const got: Record<string, Record<string, number>> = { t1: { blue: 0, green: 0 }, t2: { blue: 0, green: 0 } };
    // Both lanes ask as fast as they can (blue asks three times as often): the weights decide.
    for (let i = 0; i < 400; i++) {
      // The workers keep beating (a slow machine must not make a lane look dead mid-test).
      if (i % 50 === 0) await db.pool.query('UPDATE workers SET heartbeat_at = now()');
      for (const tenant of ['t1', 't2']) {
        for (const lane of ['blue', 'blue', 'blue', 'green']) {
          if ((await admit(lane, tenant, 25)) === 'ok') got[tenant]![lane]! += 25;
        }
      }
    }
    for (const t of ['t1', 't2']) {
      const share = (100 * got[t]!.green!) / (got[t]!.green! + got[t]!.blue!);
      expect(Math.abs(share - 30)).toBeLessThanOrEqual(2);
    }
    // A new weight starts a new count: the next claims follow it at once.
    await updateLanes(db.pool, [{ color: 'blue', weight: 50 }, { color: 'green', weight: 50 }]);
    const after = { blue: 0, green: 0 };
    for (let i = 0; i < 100; i++) {
      for (const lane of ['blue', 'blue', 'blue', 'green'] as const) if ((await admit(lane, 't1', 25)) === 'ok') after[lane] += 25;
    }
    expect(Math.abs((100 * after.green) / (after.green + after.blue) - 50)).toBeLessThanOrEqual(2);
  });

  it('close a lane at weight 0, and leave out of the split a lane no live worker serves', async () => {
    await live('b1', 'blue');
    expect(await admit('green', 't1', 25)).toBe('closed');
    await updateLanes(db.pool, [{ color: 'blue', weight: 50 }, { color: 'green', weight: 50 }]);
    // No green worker heartbeats: blue takes everything rather than wait for it.
    for (let i = 0; i < 10; i++) expect(await admit('blue', 't1', 25)).toBe('ok');
    await live('g1', 'green');
    expect(await admit('blue', 't1', 25)).toBe('share');
    expect(await admit('green', 't1', 25)).toBe('ok');
    expect(await admit('nosuch', 't1', 25)).toBe('closed');
  });

  it('give urgent work only to the stable lane, and synthetic tenants only to their preview lane', async () => {
    await live('b1', 'blue');
    await live('g1', 'green');
    await updateLanes(db.pool, [{ color: 'blue', weight: 90 }, { color: 'green', weight: 10 }]);
    expect(await admit('green', 'real', 25, { urgent: true })).toBe('closed');
    expect(await admit('blue', 'real', 25, { urgent: true })).toBe('ok');
    await updateLanes(db.pool, [{ color: 'blue', weight: 100 }, { color: 'green', weight: 0, role: 'preview', tenants: ['loadtest'] }]);
    expect(await admit('green', 'loadtest', 25)).toBe('ok');
    expect(await admit('blue', 'loadtest', 25)).toBe('closed');
    expect(await admit('green', 'real', 25)).toBe('closed');
    expect(await admit('blue', 'real', 25)).toBe('ok');
  });

  it('call a color ready when the wanted number of its workers of the wanted version heartbeat ready', async () => {
    await live('g1', 'green', 'v2');
    await live('g2', 'green', 'v1');
    await live('g3', 'green', 'v2', false);
    expect(await laneReadiness(db.pool, 'green', 'v2', 2)).toMatchObject({ ready: 1, live: 3, isReady: false });
    await live('g4', 'green', 'v2');
    expect(await laneReadiness(db.pool, 'green', 'v2', 2)).toMatchObject({ ready: 2, isReady: true });
    await db.pool.query(`UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE id = 'g4'`);
    expect(await laneReadiness(db.pool, 'green', 'v2', 2)).toMatchObject({ ready: 1, isReady: false });
  });
});
