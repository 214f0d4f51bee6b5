import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { metrics } from '../../lib/metrics.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ReceiptWriter, type CommonReceipt } from './receipt-writer.js';
import { seedBroadcast } from '../../services/api/test-support.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  await db.pool.query(`INSERT INTO tenants (id, name) VALUES ('grace', 'Grace') ON CONFLICT DO NOTHING`);
});
afterAll(async () => {
  await db?.drop();
});

const delivered = (providerMessageId: string, eventId = randomUUID()): CommonReceipt => ({
  eventId, eventType: 'message.finalized', providerMessageId, payload: { id: providerMessageId }, occurredAt: null, receivedAt: new Date(), delivered: true,
});

/** Hold provider_events so the writer's first statement waits; what arrives meanwhile queues behind it. */
async function holdingTheTable<T>(whileHeld: () => T): Promise<T> {
  const holder = await db.pool.connect();
  await holder.query('BEGIN');
  await holder.query('LOCK TABLE provider_events IN EXCLUSIVE MODE');
  try {
    const out = whileHeld();
    await new Promise((r) => setTimeout(r, 100));
    return out;
  } finally {
    await holder.query('COMMIT');
    holder.release();
  }
}

const statements = async () => (await metrics.receiptsPerStatement.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;

describe('ReceiptWriter', () => {
  it('writes what arrives while its statements run as one group: one statement for ten receipts', async () => {
    const rows = Array.from({ length: 11 }, (_, i) => ({ address: `+12025550${400 + i}`, status: 'sent', providerMessageId: `msg-ten-${i}` }));
    const { deliveryIds } = await seedBroadcast(db.pool, 'grace', rows);
    const writer = new ReceiptWriter(db.pool, { maxInFlight: 1 });
    const before = await statements();
    const pending = await holdingTheTable(() => rows.map((r) => writer.record(delivered(r.providerMessageId))));
    const results = await Promise.all(pending);
    expect(results.every((r) => r !== null && typeof r.deliveryId === 'number')).toBe(true);
    expect((await statements()) - before).toBe(2); // the first alone, then the ten that queued behind it
    const statuses = await db.pool.query('SELECT DISTINCT status FROM deliveries WHERE id = ANY($1)', [deliveryIds]);
    expect(statuses.rows).toEqual([{ status: 'delivered' }]);
  });

  it('groups what arrives while a statement runs; a receipt PostgreSQL refuses fails alone, the rest of its group is recorded', async () => {
    const rows = Array.from({ length: 8 }, (_, i) => ({ address: `+12025550${300 + i}`, status: 'sent', providerMessageId: `msg-group-${i}` }));
    const { deliveryIds } = await seedBroadcast(db.pool, 'grace', rows);
    const poison = randomUUID();
    // PostgreSQL refuses this one event, as a constraint would.
    await db.pool.query(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.event_id = '${poison}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_poison BEFORE INSERT ON provider_events FOR EACH ROW EXECUTE FUNCTION refuse_poison()');

    // The first statement waits on the held table; the other receipts queue behind it as one group.
    const writer = new ReceiptWriter(db.pool, { maxInFlight: 1 });
    const pending = await holdingTheTable(() => rows.map((r, i) => writer.record(delivered(r.providerMessageId, i === 4 ? poison : randomUUID()))));
    const results = await Promise.allSettled(pending);
    await db.pool.query('DROP TRIGGER refuse_poison ON provider_events; DROP FUNCTION refuse_poison()');
    expect(results.map((r) => r.status)).toEqual(rows.map((_, i) => (i === 4 ? 'rejected' : 'fulfilled')));
    const statuses = new Map((await db.pool.query('SELECT id, status FROM deliveries WHERE id = ANY($1)', [deliveryIds])).rows.map((r) => [r.id, r.status]));
    expect(deliveryIds.map((id) => statuses.get(id))).toEqual(deliveryIds.map((_, i) => (i === 4 ? 'sent' : 'delivered')));
  });
});
