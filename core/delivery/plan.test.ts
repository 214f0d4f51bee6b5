import { describe, expect, it } from 'vitest';
import { useDeliveryDatabase } from './testing/setup.js';
import { DELIVER_QUEUE, URGENT_PRIORITY } from '../../lib/queue.js';
import { NO_CONSENT, planOccurrence } from './plan.js';
import { previewAudience } from './reads.js';
import { phoneOf, seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

const now = new Date('2026-06-01T15:00:00Z');

const fx = useDeliveryDatabase(async () => {
  await seedTenant(fx.db.pool, 'grace');
  await seedContacts(fx.db.pool, 'grace', 1200, { tags: ['members'], tokens: true });
  await seedContacts(fx.db.pool, 'grace', 30, { tags: ['youth'], offset: 5000 });
});

const jobsOf = async (occurrenceId: string) =>
  (await fx.db.pool.query(`SELECT data, priority FROM pgboss.job WHERE name = $1 AND data->>'occurrenceId' = $2 ORDER BY (data->>'batchNo')::int`, [DELIVER_QUEUE, occurrenceId])).rows;

describe('planOccurrence', () => {
  it('writes one row per recipient, batches of 500, and enqueues one job per batch', async () => {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'grace', audience: { segment: { tags: ['members'] } } });
    const r = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
    expect(r).toMatchObject({ created: true, audienceSize: 1200, queued: 1200, batches: 3 });
    const jobs = await jobsOf(r.occurrenceId);
    expect(jobs.map((j) => j.data.batchNo)).toEqual([0, 1, 2]);
    // Fairness: later batches of a broadcast rank below every broadcast's first batch.
    expect(jobs.map((j) => j.priority)).toEqual([0, -1, -2]);
    const sizes = (await fx.db.pool.query('SELECT batch_no, count(*)::int n FROM deliveries WHERE occurrence_id = $1 GROUP BY 1 ORDER BY 1', [r.occurrenceId])).rows;
    expect(sizes.map((s) => s.n)).toEqual([500, 500, 200]);
  });

  it('planning the same occurrence twice adds no row and no job', async () => {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'grace', audience: { segment: { tags: ['youth'] } } });
    const spec = { broadcastId: b.id, key: 'once', scheduledAt: now };
    const first = await planOccurrence(fx.db.pool, fx.boss, spec, now);
    const second = await planOccurrence(fx.db.pool, fx.boss, spec, now);
    expect(second).toMatchObject({ created: false, occurrenceId: first.occurrenceId, audienceSize: 30 });
    const rows = await fx.db.pool.query('SELECT count(*)::int n FROM deliveries WHERE broadcast_id = $1', [b.id]);
    expect(rows.rows[0].n).toBe(30);
    expect(await jobsOf(first.occurrenceId)).toHaveLength(1);
  });

  it('gives a contact named by two sources one row, and inline numbers that are not contacts a row each', async () => {
    const stranger = '+13125550100';
    const b = await seedBroadcast(fx.db.pool, {
      tenantId: 'grace',
      audience: { segment: { tags: ['youth'] }, contacts: [phoneOf(5000), phoneOf(5001), stranger, stranger] },
    });
    const r = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
    expect(r.audienceSize).toBe(31);
    const keys = (await fx.db.pool.query(`SELECT recipient_key FROM deliveries WHERE broadcast_id = $1 AND recipient_key LIKE 'p:%'`, [b.id])).rows;
    expect(keys).toEqual([{ recipient_key: `p:${stranger}` }]);
  });

  it('skips and counts an inline number that is no contact with consent; opt-outs hold even where the tenant vouches for its inline numbers', async () => {
    await seedTenant(fx.db.pool, 'strict', { inlineNumbersConsented: false });
    await seedContacts(fx.db.pool, 'strict', 3, { tags: ['choir'], offset: 8000 });
    await fx.db.pool.query(`UPDATE contacts SET sms_consent = false WHERE tenant_id = 'strict' AND phone = $1`, [phoneOf(8002)]);
    const stranger = '+13125550111';
    const inline = [phoneOf(8000), phoneOf(8002), stranger];
    const strict = await seedBroadcast(fx.db.pool, { tenantId: 'strict', audience: { contacts: inline } });
    const r = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: strict.id, key: 'once', scheduledAt: now }, now);
    expect(r).toMatchObject({ audienceSize: 3, queued: 1, skipped: 2 });
    // A dry run says the same before anything is planned.
    expect(await previewAudience(fx.db.pool, 'strict', 'sms', { contacts: inline })).toEqual({ audienceSize: 3, optedOut: 0, noConsent: 2, invalid: 0, sendable: 1 });
    const rows = (await fx.db.pool.query(`SELECT address, status, last_error FROM deliveries WHERE broadcast_id = $1 ORDER BY address`, [strict.id])).rows;
    expect(rows).toEqual([
      { address: phoneOf(8000), status: 'queued', last_error: null },
      { address: phoneOf(8002), status: 'skipped', last_error: NO_CONSENT },
      { address: stranger, status: 'skipped', last_error: NO_CONSENT },
    ].sort((a, b) => a.address.localeCompare(b.address)));

    // A tenant that holds consent for its inline numbers texts the stranger; a contact recorded
    // without consent stays skipped, and an opted-out stranger is skipped as opted out.
    await fx.db.pool.query(`UPDATE tenants SET inline_numbers_consented = true WHERE id = 'strict'`);
    const optedOut = '+13125550112';
    await fx.db.pool.query(`INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source) VALUES ('strict', $1, now(), 'inbound_keyword')`, [optedOut]);
    const vouched = await seedBroadcast(fx.db.pool, { tenantId: 'strict', audience: { contacts: [...inline, optedOut] } });
    await planOccurrence(fx.db.pool, fx.boss, { broadcastId: vouched.id, key: 'once', scheduledAt: now }, now);
    const after = (await fx.db.pool.query(`SELECT address, status, last_error FROM deliveries WHERE broadcast_id = $1`, [vouched.id])).rows;
    expect(Object.fromEntries(after.map((x) => [x.address, [x.status, x.last_error]]))).toEqual({
      [phoneOf(8000)]: ['queued', null],
      [phoneOf(8002)]: ['skipped', NO_CONSENT],
      [stranger]: ['queued', null],
      [optedOut]: ['skipped', 'opted out'],
    });
  });

  it('records opted-out numbers as skipped and leaves non-consenting contacts out', async () => {
    await fx.db.pool.query(`INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source) VALUES ('grace', $1, now(), 'inbound_keyword')`, [phoneOf(5002)]);
    await fx.db.pool.query(`UPDATE contacts SET sms_consent = false WHERE phone = $1`, [phoneOf(5003)]);
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'grace', audience: { segment: { tags: ['youth'] } } });
    const r = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
    expect(r).toMatchObject({ audienceSize: 29, skipped: 1, queued: 28 });
    const skipped = (await fx.db.pool.query(`SELECT address, last_error FROM deliveries WHERE broadcast_id = $1 AND status = 'skipped'`, [b.id])).rows;
    expect(skipped).toEqual([{ address: phoneOf(5002), last_error: 'opted out' }]);
  });

  it('push: one row per active device token, or one row for a topic; urgent jobs outrank everything', async () => {
    await fx.db.pool.query(`UPDATE device_tokens SET active = false WHERE token = (SELECT min(token) FROM device_tokens)`);
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'grace', channel: 'push', priority: 'urgent', audience: { segment: { tags: ['members'] } } });
    const r = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
    expect(r.audienceSize).toBe(1199);
    expect((await jobsOf(r.occurrenceId)).every((j) => j.priority === URGENT_PRIORITY)).toBe(true);
    const t = await seedBroadcast(fx.db.pool, { tenantId: 'grace', channel: 'push', audience: { topic: 'students-cs101' } });
    const rt = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: t.id, key: 'once', scheduledAt: now }, now);
    expect(rt.audienceSize).toBe(1);
  });

  it("a topic is the tenant's own: two tenants' `students` are two topics on the wire, neither reaching the other's subscribers", async () => {
    await seedTenant(fx.db.pool, 'northfield');
    const grace = await seedBroadcast(fx.db.pool, { tenantId: 'grace', channel: 'push', audience: { topic: 'students' } });
    const northfield = await seedBroadcast(fx.db.pool, { tenantId: 'northfield', channel: 'push', audience: { topic: 'students' } });
    // A tenant naming another's wire topic still gets a topic of its own.
    const forged = await seedBroadcast(fx.db.pool, { tenantId: 'northfield', channel: 'push', audience: { topic: 'grace.students' } });
    for (const b of [grace, northfield, forged]) await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
    const topicOf = async (id: string) => (await fx.db.pool.query(`SELECT address FROM deliveries WHERE broadcast_id = $1`, [id])).rows.map((r) => r.address);
    expect(await topicOf(grace.id)).toEqual(['grace.students']);
    expect(await topicOf(northfield.id)).toEqual(['northfield.students']);
    expect(await topicOf(forged.id)).toEqual(['northfield.grace.students']);
  });

  it('local time: each recipient is due at that wall-clock time in their own zone; past ones wait for nobody, expired ones are recorded', async () => {
    await seedTenant(fx.db.pool, 'tz');
    await seedContacts(fx.db.pool, 'tz', 1, { tz: 'Asia/Tokyo', offset: 100 });
    await seedContacts(fx.db.pool, 'tz', 1, { tz: 'America/Los_Angeles', offset: 101 });
    await seedContacts(fx.db.pool, 'tz', 1, { tz: null, offset: 102 }); // tenant default: America/Chicago
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'tz', expireAfterSeconds: 7200 });
    // 09:00 on 2026-06-01: Tokyo 00:00Z (expired by 15:00Z), Chicago 14:00Z (due, inside its two hours), LA 16:00Z (later)
    const r = await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: '2026-06-01', scheduledAt: new Date('2026-06-01T00:00:00Z'), local: { date: '2026-06-01', time: '09:00' } }, now);
    expect(r).toMatchObject({ audienceSize: 3, expired: 1, queued: 1, deferred: 1 });
    const rows = (await fx.db.pool.query(`SELECT status, due_at FROM deliveries WHERE broadcast_id = $1 ORDER BY due_at`, [b.id])).rows;
    expect(rows.map((x) => [x.status, x.due_at.toISOString()])).toEqual([
      ['expired', '2026-06-01T00:00:00.000Z'],
      ['queued', '2026-06-01T14:00:00.000Z'],
      ['deferred', '2026-06-01T16:00:00.000Z'],
    ]);
  });
});
