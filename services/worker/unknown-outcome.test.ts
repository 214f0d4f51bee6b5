import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ManualClock } from '../../lib/clock.js';
import { planOccurrence } from '../../core/delivery/plan.js';
import { deliveryCounts } from '../../core/delivery/broadcasts.js';
import { phoneOf, seedBroadcast, seedTenant } from '../../core/delivery/testing/fixtures.js';
import { pushTokenAfterAccept, pushTokenOk, smsNumberAfterAccept } from '../simulator/behaviours.js';
import { startDeliveryStack, type DeliveryStack } from '../../devenv/delivery-stack.js';

let db: TestDatabase;
let h: DeliveryStack;
const clock = new ManualClock('2026-06-01T15:00:00Z', { running: true });

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  // The client gives up after 2 s (ordinary sends answer in milliseconds, even on a busy
  // machine); the simulator holds a lost answer for 6 s.
  h = await startDeliveryStack({ pool: db.pool, url: db.url, clock, telnyxTimeoutMs: 2_000, sim: { holdMs: 6_000 }, breaker: { volumeThreshold: 1_000 } });
  await seedTenant(db.pool, 'lost');
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

const plan = (broadcastId: string) => planOccurrence(db.pool, h.boss, { broadcastId, key: 'once', scheduledAt: clock.now() }, clock.now());
const rowsOf = async (broadcastId: string) =>
  Object.fromEntries((await db.pool.query<{ address: string; status: string; possible_duplicate: boolean; attempts: number }>(
    'SELECT address, status, possible_duplicate, attempts FROM deliveries WHERE broadcast_id = $1', [broadcastId])).rows.map((r) => [r.address, r]));

describe('a send whose answer was lost is sent again as a possible duplicate, and counted', () => {
  it('SMS: accepted then held past the timeout, accepted then reset; the others are not flagged', async () => {
    const hold = smsNumberAfterAccept('hold', 11);
    const reset = smsNumberAfterAccept('reset', 11);
    const b = await seedBroadcast(db.pool, { tenantId: 'lost', audience: { contacts: [phoneOf(1), hold, reset, phoneOf(2)] } });
    await plan(b.id);
    const worker = await h.startWorker();
    try {
      expect(await h.settled(b.id, 60_000)).toEqual({ sent: 4 });
    } finally {
      await worker.stop(5_000);
    }
    const rows = await rowsOf(b.id);
    // The provider got both lost-answer texts twice: Telnyx takes no idempotency key.
    expect(h.sim.countFor(hold)).toBe(2);
    expect(h.sim.countFor(reset)).toBe(2);
    expect(rows[hold]).toMatchObject({ status: 'sent', possible_duplicate: true });
    expect(rows[reset]).toMatchObject({ status: 'sent', possible_duplicate: true });
    expect(rows[phoneOf(1)]).toMatchObject({ status: 'sent', possible_duplicate: false });
    expect(h.sim.countFor(phoneOf(1))).toBe(1);
    expect((await deliveryCounts(db.pool, b.id)).possibleDuplicates).toBe(2);
  });

  it('push: accepted then reset; one request per attempt (no SDK retry behind our back)', async () => {
    const reset = pushTokenAfterAccept('reset', 12);
    await db.pool.query(
      `INSERT INTO device_tokens (tenant_id, token, tags) VALUES ('lost', $1, '{app}'), ('lost', $2, '{app}')`, [reset, pushTokenOk(12)]);
    const b = await seedBroadcast(db.pool, { tenantId: 'lost', channel: 'push', audience: { segment: { tags: ['app'] } } });
    const before = h.sim.received().push.requests;
    await plan(b.id);
    const worker = await h.startWorker();
    try {
      expect(await h.settled(b.id, 60_000)).toEqual({ sent: 2 });
    } finally {
      await worker.stop(5_000);
    }
    const rows = await rowsOf(b.id);
    expect(rows[reset]).toMatchObject({ status: 'sent', possible_duplicate: true, attempts: 1 });
    expect(rows[pushTokenOk(12)]).toMatchObject({ status: 'sent', possible_duplicate: false });
    expect(h.sim.countFor(reset)).toBe(2);
    // Three requests: two first sends and one resend.
    expect(h.sim.received().push.requests - before).toBe(3);
    expect((await deliveryCounts(db.pool, b.id)).possibleDuplicates).toBe(1);
  });
});
