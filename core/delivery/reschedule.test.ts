import { describe, expect, it } from 'vitest';
import { planOccurrence } from './plan.js';
import { rescheduleContacts, rescheduleOccurrence } from './reschedule.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';
import { useDeliveryDatabase } from './testing/setup.js';
import { upsertContacts } from '../../services/api/contacts-upsert.js';
import { phoneOf } from './testing/fixtures.js';

const fx = useDeliveryDatabase(async ({ db }) => {
  await seedTenant(db.pool, 'tz');
  await seedContacts(db.pool, 'tz', 1, { tz: 'America/Los_Angeles', offset: 1 });
  await seedContacts(db.pool, 'tz', 1, { tz: 'America/New_York', offset: 2 });
});
const now = new Date('2026-06-01T12:00:00Z');
const dues = async (broadcastId: string) =>
  (await fx.db.pool.query(`SELECT status, due_at, next_attempt_at, expires_at FROM deliveries WHERE broadcast_id = $1 ORDER BY contact_id`, [broadcastId])).rows;

describe('rescheduling what is not yet sent', () => {
  it('a new local time moves every waiting row to its recipient’s new instant, once', async () => {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'tz', expireAfterSeconds: 3600 });
    await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now, local: { date: '2026-06-01', time: '17:00' } }, now);
    // 17:00 PDT = 00:00Z next day; 17:00 EDT = 21:00Z
    expect((await dues(b.id)).map((r) => r.due_at.toISOString())).toEqual(['2026-06-02T00:00:00.000Z', '2026-06-01T21:00:00.000Z']);
    expect(await rescheduleOccurrence(fx.db.pool, b.id, 'once', { date: '2026-06-01', time: '18:30' })).toBe(2);
    const rows = await dues(b.id);
    expect(rows.map((r) => [r.status, r.due_at.toISOString(), r.next_attempt_at.toISOString(), r.expires_at.toISOString()])).toEqual([
      ['deferred', '2026-06-02T01:30:00.000Z', '2026-06-02T01:30:00.000Z', '2026-06-02T02:30:00.000Z'],
      ['deferred', '2026-06-01T22:30:00.000Z', '2026-06-01T22:30:00.000Z', '2026-06-01T23:30:00.000Z'],
    ]);
    expect(await rescheduleOccurrence(fx.db.pool, b.id, 'once', { date: '2026-06-01', time: '18:30' })).toBe(0);
  });

  it("a contact's new time zone moves their waiting rows; sent rows keep their history", async () => {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'tz' });
    await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now, local: { date: '2026-06-01', time: '17:00' } }, now);
    const [la] = (await fx.db.pool.query(`SELECT id, phone FROM contacts WHERE time_zone = 'America/Los_Angeles'`)).rows;
    await fx.db.pool.query(`UPDATE contacts SET time_zone = 'Europe/London' WHERE id = $1`, [la.id]);
    expect(await rescheduleContacts(fx.db.pool, 'tz', [la.phone])).toBe(2); // their row in each of the two broadcasts
    expect((await dues(b.id))[0].due_at.toISOString()).toBe('2026-06-01T16:00:00.000Z'); // 17:00 BST
    await fx.db.pool.query(`UPDATE deliveries SET status = 'sent' WHERE contact_id = $1`, [la.id]);
    await fx.db.pool.query(`UPDATE contacts SET time_zone = 'Asia/Tokyo' WHERE id = $1`, [la.id]);
    expect(await rescheduleContacts(fx.db.pool, 'tz', [la.phone])).toBe(0);
  });

  it('a contact import that changes a time zone reschedules through the api', async () => {
    await seedContacts(fx.db.pool, 'tz', 1, { tz: 'America/Chicago', offset: 3 });
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'tz', audience: { contacts: [phoneOf(3)] } });
    await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now, local: { date: '2026-06-01', time: '17:00' } }, now);
    expect((await dues(b.id))[0].due_at.toISOString()).toBe('2026-06-01T22:00:00.000Z'); // 17:00 CDT
    await upsertContacts(fx.db.pool, 'tz', [{ row: 1, phone: phoneOf(3), time_zone: 'America/Denver', consent_source: 'import' }], now);
    expect((await dues(b.id))[0].due_at.toISOString()).toBe('2026-06-01T23:00:00.000Z'); // 17:00 MDT
  });
});
