import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/database.js';
import { DELIVER_QUEUE, startBoss, type DeliverJob } from '../../lib/queue.js';
import { planOccurrence } from './plan.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

let db: TestDatabase;
let boss: PgBoss;
const now = new Date('2026-06-01T15:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  boss = await startBoss(db.url, { supervise: false });
  await seedTenant(db.pool, 'huge');
  await seedContacts(db.pool, 'huge', 5_000);
  await seedTenant(db.pool, 'small');
  await seedContacts(db.pool, 'small', 20, { offset: 900_000 });
  await seedTenant(db.pool, 'campus');
  await seedContacts(db.pool, 'campus', 20, { offset: 800_000, tokens: true });
});
afterAll(async () => {
  await boss?.stop({ graceful: false });
  await db?.drop();
});

describe('job order between tenants', () => {
  it("a small tenant's broadcast is not stuck behind a huge one, and urgent goes first of all", async () => {
    const huge = await seedBroadcast(db.pool, { tenantId: 'huge' });
    const small = await seedBroadcast(db.pool, { tenantId: 'small' });
    const alert = await seedBroadcast(db.pool, { tenantId: 'campus', channel: 'push', priority: 'urgent' });
    const hugeOcc = (await planOccurrence(db.pool, boss, { broadcastId: huge.id, key: 'once', scheduledAt: now }, now)).occurrenceId;
    const smallOcc = (await planOccurrence(db.pool, boss, { broadcastId: small.id, key: 'once', scheduledAt: now }, now)).occurrenceId;
    const alertOcc = (await planOccurrence(db.pool, boss, { broadcastId: alert.id, key: 'once', scheduledAt: now }, now)).occurrenceId;

    // What a worker fetches, in order (the huge broadcast was enqueued first, with 10 batches).
    const order: string[] = [];
    for (;;) {
      const [job] = await boss.fetch<DeliverJob>(DELIVER_QUEUE);
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
