import { describe, expect, it } from 'vitest';
import { useDeliveryDatabase } from './testing/setup.js';
import { planOccurrence } from './plan.js';
import { markDelivered, recordOutcomes } from './outcomes.js';
import { OutcomeRecorder } from './outcome-recorder.js';
import { ManualClock } from '../../lib/clock.js';
import { seedBroadcast, seedContacts, seedTenant } from './testing/fixtures.js';

const now = new Date('2026-06-01T15:00:00Z');

const fx = useDeliveryDatabase(async () => {
  await seedTenant(fx.db.pool, 'grace');
  await seedContacts(fx.db.pool, 'grace', 10, { tokens: true });
});

/** Plan a broadcast and mark its rows in flight, as a worker's claim would. */
async function inFlightRows(channel: 'sms' | 'push', maxAttempts = 3) {
  const b = await seedBroadcast(fx.db.pool, { tenantId: 'grace', channel, maxAttempts });
  await planOccurrence(fx.db.pool, fx.boss, { broadcastId: b.id, key: 'once', scheduledAt: now }, now);
  const { rows } = await fx.db.pool.query<{ id: number }>(
    `UPDATE deliveries SET status = 'sending', attempts = attempts + 1 WHERE broadcast_id = $1 RETURNING id`, [b.id]);
  return rows.map((r) => r.id).sort((a, b) => a - b);
}
const row = async (id: number) => (await fx.db.pool.query('SELECT * FROM deliveries WHERE id = $1', [id])).rows[0];

describe('recordOutcomes', () => {
  it('accepted → sent with the provider id; a receipt then marks it delivered, once', async () => {
    const [id] = await inFlightRows('sms');
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'accepted', providerMessageId: 'msg-1' } }], now);
    expect(await row(id!)).toMatchObject({ status: 'sent', provider_message_id: 'msg-1', sent_at: now });
    expect(await markDelivered(fx.db.pool, id!, now)).toBe(true);
    expect(await markDelivered(fx.db.pool, id!, now)).toBe(false);
    expect((await row(id!)).status).toBe('delivered');
  });

  it('retryable → retry after a backoff, then dead-lettered with the reason once maxAttempts is spent', async () => {
    const [id] = await inFlightRows('sms', 2);
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'retryable', code: '40002', reason: 'carrier busy', fault: 'recipient', retryAfterMs: 30_000 } }], now);
    const r1 = await row(id!);
    expect(r1).toMatchObject({ status: 'retry', error_code: '40002', attempts: 1 });
    expect(r1.next_attempt_at.getTime()).toBeGreaterThanOrEqual(now.getTime() + 30_000);
    await fx.db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 2 WHERE id = $1`, [id]);
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'retryable', code: '40002', reason: 'carrier busy', fault: 'recipient' } }], now);
    const r2 = await row(id!);
    expect(r2.status).toBe('dead');
    expect(r2.last_error).toMatch(/dead-lettered after 2 attempts: carrier busy/);
    expect(r2.next_attempt_at).toBeNull();
  });

  it('permanent fails only that delivery; 40300 records an opt-out; others in the same call are unaffected', async () => {
    const [a, b, c] = await inFlightRows('sms');
    await recordOutcomes(fx.db.pool, [
      { deliveryId: a!, outcome: { kind: 'permanent', code: '40001', reason: 'not a mobile number' } },
      { deliveryId: b!, outcome: { kind: 'opted_out', code: '40300', reason: 'blocked: STOP' } },
      { deliveryId: c!, outcome: { kind: 'accepted', providerMessageId: 'ok' } },
    ], now);
    expect((await row(a!)).status).toBe('failed');
    expect(await row(b!)).toMatchObject({ status: 'failed', error_code: '40300' });
    expect((await row(c!)).status).toBe('sent');
    const opt = await fx.db.pool.query(`SELECT source FROM opt_outs WHERE phone = $1`, [(await row(b!)).address]);
    expect(opt.rows).toEqual([{ source: 'provider_40300' }]);
  });

  it('invalid_token deactivates the device token with the reason', async () => {
    const [id] = await inFlightRows('push');
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'invalid_token', code: 'UNREGISTERED', reason: 'gone' } }], now);
    const t = await fx.db.pool.query('SELECT active, invalid_reason FROM device_tokens WHERE id = $1', [(await row(id!)).device_token_id]);
    expect(t.rows[0]).toEqual({ active: false, invalid_reason: 'UNREGISTERED' });
  });

  it('wait (circuit open) retries later without spending an attempt', async () => {
    const [id] = await inFlightRows('sms');
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'wait', reason: 'circuit open', retryAfterMs: 5_000 } }], now);
    expect(await row(id!)).toMatchObject({ status: 'retry', attempts: 0, next_attempt_at: new Date(now.getTime() + 5_000) });
  });

  it('a retry that could only happen after expiry is recorded as expired instead', async () => {
    const [id] = await inFlightRows('sms');
    await fx.db.pool.query(`UPDATE deliveries SET expires_at = $2 WHERE id = $1`, [id, new Date(now.getTime() + 10_000)]);
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'retryable', code: '40006', reason: 'busy', fault: 'recipient', retryAfterMs: 60_000 } }], now);
    expect(await row(id!)).toMatchObject({ status: 'expired', next_attempt_at: null });
  });

  it('a late report cannot resurrect a finished row', async () => {
    const [id] = await inFlightRows('sms');
    await fx.db.pool.query(`UPDATE deliveries SET status = 'cancelled' WHERE id = $1`, [id]);
    await recordOutcomes(fx.db.pool, [{ deliveryId: id!, outcome: { kind: 'accepted', providerMessageId: 'late' } }], now);
    expect((await row(id!)).status).toBe('cancelled');
  });
});

describe('OutcomeRecorder when the database is out of reach', () => {
  /** The test pool, except that its next `failures` checkouts fail as a refused or dropped connection would. */
  function flaky(failures: number, error: () => Error) {
    let left = failures;
    const pool = fx.db.pool;
    return {
      tries: () => failures - left,
      pool: new Proxy(pool, {
        get(target, prop, receiver) {
          if (prop === 'connect') {
            return () => {
              if (left > 0) {
                left--;
                return Promise.reject(error());
              }
              return target.connect();
            };
          }
          return Reflect.get(target, prop, receiver) as unknown;
        },
      }),
    };
  }
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const adminShutdown = () => Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });

  it('retries a write that failed for a connection fault until it lands: the outcome is never dropped', async () => {
    const [a, b] = await inFlightRows('sms');
    let n = 0;
    const f = flaky(3, () => (n++ % 2 ? adminShutdown() : refused()));
    const recorder = new OutcomeRecorder(f.pool, new ManualClock(now), { retryMs: { first: 5, max: 20 } });
    await Promise.all([
      recorder.add({ deliveryId: a!, outcome: { kind: 'accepted', providerMessageId: 'late-a' } }),
      recorder.add({ deliveryId: b!, outcome: { kind: 'accepted', providerMessageId: 'late-b' } }),
    ]);
    expect(f.tries()).toBe(3);
    expect(await row(a!)).toMatchObject({ status: 'sent', provider_message_id: 'late-a' });
    expect(await row(b!)).toMatchObject({ status: 'sent', provider_message_id: 'late-b' });
  });

  it('does not retry a statement the database refused (not a connection fault); close() stops retrying and leaves the row in flight for the sweeper', async () => {
    const [a, b] = await inFlightRows('sms');
    const bad = flaky(1, () => Object.assign(new Error('duplicate key'), { code: '23505' }));
    const r1 = new OutcomeRecorder(bad.pool, new ManualClock(now), { retryMs: { first: 5, max: 20 } });
    await expect(r1.add({ deliveryId: a!, outcome: { kind: 'accepted', providerMessageId: 'x' } })).rejects.toThrow('duplicate key');
    expect(bad.tries()).toBe(1);

    const down = flaky(1_000_000, refused);
    const r2 = new OutcomeRecorder(down.pool, new ManualClock(now), { retryMs: { first: 5, max: 5 } });
    const pending = r2.add({ deliveryId: b!, outcome: { kind: 'accepted', providerMessageId: 'y' } });
    await expect.poll(() => down.tries()).toBeGreaterThan(2);
    await r2.close().catch(() => {});
    await expect(pending).rejects.toThrow('ECONNREFUSED');
    expect((await row(b!)).status).toBe('sending');
  });

  it('whenBelow(n) waits until at most n outcomes are unwritten: the worker claims nothing more while the database lags', async () => {
    const [a, b, c] = await inFlightRows('sms');
    // The database "lags": the write's connection waits until the gate opens.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const pool = fx.db.pool;
    const slow = new Proxy(pool, {
      get: (target, prop, receiver) => (prop === 'connect' ? () => gate.then(() => target.connect()) : (Reflect.get(target, prop, receiver) as unknown)),
    });
    const recorder = new OutcomeRecorder(slow, new ManualClock(now), { maxDelayMs: 1 });
    const writes = [a!, b!, c!].map((id) => recorder.add({ deliveryId: id, outcome: { kind: 'accepted', providerMessageId: `m-${id}` } }));
    let below = false;
    const waiting = recorder.whenBelow(1).then(() => (below = true));
    await new Promise((r) => setTimeout(r, 50)); // the flush has started and waits at the gate
    expect(recorder.backlog).toBe(3);
    expect(below).toBe(false);
    open();
    await Promise.all(writes);
    await waiting;
    expect(below).toBe(true);
    expect(recorder.backlog).toBe(0);
    expect((await row(c!)).status).toBe('sent');
  });
});
