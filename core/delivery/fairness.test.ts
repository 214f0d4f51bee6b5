import { describe, expect, it } from 'vitest';
import { useDeliveryDatabase } from './testing/setup.js';
import { DELIVER_QUEUE, type DeliverJob } from '../../lib/queue.js';
import { planOccurrence } from './plan.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

const now = new Date('2026-06-01T15:00:00Z');

const fx = useDeliveryDatabase(async () => {
  await seedTenant(fx.db.pool, 'huge');
  await seedContacts(fx.db.pool, 'huge', 5_000);
  await seedTenant(fx.db.pool, 'small');
  await seedContacts(fx.db.pool, 'small', 20, { offset: 900_000 });
  await seedTenant(fx.db.pool, 'campus');
  await seedContacts(fx.db.pool, 'campus', 20, { offset: 800_000, tokens: true });
});

describe('job order between tenants', () => {
  it("a small tenant's broadcast is not stuck behind a huge one, and urgent goes first of all", async () => {
    const huge = await seedBroadcast(fx.db.pool, { tenantId: 'huge' });
    const small = await seedBroadcast(fx.db.pool, { tenantId: 'small' });
    const alert = await seedBroadcast(fx.db.pool, { tenantId: 'campus', channel: 'push', priority: 'urgent' });
    const hugeOcc = (await planOccurrence(fx.db.pool, fx.boss, { broadcastId: huge.id, key: 'once', scheduledAt: now }, now)).occurrenceId;
    const smallOcc = (await planOccurrence(fx.db.pool, fx.boss, { broadcastId: small.id, key: 'once', scheduledAt: now }, now)).occurrenceId;
    const alertOcc = (await planOccurrence(fx.db.pool, fx.boss, { broadcastId: alert.id, key: 'once', scheduledAt: now }, now)).occurrenceId;

    // What a worker fetches, in order (the huge broadcast was enqueued first, with 10 batches).
    const order: string[] = [];
    for (;;) {
      const [job] = await fx.boss.fetch<DeliverJob>(DELIVER_QUEUE);
      if (!job) break;
      const name = job.data.occurrenceId === hugeOcc ? 'huge' : job.data.occurrenceId === smallOcc ? 'small' : job.data.occurrenceId === alertOcc ? 'urgent' : '?';
      order.push(`${name}#${job.data.batchNo}`);
    }
    expect(order).toHaveLength(12);
    expect(order[0]).toBe('urgent#0');
    // The small tenant's only batch comes right after the huge tenant's first, not after all ten.
    expect(order.indexOf('small#0')).toBeLessThanOrEqual(2);
    expect(order.slice(3)).toEqual(Array.from({ length: 9 }, (_, i) => `huge#${i + 1}`));
  });
});
