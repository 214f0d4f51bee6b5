import { describe, expect, it } from 'vitest';
import { useDeliveryDatabase } from './testing/setup.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';
import { planOccurrence } from './plan.js';
import { claim, type ClaimRequest } from './claims.js';
import { ACCOUNT_BUCKETS, capacityWait, waitingRowsByTenant } from './capacity.js';

const now = new Date();
const fx = useDeliveryDatabase(async () => {
  for (const t of ['wide', 'narrow', 'own-limit']) {
    await seedTenant(fx.db.pool, t);
    await seedContacts(fx.db.pool, t, 40, { offset: ['wide', 'narrow', 'own-limit'].indexOf(t) * 1000 });
  }
  await fx.db.pool.query(`UPDATE tenants SET plan = 'standard' WHERE id = 'wide'`);
});

/** Plan a broadcast to the tenant's contacts; the ids of its queued rows. */
async function planned(tenantId: string): Promise<{ broadcastId: string; ids: number[] }> {
  const b = await seedBroadcast(fx.db.pool, { tenantId });
  await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
  const { rows } = await fx.db.pool.query<{ id: string }>(`SELECT id FROM deliveries WHERE broadcast_id = $1 AND status = 'queued' ORDER BY id`, [b.id]);
  return { broadcastId: b.id, ids: rows.map((r) => Number(r.id)) };
}
const ask = (tenantId: string, broadcastId: string, ids: number[], accountPerSecond: number, tenantPerSecond = 100_000, account: string = ACCOUNT_BUCKETS.sms): ReturnType<typeof claim> => {
  const r: ClaimRequest = {
    ids, workerId: 'w-1', broadcastId, tenantId, urgent: false, lane: 'blue', leaseSeconds: 30,
    keys: [{ key: account, perSecond: accountPerSecond }, { key: `tenant:${tenantId}:sms`, perSecond: tenantPerSecond }],
    fair: [{ key: account, party: tenantId }, { key: `tenant:${tenantId}:sms`, party: broadcastId, weight: 1 }],
  };
  return claim(fx.db.pool, r);
};

describe('what the fair split says about a tenant', () => {
  it('a claim refused at the shared account says WaitingForCapacity with the share by plan weight; one held back by its own limit does not', async () => {
    const wide = await planned('wide');
    const narrow = await planned('narrow');
    // The account (10/s, 10 tokens of burst) is overspent by the first claim (a grant needs a
    // positive balance and may leave a debt); the next two are refused.
    expect((await ask('wide', wide.broadcastId, wide.ids.slice(0, 20), 10)).lane).toBe('ok');
    const refusedWide = await ask('wide', wide.broadcastId, wide.ids.slice(10, 12), 10);
    expect(refusedWide.lane).toBe('wait');
    expect(refusedWide.waitMs).toBeGreaterThan(0);
    expect((await ask('narrow', narrow.broadcastId, narrow.ids.slice(0, 2), 10)).lane).toBe('wait');
    // Both want the account: standard (3) against free (1).
    expect((await capacityWait(fx.db.pool, 'narrow', 'sms'))?.share).toBeCloseTo(1 / 4, 5);
    expect((await capacityWait(fx.db.pool, 'wide', 'sms'))?.share).toBeCloseTo(1, 5); // alone when it was refused
    expect(await capacityWait(fx.db.pool, 'narrow', 'push')).toBeUndefined();

    // A tenant whose own allowance (1/s) is spent waits, but not for shared capacity (the push
    // project's bucket stands in for an account nobody else wants).
    const own = await planned('own-limit');
    expect((await ask('own-limit', own.broadcastId, own.ids.slice(0, 2), 100_000, 1, ACCOUNT_BUCKETS.push)).lane).toBe('ok');
    expect((await ask('own-limit', own.broadcastId, own.ids.slice(2, 3), 100_000, 1, ACCOUNT_BUCKETS.push)).lane).toBe('wait');
    expect(await capacityWait(fx.db.pool, 'own-limit', 'push')).toBeUndefined();
  });

  it('counts each tenant\'s rows waiting to be sent (queued), not those sent or claimed', async () => {
    const before = await waitingRowsByTenant(fx.db.pool);
    const b = await planned('narrow');
    await fx.db.pool.query(`UPDATE deliveries SET status = 'sent' WHERE id = ANY($1::bigint[])`, [b.ids.slice(0, 15)]);
    const after = await waitingRowsByTenant(fx.db.pool);
    expect((after.get('narrow') ?? 0) - (before.get('narrow') ?? 0)).toBe(25);
  });
});
