import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ManualClock } from '../../lib/clock.js';
import { planOccurrence } from '../../core/delivery/plan.js';
import { resumeBroadcast, suspendBroadcast, upsertBroadcast } from '../../core/delivery/broadcasts.js';
import { phoneOf, seedBroadcast, seedContacts, seedTenant } from '../../core/delivery/testing/fixtures.js';
import { pushTokenFailing, smsNumberFailing } from '../simulator/behaviours.js';
import { startDeliveryStack, type DeliveryStack } from '../../devenv/delivery-stack.js';
import type { RunningWorker } from './worker.js';

let db: TestDatabase;
let h: DeliveryStack;
let worker: RunningWorker | undefined;
// 15:00Z = 10:00 in Chicago, outside the tenants' quiet hours (21:00–08:00)
const clock = new ManualClock('2026-06-01T15:00:00Z', { running: true });

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  h = await startDeliveryStack({ pool: db.pool, url: db.url, clock, breaker: { volumeThreshold: 5, resetTimeoutMs: 500 } });
  await seedTenant(db.pool, 'grace', { quiet: ['21:00', '08:00'] });
  await seedContacts(db.pool, 'grace', 120, { tags: ['members'], tokens: true });
});
afterEach(async () => {
  await worker?.stop(5_000);
  worker = undefined;
  h.sim.configure({ down: false, latencyMs: 0 });
  clock.set('2026-06-01T15:00:00Z');
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

const plan = (broadcastId: string) => planOccurrence(db.pool, h.boss, { broadcastId, key: 'once', scheduledAt: clock.now() }, clock.now());
const statuses = async (broadcastId: string) =>
  (await db.pool.query('SELECT address, status, error_code, last_error, segments, attempts FROM deliveries WHERE broadcast_id = $1 ORDER BY id', [broadcastId])).rows;

describe('deliverBatch through the real SDKs and the simulator', () => {
  it('sends every SMS once, records each as sent with its provider id and segment count', async () => {
    h.sim.reset();
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { segment: { tags: ['members'] } }, text: 'é'.repeat(10) + '€'.repeat(80) });
    await plan(b.id);
    worker = await h.startWorker();
    expect(await h.settled(b.id)).toEqual({ sent: 120 });
    const got = h.sim.received({ recipients: true });
    expect(got.sms.accepted).toBe(120);
    expect(got.sms.duplicates.count).toBe(0);
    const rows = await statuses(b.id);
    expect(rows.every((r) => r.segments === 2 && r.attempts === 1)).toBe(true); // 10 + 2×80 = 170 GSM-7 septets
    const ids = await db.pool.query(`SELECT count(DISTINCT provider_message_id)::int n FROM deliveries WHERE broadcast_id = $1`, [b.id]);
    expect(ids.rows[0].n).toBe(120);
  });

  it('a tenant with several sending numbers sends on all of them side by side, and each recipient keeps its number across broadcasts', async () => {
    const numbers = ['+18885550201', '+18885550202', '+18885550203'];
    // Toll-free at 20/s each: one number alone would take 15 s for these 300.
    await seedTenant(db.pool, 'multi', { numbers: numbers.map((phone) => ({ phone, perSecond: 20 })) });
    await seedContacts(db.pool, 'multi', 300, { tags: ['all'], offset: 50_000 });
    worker = await h.startWorker();
    const froms = async () => {
      h.sim.reset();
      const b = await seedBroadcast(db.pool, { tenantId: 'multi', audience: { segment: { tags: ['all'] } } });
      await plan(b.id);
      expect(await h.settled(b.id, 60_000)).toEqual({ sent: 300 });
      return h.sim.received({ messages: true }).sms.messages ?? [];
    };
    const first = await froms();
    const perNumber = (ms: typeof first) => Object.fromEntries(numbers.map((n) => [n, ms.filter((m) => m.from === n).length]));
    // All three numbers carry a share of the recipients, and from the start, not one after another.
    for (const n of Object.values(perNumber(first))) expect(n).toBeGreaterThanOrEqual(50);
    expect(Object.values(perNumber(first.slice(0, 60))).filter((n) => n > 0)).toHaveLength(3);
    // Sticky sender: the next broadcast reaches each recipient from the number it used before.
    const before = new Map(first.map((m) => [m.to, m.from]));
    const second = await froms();
    expect(second.filter((m) => before.get(m.to) !== m.from)).toEqual([]);
  });

  it('skips opted-out and invalid numbers and fails a permanent send error — each row on its own', async () => {
    h.sim.reset();
    // Telnyx answers these on the send itself (carrier errors such as 40002 come in receipts:
    // services/api/simulator.test.ts, which also covers a retryable one).
    const permanent = smsNumberFailing(10002, 'send');
    await db.pool.query(`INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source) VALUES ('grace', $1, now(), 'inbound_keyword')`, [phoneOf(3)]);
    const b = await seedBroadcast(db.pool, {
      tenantId: 'grace', maxAttempts: 2,
      audience: { contacts: [phoneOf(1), phoneOf(2), phoneOf(3), '+19995550100', permanent] },
    });
    await plan(b.id);
    // Opted out after planning: the worker checks again at send time.
    await db.pool.query(`INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source) VALUES ('grace', $1, now(), 'api')`, [phoneOf(2)]);
    worker = await h.startWorker();
    const counts = await h.settled(b.id);
    expect(counts).toEqual({ sent: 1, skipped: 3, failed: 1 });
    const rows = Object.fromEntries((await statuses(b.id)).map((r) => [r.address, r]));
    expect(rows[phoneOf(2)]).toMatchObject({ status: 'skipped', last_error: 'opted out' });
    expect(rows['+19995550100']).toMatchObject({ status: 'skipped', last_error: 'invalid phone number' });
    expect(rows[permanent]).toMatchObject({ status: 'failed', error_code: '10002', attempts: 1 });
    expect(h.sim.countFor(phoneOf(2))).toBe(0);
    expect(h.sim.countFor(phoneOf(3))).toBe(0);
  });

  it('defers inside quiet hours to their end in the recipient zone; urgent ignores quiet hours', async () => {
    clock.set('2026-06-02T04:00:00Z'); // 23:00 in Chicago
    h.sim.reset();
    const normal = await seedBroadcast(db.pool, { tenantId: 'grace', expireAfterSeconds: 12 * 3600, audience: { contacts: [phoneOf(10)] } });
    const urgent = await seedBroadcast(db.pool, { tenantId: 'grace', priority: 'urgent', audience: { contacts: [phoneOf(11)] } });
    await plan(normal.id);
    await plan(urgent.id);
    worker = await h.startWorker();
    expect(await h.settled(urgent.id)).toEqual({ sent: 1 });
    expect(await h.settled(normal.id)).toEqual({ deferred: 1 });
    const row = (await db.pool.query('SELECT next_attempt_at FROM deliveries WHERE broadcast_id = $1', [normal.id])).rows[0];
    expect(row.next_attempt_at.toISOString()).toBe('2026-06-02T13:00:00.000Z'); // 08:00 CDT
    expect(h.sim.countFor(phoneOf(10))).toBe(0);
    clock.set('2026-06-02T13:00:01Z');
    await expect.poll(async () => (await statuses(normal.id))[0].status, { timeout: 15_000 }).toBe('sent');
    expect(h.sim.countFor(phoneOf(10))).toBe(1);
  });

  it('reads the message at send time: an edit reaches every row not yet sent', async () => {
    h.sim.reset();
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { contacts: [phoneOf(20), phoneOf(21)] }, text: 'old text' });
    await plan(b.id);
    await upsertBroadcast(db.pool, { ...b, generation: 2, text: 'new text' });
    await upsertBroadcast(db.pool, { ...b, generation: 1, text: 'stale writer' }); // an older generation never wins
    worker = await h.startWorker();
    await h.settled(b.id);
    const msgs = h.sim.received({ messages: true }).sms.messages ?? [];
    expect(msgs.filter((m) => m.to === phoneOf(20) || m.to === phoneOf(21)).map((m) => m.text)).toEqual(['new text', 'new text']);
  });

  it('mid-batch: an edit reaches the very next claim, and a suspension stops the batch', async () => {
    h.sim.reset();
    h.sim.configure({ latencyMs: 100 });
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { segment: { tags: ['members'] } }, text: 'old text' });
    await plan(b.id);
    worker = await h.startWorker({ concurrency: 10, chunkSize: 10 });
    await expect.poll(() => h.sim.received().sms.accepted, { timeout: 15_000, interval: 20 }).toBeGreaterThanOrEqual(20);
    await upsertBroadcast(db.pool, { ...b, generation: 2, text: 'new text' });
    await expect.poll(() => (h.sim.received({ messages: true }).sms.messages ?? []).some((m) => m.text === 'new text'), { timeout: 15_000, interval: 20 }).toBe(true);
    await suspendBroadcast(db.pool, b.id);
    const counts = await h.settled(b.id);
    expect(counts.held).toBeGreaterThan(0);
    const texts = (h.sim.received({ messages: true }).sms.messages ?? []).map((m) => m.text);
    // Once the new text went out, the old one never did again (at most a chunk in flight overlapped).
    const firstNew = texts.indexOf('new text');
    expect(texts.slice(firstNew + 10).filter((t) => t === 'old text')).toEqual([]);
    expect(counts.sent).toBe(texts.length);
  });

  it('suspension holds rows; resume sends them, once', async () => {
    h.sim.reset();
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { contacts: [phoneOf(30), phoneOf(31)] } });
    await plan(b.id);
    await suspendBroadcast(db.pool, b.id);
    worker = await h.startWorker();
    expect(await h.settled(b.id)).toEqual({ held: 2 });
    await resumeBroadcast(db.pool, b.id, clock.now());
    await expect.poll(async () => (await h.settled(b.id)).sent, { timeout: 15_000 }).toBe(2);
    expect(h.sim.countFor(phoneOf(30)) + h.sim.countFor(phoneOf(31))).toBe(2);
  });

  it('records a row whose expiry has passed as expired, and sends nothing for it', async () => {
    h.sim.reset();
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', expireAfterSeconds: 60, audience: { contacts: [phoneOf(40)] } });
    await plan(b.id);
    clock.set('2026-06-01T15:05:00Z');
    worker = await h.startWorker();
    expect(await h.settled(b.id)).toEqual({ expired: 1 });
    expect(h.sim.countFor(phoneOf(40))).toBe(0);
  });

  it('a provider outage opens the circuit: rows wait without spending attempts and go out after recovery', async () => {
    h.sim.reset();
    h.sim.configure({ down: true });
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', maxAttempts: 3, audience: { segment: { tags: ['members'] } } });
    await plan(b.id);
    worker = await h.startWorker({ concurrency: 8, chunkSize: 8 });
    await expect.poll(() => h.providers.circuits.telnyx.state, { timeout: 15_000 }).toBe('open');
    // While it is open, rows keep coming due (backoff over) but only half-open probes reach
    // the provider; without the breaker every due row would be another request.
    const before = h.sim.received().sms.requests;
    await new Promise((r) => setTimeout(r, 2_000));
    expect(h.sim.received().sms.requests - before).toBeLessThan(20);
    const given = await db.pool.query(`SELECT status, attempts, last_error FROM deliveries WHERE broadcast_id = $1 AND status IN ('dead', 'failed', 'sent')`, [b.id]);
    expect(given.rows).toEqual([]); // all still waiting: nobody told "failed" for an outage
    h.sim.configure({ down: false });
    // Move the clock past the backoffs the outage scheduled; it runs on from there.
    clock.set('2026-06-01T15:20:00Z');
    const final = await h.settled(b.id, 20_000);
    expect((final.sent ?? 0) + (final.skipped ?? 0)).toBe(120); // members opted out by an earlier test are skipped
    expect(Object.keys(final).filter((k) => k !== 'sent' && k !== 'skipped')).toEqual([]);
    expect(h.sim.received().sms.duplicates.count).toBe(0);
  });

  it('when the provider is back (its circuit closes), what waited out the outage goes at once, not at the end of each backoff', async () => {
    h.sim.reset();
    // Outage waits spread over up to a minute (full-jitter backoff with a 60 s base).
    process.env.HERALD_RETRY_BASE_MS = '60000';
    try {
      await seedContacts(db.pool, 'grace', 100, { tags: ['outage'], offset: 60_000 });
      h.sim.configure({ down: true });
      const b = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { segment: { tags: ['outage'] } } });
      await plan(b.id);
      worker = await h.startWorker({ concurrency: 8, chunkSize: 8 });
      await expect.poll(() => h.providers.circuits.telnyx.state, { timeout: 15_000 }).toBe('open');
      await new Promise((r) => setTimeout(r, 1_000));
      // The rows whose own backoff still had more than 5 s to run: when each would have gone again.
      const due = new Map((await db.pool.query<{ id: string; at: Date }>(
        `SELECT id, next_attempt_at at FROM deliveries WHERE broadcast_id = $1 AND status = 'retry' AND next_attempt_at > $2::timestamptz + interval '5 seconds'`,
        [b.id, clock.now()])).rows.map((r) => [r.id, r.at.getTime()]));
      expect(due.size).toBeGreaterThanOrEqual(3); // those that met a 503 before the circuit opened
      h.sim.configure({ down: false });
      expect(await h.settled(b.id, 45_000)).toEqual({ sent: 100 });
      const sent = (await db.pool.query<{ id: string; at: Date }>(`SELECT id, sent_at at FROM deliveries WHERE broadcast_id = $1 AND id = ANY($2::bigint[])`, [b.id, [...due.keys()]])).rows;
      // Each went once the provider was back, before its own backoff was over.
      expect(sent.filter((r) => r.at.getTime() >= due.get(r.id)!)).toEqual([]);
    } finally {
      delete process.env.HERALD_RETRY_BASE_MS;
    }
  });

  it('a simulated tenant (the k6 synthetic one) always sends to the simulator; other tenants use the real providers', async () => {
    h.sim.reset();
    await seedTenant(db.pool, 'k6-synthetic');
    await seedContacts(db.pool, 'k6-synthetic', 3, { offset: 50_000 });
    const synthetic = await seedBroadcast(db.pool, { tenantId: 'k6-synthetic' });
    const real = await seedBroadcast(db.pool, { tenantId: 'grace', audience: { contacts: [phoneOf(60)] } });
    await plan(synthetic.id);
    await plan(real.id);
    // This worker has no real SMS provider; only the simulated tenant has one.
    worker = await h.startWorker({ sms: undefined, simulated: { tenants: new Set(['k6-synthetic']), sms: h.providers.sms } });
    expect(await h.settled(synthetic.id)).toEqual({ sent: 3 });
    await expect.poll(async () => (await statuses(real.id))[0].last_error, { timeout: 10_000 }).toBe('no SMS provider configured');
    expect(h.sim.countFor(phoneOf(60))).toBe(0);
  });

  it('push: UNREGISTERED deactivates the token, the others are sent in one sendEach', async () => {
    h.sim.reset();
    const dead = pushTokenFailing('UNREGISTERED');
    await db.pool.query(`INSERT INTO device_tokens (tenant_id, token, tags) VALUES ('grace', $1, '{members}')`, [dead]);
    const b = await seedBroadcast(db.pool, { tenantId: 'grace', channel: 'push', title: 'Hi', audience: { segment: { tags: ['members'] } } });
    await plan(b.id);
    worker = await h.startWorker();
    expect(await h.settled(b.id)).toEqual({ sent: 120, failed: 1 });
    const t = await db.pool.query('SELECT active, invalid_reason FROM device_tokens WHERE token = $1', [dead]);
    expect(t.rows[0]).toEqual({ active: false, invalid_reason: 'UNREGISTERED' });
    expect(h.sim.received().push.accepted).toBe(120);
  });
});
