import { describe, expect, it } from 'vitest';
import { explain } from '../../devenv/explain.js';
import { CLAIM_ROWS, SELECT_BATCH_ROWS, SELECT_ROWS_BY_ID } from './claims.js';
import { DELIVERY_COUNTS } from './broadcasts.js';
import { occurrenceId as occurrenceIdFor } from './ids.js';
import { planOccurrence, planRowsStatement } from './plan.js';
import { SWEEP_ORPHANS, WAKE_DUE } from './sweeper.js';
import { useDeliveryDatabase } from './testing/setup.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

/**
 * EXPLAIN of the statements that run per batch, per sweep and per status refresh,
 * imported from where the code defines them, on a realistically sized table: each
 * must use its index, never scan deliveries. The plans are printed so a reader
 * sees them (`vitest run hot-queries`).
 */
let occurrenceId: string;
let smallBroadcastId: string;
const now = new Date('2026-06-01T15:00:00Z');
const noSeqScan = /Seq Scan on deliveries/;

const fx = useDeliveryDatabase(async () => {
  await seedTenant(fx.db.pool, 'big');
  await seedContacts(fx.db.pool, 'big', 30_000, { tags: ['members'] });
  await seedContacts(fx.db.pool, 'big', 200, { tags: ['youth'], offset: 100_000 });
  for (let i = 0; i < 3; i++) {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'big', audience: { segment: { tags: ['members'] } } });
    occurrenceId = (await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now)).occurrenceId;
  }
  const small = await seedBroadcast(fx.db.pool, { tenantId: 'big', audience: { segment: { tags: ['youth'] } } });
  smallBroadcastId = small.id;
  await planOccurrence(fx.db.pool, fx.boss, { broadcastId: small.id, key: 'once', scheduledAt: now }, now);
  await fx.db.pool.query(`UPDATE deliveries SET status = 'sent', provider_message_id = 'pm-' || id WHERE id % 2 = 0`);
  await fx.db.pool.query('ANALYZE');
});

describe('hot queries use their indexes', () => {
  it('a worker loading its batch (deliver-batch.ts)', async () => {
    const plan = await explain(fx.db.pool, SELECT_BATCH_ROWS, [occurrenceId, 7]);
    expect(plan).toMatch(/deliveries_batch/);
    expect(plan).not.toMatch(noSeqScan);
  });

  it('a worker loading the rows a sweeper job names, and claiming them (deliver-batch.ts)', async () => {
    for (const plan of [
      await explain(fx.db.pool, SELECT_ROWS_BY_ID, [[1, 2, 3]]),
      await explain(fx.db.pool, CLAIM_ROWS, [[1, 2, 3], 'worker-1', 1, 'GSM-7', smallBroadcastId, 'blue', 'big', false, 30, ['account:telnyx:sms'], [50], 3, ['account:telnyx:sms'], ['big'], [null]]),
    ]) {
      expect(plan).toMatch(/deliveries_pkey/);
      expect(plan).not.toMatch(noSeqScan);
    }
  });

  it('the sweeper waking due retries and deferrals (sweeper.ts)', async () => {
    const plan = await explain(fx.db.pool, WAKE_DUE, [now, 5_000]);
    expect(plan).toMatch(/deliveries_wakeup/);
    expect(plan).not.toMatch(noSeqScan);
  });

  it('the sweeper finding rows in flight on a dead worker (sweeper.ts, make_interval)', async () => {
    const plan = await explain(fx.db.pool, SWEEP_ORPHANS, [now, 30]);
    expect(plan).toMatch(/deliveries_inflight/);
    expect(plan).not.toMatch(noSeqScan);
  });

  it('status counts of a small broadcast among big ones (broadcasts.ts)', async () => {
    const plan = await explain(fx.db.pool, DELIVERY_COUNTS, [smallBroadcastId]);
    expect(plan).toMatch(/deliveries_broadcast_status/);
    expect(plan).not.toMatch(noSeqScan);
  });

  it('planning a small tagged segment of a big tenant (plan.ts)', async () => {
    const b = await seedBroadcast(fx.db.pool, { tenantId: 'big', audience: { segment: { tags: ['youth'] } } });
    const statement = planRowsStatement(
      { tenant_id: 'big', channel: 'sms', audience: b.audience, expire_after_seconds: b.expireAfterSeconds },
      { broadcastId: b.id, key: 'once', scheduledAt: now },
      occurrenceIdFor(b.id, 'once'),
      now,
    );
    const plan = await explain(fx.db.pool, statement);
    expect(plan).toMatch(/contacts_tags/);
    expect(plan).not.toMatch(/Seq Scan on contacts/);
  });
});
