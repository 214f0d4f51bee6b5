import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../lib/clock.js';
import { URGENT_PRIORITY } from '../lib/queue.js';
import { metrics } from '../lib/metrics.js';
import { deliveryCounts } from '../core/delivery/broadcasts.js';
import { broadcastIdFor } from '../core/delivery/ids.js';
import { seedContacts, seedTenant } from '../core/delivery/testing/fixtures.js';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import { startOperator, type OperatorOptions, type RunningOperator } from './operator.js';
import { auditLogMark, compareRbac, usedBy } from './testing/rbac-audit.js';
import { broadcast, duplicates, eventsInclude, OPERATOR_SA, phaseIs, startDelivery, startKube, testLog, waitFor, type Delivery, type Kube } from './testing/harness.js';

/**
 * The operator in this process (ManualClock shared with a real worker), against a
 * real kube-apiserver with the operator's own ServiceAccount token, delivering
 * through the real provider adapters to the simulator.
 */
let kube: Kube;
let delivery: Delivery;
let operator: RunningOperator;
const clock = new ManualClock('2027-03-01T15:00:00Z');

function startTheOperator(extra: Partial<OperatorOptions> = {}): Promise<RunningOperator> {
  return startOperator({
    kubeconfig: kube.operatorKubeconfig,
    pool: delivery.db.pool,
    boss: delivery.boss,
    clock,
    log: testLog('operator'),
    leaseDurationMs: 3_000,
    renewDeadlineMs: 2_000,
    retryPeriodMs: 300,
    resyncMs: 1_000,
    settings: { statusRefreshMs: 500, maxRequeueMs: 1_000, batchSize: 10 },
    ...extra,
  });
}

async function restartOperator(extra: Partial<OperatorOptions> = {}): Promise<void> {
  await operator.stop();
  operator = await startTheOperator(extra);
  await waitFor('leadership', async () => operator.isLeader());
}

const idOf = (bc: Broadcast) => broadcastIdFor(bc.metadata.uid);
const counts = (bc: Broadcast) => deliveryCounts(delivery.db.pool, idOf(bc));
const statusOf = async (name: string) => (await kube.get(name))?.status;
const sentTo = (phones: string[]) => phones.reduce((n, p) => n + delivery.sim.countFor(p), 0);
const addressesOf = async (bc: Broadcast) =>
  (await delivery.db.pool.query<{ address: string }>('SELECT address FROM deliveries WHERE broadcast_id = $1', [idOf(bc)])).rows.map((r) => r.address);

beforeAll(async () => {
  kube = await startKube();
  delivery = await startDelivery(inject('databaseUrl'), clock);
  await seedTenant(delivery.db.pool, 'grace');
  await seedContacts(delivery.db.pool, 'grace', 120, { tags: ['members'] });
  operator = await startTheOperator();
  await waitFor('leadership', async () => operator.isLeader());
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  await delivery?.stop();
  await kube?.stop();
}, 60_000);

describe('a Broadcast from apply to Completed', { timeout: 180_000 }, () => {
  it('send now completes; status counts match what the simulator received; milestones are Events', async () => {
    const bc = await kube.create(broadcast('sunday', { tenant: 'grace', audience: { segment: { tags: ['members'] } } }));
    const done = await phaseIs(kube, 'sunday', 'Completed');
    expect(done.status).toMatchObject({
      observedGeneration: 1, audienceSize: 120, occurrences: 1, segments: 120,
      counts: { queued: 0, sending: 0, sent: 120, failed: 0, skipped: 0, expired: 0, cancelled: 0, possibleDuplicates: 0 },
    });
    expect(done.status?.startedAt).toBeDefined();
    expect(done.status?.completedAt).toBeDefined();
    expect(done.metadata.finalizers).toEqual(['herald.dev/cancel-deliveries']);
    expect(done.status?.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Accepted', 'True', 'Valid'], ['Scheduled', 'True', 'Planned'], ['Progressing', 'False', 'Completed'],
      ['Complete', 'True', 'AllDeliveriesFinal'], ['Degraded', 'False', 'AsExpected'],
    ]);
    expect(sentTo(await addressesOf(bc))).toBe(120);
    expect(delivery.sim.received().sms.duplicates.count).toBe(0);
    expect(await duplicates(delivery.db, idOf(bc))).toEqual({ rows: 0, jobs: 0 });
    await eventsInclude(kube, 'sunday', ['Accepted', 'Planned', 'Completed']);
  });

  it('dry run plans nothing and shows audience, skips (opted out, invalid), SMS parts and estimated cost; then sends when dryRun is turned off', async () => {
    await seedContacts(delivery.db.pool, 'grace', 50, { tags: ['preview'], offset: 1_000 });
    const phones = (await delivery.db.pool.query<{ phone: string }>(`SELECT phone FROM contacts WHERE 'preview' = ANY(tags) ORDER BY phone LIMIT 3`)).rows.map((r) => r.phone);
    for (const p of phones) await delivery.db.pool.query(`INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source) VALUES ('grace', $1, now(), 'api')`, [p]);
    const text = 'Sunday service moves to the big hall 🎉 — bring a friend, coffee after. Reply STOP to opt out.'; // UCS-2, 2 parts
    const bc = await kube.create(
      broadcast('preview', { tenant: 'grace', dryRun: true, message: { text }, audience: { segment: { tags: ['preview'] }, contacts: ['+11234567890', '+15550000000'] } }),
    );
    const done = await phaseIs(kube, 'preview', 'Completed');
    expect(done.status).toMatchObject({
      audienceSize: 52,
      segments: 47 * 2,
      estimatedCost: '0.38 USD',
      counts: { skipped: 5, sent: 0 },
      preview: { sendable: 47, optedOut: 3, invalid: 2, segmentsPerMessage: 2, encoding: 'UCS-2', pricePerSegment: '0.0040 USD' },
    });
    expect(done.status?.conditions?.find((c) => c.type === 'Complete')).toMatchObject({ status: 'True', reason: 'DryRunComplete' });
    expect(done.status?.conditions?.find((c) => c.type === 'Complete')?.message).toMatch(/52 recipients, 5 would be skipped \(3 opted out, 0 without consent, 2 invalid\); 94 SMS parts/);
    expect((await delivery.db.pool.query('SELECT count(*)::int AS n FROM occurrences WHERE broadcast_id = $1', [idOf(bc)])).rows[0].n).toBe(0);
    await eventsInclude(kube, 'preview', ['DryRunComplete']);

    await kube.patchSpec('preview', { dryRun: false });
    const sent = await waitFor('sent after the preview', async () => {
      const s = await statusOf('preview');
      return s?.observedGeneration === 2 && s.phase === 'Completed' ? s : undefined;
    });
    expect(sent).toMatchObject({ counts: { sent: 47, skipped: 5 } });
    expect(sent.preview).toBeUndefined();
    expect(sent.estimatedCost).toBeUndefined();
  });
});

describe('push', { timeout: 180_000 }, () => {
  it('a segment’s devices with a title, and a topic, through the FCM adapter to the simulator', async () => {
    await seedTenant(delivery.db.pool, 'school', { numbers: [] });
    await seedContacts(delivery.db.pool, 'school', 10, { tags: ['cs101'], offset: 8_000, tokens: true, tokenPrefix: 'simok-cs101-' });
    await kube.create(broadcast('lecture', { tenant: 'school', channel: 'push', message: { text: 'Lecture moved to room 4', title: 'CS101' }, audience: { segment: { tags: ['cs101'] } } }));
    await kube.create(broadcast('alert', { tenant: 'school', channel: 'push', priority: 'urgent', message: { text: 'Campus closed today' }, audience: { topic: 'all-students' } }));
    const lecture = await phaseIs(kube, 'lecture', 'Completed');
    expect(lecture.status).toMatchObject({ audienceSize: 10, counts: { sent: 10, failed: 0 } });
    const alert = await phaseIs(kube, 'alert', 'Completed');
    expect(alert.status).toMatchObject({ audienceSize: 1, counts: { sent: 1 } });
    // On the wire the topic is the tenant's (lib/tenancy/topic.ts).
    expect(delivery.sim.countFor('topic:school.all-students')).toBe(1);
    // priority: urgent takes the delivery core's urgent path.
    const jobs = await delivery.db.pool.query<{ priority: number }>(
      `SELECT priority FROM pgboss.job WHERE data->>'occurrenceId' IN (SELECT id::text FROM occurrences WHERE broadcast_id = $1)`,
      [idOf(alert)],
    );
    expect(jobs.rows.map((j) => j.priority)).toEqual([URGENT_PRIORITY]);
    const titled = (delivery.sim.received({ messages: true }).push.messages ?? []).filter((m) => m.title === 'CS101');
    expect(titled).toHaveLength(10);
  });
});

describe('problems the operator reports without crash-looping or spinning', { timeout: 180_000 }, () => {
  it('unknown tenant: Accepted=False with the reason, one Warning, no status rewrites; proceeds once the tenant exists', async () => {
    await kube.create(broadcast('ghostly', { tenant: 'ghost' }));
    const pending = await waitFor('UnknownTenant', async () => {
      const bc = await kube.get('ghostly');
      return bc?.status?.conditions?.find((c) => c.type === 'Accepted' && c.reason === 'UnknownTenant') ? bc : undefined;
    });
    expect(pending.status?.phase).toBe('Pending');
    expect(pending.status?.conditions?.find((c) => c.type === 'Accepted')?.message).toMatch(/tenant "ghost" is not known/);
    expect(pending.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'UnknownTenant' });
    // Reconciled again and again (resync, backoff), it writes nothing new and records no second Warning.
    const reconciles = async () => (await metrics.reconcileTotal.get()).values.reduce((n, v) => n + v.value, 0);
    const before = await reconciles();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await reconciles()).toBeGreaterThan(before);
    expect((await kube.get('ghostly'))?.metadata.resourceVersion).toBe(pending.metadata.resourceVersion);
    expect((await eventsInclude(kube, 'ghostly', ['UnknownTenant'])).filter((e) => e.reason === 'UnknownTenant')).toHaveLength(1);

    await seedTenant(delivery.db.pool, 'ghost');
    await seedContacts(delivery.db.pool, 'ghost', 5, { offset: 5_000 });
    await phaseIs(kube, 'ghostly', 'Completed');
  });

  it('provider not configured (no sending number): the condition says so; proceeds once a number is added', async () => {
    await seedTenant(delivery.db.pool, 'quiet', { numbers: [] });
    await seedContacts(delivery.db.pool, 'quiet', 5, { offset: 5_100 });
    await kube.create(broadcast('unnumbered', { tenant: 'quiet' }));
    const bc = await waitFor('ProviderNotConfigured', async () => {
      const b = await kube.get('unnumbered');
      return b?.status?.conditions?.find((c) => c.reason === 'ProviderNotConfigured') ? b : undefined;
    });
    expect(bc.status?.phase).toBe('Pending');
    expect(bc.status?.conditions?.find((c) => c.type === 'Accepted')?.message).toMatch(/SMS provider not configured: tenant "quiet" has no sending number/);
    await eventsInclude(kube, 'unnumbered', ['ProviderNotConfigured']);
    await delivery.db.pool.query(`INSERT INTO sending_numbers (tenant_id, phone_number, kind, per_second) VALUES ('quiet', '+18885550199', 'toll_free', 1000)`);
    await phaseIs(kube, 'unnumbered', 'Completed');
  });

  it('empty audience: Pending with EmptyAudience; proceeds once the segment has contacts', async () => {
    await kube.create(broadcast('nobody', { tenant: 'grace', audience: { segment: { tags: ['latecomers'] } } }));
    const bc = await waitFor('EmptyAudience', async () => {
      const b = await kube.get('nobody');
      return b?.status?.conditions?.find((c) => c.type === 'Degraded' && c.reason === 'EmptyAudience') ? b : undefined;
    });
    expect(bc.status?.phase).toBe('Pending');
    expect(bc.status?.conditions?.find((c) => c.type === 'Accepted')?.status).toBe('True');
    await eventsInclude(kube, 'nobody', ['EmptyAudience']);
    await seedContacts(delivery.db.pool, 'grace', 4, { tags: ['latecomers'], offset: 5_200 });
    const done = await phaseIs(kube, 'nobody', 'Completed');
    expect(done.status?.counts?.sent).toBe(4);
  });
});

describe('changes while sending', { timeout: 180_000 }, () => {
  it('delete mid-send: the finalizer cancels every delivery not yet sent, records it, then lets the object go', async () => {
    await seedContacts(delivery.db.pool, 'grace', 150, { tags: ['doomed'], offset: 2_000 });
    const bc = await kube.create(broadcast('doomed', { tenant: 'grace', audience: { segment: { tags: ['doomed'] } }, delivery: { ratePerSecond: 20 } }));
    await waitFor('some sent', async () => ((await statusOf('doomed'))?.counts?.sent ?? 0) >= 10);
    await kube.remove('doomed');
    await waitFor('the object to go', async () => (await kube.get('doomed')) === undefined);
    const c = await waitFor('nothing in flight', async () => {
      const x = await counts(bc);
      return x.sending === 0 && x.queued === 0 ? x : undefined;
    });
    expect(c.cancelled).toBeGreaterThan(0);
    expect(c.sent + c.cancelled).toBe(150);
    expect(sentTo(await addressesOf(bc))).toBe(c.sent);
    const cancelled = (await eventsInclude(kube, 'doomed', ['Cancelled'])).find((e) => e.reason === 'Cancelled');
    expect(cancelled?.note).toMatch(/deliveries not yet sent were cancelled/);
  });

  it('suspend holds what is not yet sent; resume sends the rest, each recipient once', async () => {
    await seedContacts(delivery.db.pool, 'grace', 100, { tags: ['paused'], offset: 3_000 });
    const bc = await kube.create(broadcast('paused', { tenant: 'grace', audience: { segment: { tags: ['paused'] } }, delivery: { ratePerSecond: 20 } }));
    await waitFor('some sent', async () => ((await statusOf('paused'))?.counts?.sent ?? 0) >= 10);
    await kube.patchSpec('paused', { suspend: true });
    await phaseIs(kube, 'paused', 'Suspended');
    // Every row not sent ends up held by the workers: nothing more can go out.
    const held = await waitFor('rows held', async () => {
      const { rows } = await delivery.db.pool.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM deliveries WHERE broadcast_id = $1 GROUP BY 1', [idOf(bc)]);
      const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
      return !by.queued && !by.sending && (by.held ?? 0) > 0 ? by : undefined;
    });
    expect(held.sent).toBeLessThan(100);
    expect(sentTo(await addressesOf(bc))).toBe(held.sent);
    expect((await statusOf('paused'))?.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'False', reason: 'Suspended' });

    await kube.patchSpec('paused', { suspend: false });
    const done = await phaseIs(kube, 'paused', 'Completed');
    expect(done.status?.counts?.sent).toBe(100);
    const phones = await addressesOf(bc);
    expect(phones.every((p) => delivery.sim.countFor(p) === 1)).toBe(true);
    await eventsInclude(kube, 'paused', ['Suspended', 'Resumed', 'Completed']);
  });

  it('a spec edit mid-send applies to every delivery not yet sent; those already sent stay', async () => {
    await seedContacts(delivery.db.pool, 'grace', 100, { tags: ['edited'], offset: 4_000 });
    const bc = await kube.create(
      broadcast('edited', { tenant: 'grace', message: { text: 'Service at 10am (v1)' }, audience: { segment: { tags: ['edited'] } }, delivery: { ratePerSecond: 20 } }),
    );
    await waitFor('some sent', async () => ((await statusOf('edited'))?.counts?.sent ?? 0) >= 10);
    await kube.patchSpec('edited', { message: { text: 'Service moved to 11am (v2)' } });
    const done = await waitFor('completed at generation 2', async () => {
      const s = await statusOf('edited');
      return s?.phase === 'Completed' && s.observedGeneration === 2 ? s : undefined;
    });
    expect(done.counts?.sent).toBe(100);
    const phones = new Set(await addressesOf(bc));
    const messages = (delivery.sim.received({ messages: true }).sms.messages ?? []).filter((m) => phones.has(m.to));
    expect(messages).toHaveLength(100);
    const firstV2 = messages.findIndex((m) => m.text?.endsWith('(v2)'));
    const lastV1 = messages.findLastIndex((m) => m.text?.endsWith('(v1)'));
    expect(firstV2).toBeGreaterThan(0);
    expect(lastV1).toBeGreaterThanOrEqual(9);
    expect(lastV1).toBeLessThan(firstV2); // once the edit landed, nothing went out with the old text
  });
});

describe('schedules on the operator’s clock', { timeout: 180_000 }, () => {
  it('localTime and cron across the US DST change: each recipient at 09:00 in their own zone, each tick once', async () => {
    await seedTenant(delivery.db.pool, 'campus', { tz: 'America/Chicago' });
    await seedContacts(delivery.db.pool, 'campus', 3, { tags: ['dst'], tz: 'America/Chicago', offset: 6_000 });
    await seedContacts(delivery.db.pool, 'campus', 3, { tags: ['dst'], tz: 'Europe/London', offset: 6_100 });
    clock.set('2027-03-13T12:00:00Z');
    const local = await kube.create(
      broadcast('morning', { tenant: 'campus', audience: { segment: { tags: ['dst'] } }, schedule: { localTime: '09:00', date: '2027-03-14' } }),
    );
    const daily = await kube.create(
      broadcast('daily', { tenant: 'campus', audience: { segment: { tags: ['dst'] } }, schedule: { cron: '0 9 * * *', timeZone: 'America/Chicago' } }),
    );
    const scheduled = await phaseIs(kube, 'morning', 'Scheduled');
    expect(scheduled.status?.nextRunAt).toBe('2027-03-14T09:00:00Z'); // 09:00 in London comes first
    await waitFor('cron next run', async () => (await statusOf('daily'))?.nextRunAt === '2027-03-13T15:00:00Z'); // 09:00 CST

    clock.set('2027-03-13T15:00:30Z');
    await waitFor('first tick sent', async () => {
      const s = await statusOf('daily');
      return s?.counts?.sent === 6 && s.phase === 'Scheduled' && s.nextRunAt === '2027-03-14T14:00:00Z' ? s : undefined; // 09:00 CDT
    });

    clock.set('2027-03-14T09:00:30Z');
    const londonDone = await waitFor('London sent, Chicago waiting', async () => {
      const s = await statusOf('morning');
      return s?.counts?.sent === 3 && s.counts.queued === 3 && s.phase === 'Sending' ? s : undefined;
    });
    expect(londonDone.nextRunAt).toBeUndefined();
    const due = await delivery.db.pool.query<{ tz: string; due: Date }>(
      `SELECT c.time_zone AS tz, d.due_at AS due FROM deliveries d JOIN contacts c ON c.id = d.contact_id WHERE d.broadcast_id = $1 ORDER BY 2, 1`,
      [idOf(local)],
    );
    expect(due.rows.map((r) => `${r.tz} ${r.due.toISOString()}`)).toEqual([
      ...Array(3).fill('Europe/London 2027-03-14T09:00:00.000Z'),
      ...Array(3).fill('America/Chicago 2027-03-14T14:00:00.000Z'),
    ]);

    clock.set('2027-03-14T14:00:30Z');
    const morning = await phaseIs(kube, 'morning', 'Completed');
    expect(morning.status?.counts?.sent).toBe(6);
    await waitFor('second tick sent', async () => {
      const s = await statusOf('daily');
      return s?.counts?.sent === 12 && s.phase === 'Scheduled' && s.nextRunAt === '2027-03-15T14:00:00Z' ? s : undefined;
    });
    const keys = await delivery.db.pool.query<{ key: string }>('SELECT key FROM occurrences WHERE broadcast_id = $1 ORDER BY key', [idOf(daily)]);
    expect(keys.rows.map((r) => r.key)).toEqual(['2027-03-13T15:00:00.000Z', '2027-03-14T14:00:00.000Z']);
    expect(await duplicates(delivery.db, idOf(daily))).toEqual({ rows: 0, jobs: 0 });
    await kube.remove('daily');
    await kube.remove('morning');
  });

  it('after downtime a missed occurrence is planned once on return; one past expireAfter is expired, not sent', async () => {
    clock.set('2027-03-20T12:00:00Z');
    const bc = await kube.create(
      broadcast('nightly', {
        tenant: 'campus', audience: { segment: { tags: ['dst'] } },
        schedule: { cron: '0 9 * * *', timeZone: 'America/Chicago' }, delivery: { expireAfter: '2h' },
      }),
    );
    await waitFor('next run recorded', async () => (await statusOf('nightly'))?.nextRunAt === '2027-03-20T14:00:00Z');
    await operator.stop();
    // Down for a day and a half: the 03-20 tick is a day past expiry, the 03-21 tick half an hour old.
    clock.set('2027-03-21T14:30:00Z');
    operator = await startTheOperator();
    await waitFor('leadership', async () => operator.isLeader());
    const s = await waitFor('both ticks planned', async () => {
      const st = await statusOf('nightly');
      return st?.occurrences === 2 && st.counts?.queued === 0 && st.counts?.sending === 0 ? st : undefined;
    });
    expect(s.counts).toMatchObject({ expired: 6, sent: 6 });
    const occ = await delivery.db.pool.query<{ key: string; expired: number; sent: number }>(
      `SELECT o.key, count(*) FILTER (WHERE d.status = 'expired')::int AS expired, count(*) FILTER (WHERE d.status IN ('sent', 'delivered'))::int AS sent
         FROM occurrences o JOIN deliveries d ON d.occurrence_id = o.id WHERE o.broadcast_id = $1 GROUP BY 1 ORDER BY 1`,
      [idOf(bc)],
    );
    expect(occ.rows).toEqual([
      { key: '2027-03-20T14:00:00.000Z', expired: 6, sent: 0 },
      { key: '2027-03-21T14:00:00.000Z', expired: 0, sent: 6 },
    ]);
    // Another restart with no time passing plans nothing more.
    await restartOperator();
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await statusOf('nightly'))?.occurrences).toBe(2);
    expect(await duplicates(delivery.db, idOf(bc))).toEqual({ rows: 0, jobs: 0 });
    await kube.remove('nightly');
  });
});

describe('level-triggered', { timeout: 180_000 }, () => {
  it('a reconcile that crashes at any step converges on the next run without a duplicate job or delivery', async () => {
    const steps = ['read', 'finalizer', 'accept', 'suspend', 'plan', 'send', 'status'];
    const pending = new Set(steps);
    const crashed: string[] = [];
    await restartOperator({
      crashAt: (step, key) => {
        if (key !== 'grace/crashy' || !pending.delete(step)) return;
        crashed.push(step);
        throw new Error(`injected crash at ${step}`);
      },
    });
    await seedContacts(delivery.db.pool, 'grace', 40, { tags: ['crashy'], offset: 7_000 });
    const bc = await kube.create(broadcast('crashy', { tenant: 'grace', audience: { segment: { tags: ['crashy'] } } }));
    const done = await phaseIs(kube, 'crashy', 'Completed');
    expect(crashed).toEqual(steps);
    expect(done.status?.counts?.sent).toBe(40);
    expect((await addressesOf(bc)).every((p) => delivery.sim.countFor(p) === 1)).toBe(true);
    expect(await duplicates(delivery.db, idOf(bc))).toEqual({ rows: 0, jobs: 0 });
    await restartOperator();
  });
});

describe('status', { timeout: 180_000 }, () => {
  it('is written in batches (counts folded in every statusRefreshMs), not once per delivery', async () => {
    const { used } = usedBy(kube.cp.auditLogPath, `system:serviceaccount:${OPERATOR_SA.namespace}:${OPERATOR_SA.name}`);
    const writes = (name: string) => used.filter((a) => a.resource === 'broadcasts/status' && a.verb === 'update' && a.name === name).length;
    // Here statusRefreshMs is 0.5 s and these sent for several seconds; per delivery would be 120 and 100.
    expect(writes('sunday')).toBeGreaterThan(0);
    expect(writes('sunday')).toBeLessThan(120 / 3);
    expect(writes('paused')).toBeLessThan(100 / 2);
  });

  it('waiting for the shared provider account: Progressing says WaitingForCapacity with the tenant\'s share, then Completed', async () => {
    await seedContacts(delivery.db.pool, 'grace', 1000, { tags: ['shared'], offset: 40_000 });
    // Another tenant keeps asking the account (1,000/s in this worker) for five times what it refills.
    let hog = true;
    const hogging = (async () => {
      while (hog) {
        await delivery.db.pool.query(`SELECT * FROM herald_fair_take(ARRAY['account:telnyx:sms'], ARRAY[1000]::float8[], 500, ARRAY['account:telnyx:sms'], ARRAY['rival'], ARRAY[1]::float8[], false)`);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await kube.create(broadcast('shared', { tenant: 'grace', audience: { segment: { tags: ['shared'] } } }));
      const waiting = await waitFor('WaitingForCapacity', async () =>
        (await statusOf('shared'))?.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'WaitingForCapacity'), { everyMs: 50 });
      expect(waiting.status).toBe('True');
      // Two tenants of weight 1 want the account: grace's share is half.
      expect(waiting.message).toMatch(/waiting for the shared SMS provider account limit, tenant grace's current share 50%/);
    } finally {
      hog = false;
      await hogging;
    }
    const done = await phaseIs(kube, 'shared', 'Completed');
    expect(done.status?.counts?.sent).toBe(1000);
    expect(done.status?.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('Completed');
  });

  it('follows the workers’ progress notifications, without polling or resync', async () => {
    // Nothing would look again for ten minutes: only the workers' NOTIFY can bring the count to Completed.
    const tenMinutes = 10 * 60_000;
    await restartOperator({ resyncMs: tenMinutes, settings: { statusRefreshMs: 500, progressPollMs: tenMinutes, maxRequeueMs: tenMinutes, batchSize: 10 } });
    try {
      await kube.create(broadcast('notified', { tenant: 'grace', audience: { segment: { tags: ['members'] } } }));
      const done = await phaseIs(kube, 'notified', 'Completed');
      expect(done.status?.counts).toMatchObject({ sent: 120, queued: 0, sending: 0 });
    } finally {
      await restartOperator();
    }
  });
  it('a burst that never ends does not freeze progress or Events: each yields for at most maxYieldMs', async () => {
    // As if new Broadcasts always waited to be planned: every progress write and Event yields to them.
    await restartOperator({ othersWaiting: () => true, settings: { statusRefreshMs: 500, maxRequeueMs: 1_000, batchSize: 10, maxYieldMs: 1_000 } });
    try {
      // 120 recipients at 20 a second: about six seconds of Sending.
      await kube.create(broadcast('yielding', { tenant: 'grace', audience: { segment: { tags: ['members'] } }, delivery: { ratePerSecond: 20 } }));
      const sending = await waitFor('progress in status while sending', async () => {
        const s = await statusOf('yielding');
        return s?.phase === 'Sending' && (s.counts?.sent ?? 0) > 0 ? s : undefined;
      }, { timeoutMs: 60_000, everyMs: 100 });
      expect(sending.counts?.sent).toBeLessThan(120);
      const events = await eventsInclude(kube, 'yielding', ['Accepted', 'Planned']);
      expect((await statusOf('yielding'))?.phase, 'milestone events arrive while still sending').toBe('Sending');
      expect(events.length).toBeGreaterThanOrEqual(2);
      const done = await phaseIs(kube, 'yielding', 'Completed');
      expect(done.status?.counts).toMatchObject({ sent: 120, queued: 0, sending: 0 });
    } finally {
      await restartOperator();
    }
  });
});

describe('RBAC', { timeout: 180_000 }, () => {
  it('the operator’s ServiceAccount used exactly what its Role and ClusterRole grant: nothing forbidden, no unused grant', async () => {
    // Audited from here on, in a run of its own that needs every grant, so it holds
    // alone (-t) and in any order: a first start (no Lease yet), a Broadcast sent and deleted.
    const from = auditLogMark(kube.cp.auditLogPath);
    await operator.stop();
    await kube.admin.request('DELETE', '/apis/coordination.k8s.io/v1/namespaces/herald-system/leases/herald-operator');
    operator = await startTheOperator();
    await waitFor('leadership', async () => operator.isLeader());
    await kube.create(broadcast('audited', { tenant: 'grace', audience: { contacts: ['+12065550101', '+12065550102'] } }));
    await phaseIs(kube, 'audited', 'Completed');
    await eventsInclude(kube, 'audited', ['Completed']);
    await kube.remove('audited');
    await waitFor('the finalizer to let the Broadcast go', async () => (await kube.get('audited')) === undefined);

    const { used, forbidden } = usedBy(kube.cp.auditLogPath, `system:serviceaccount:${OPERATOR_SA.namespace}:${OPERATOR_SA.name}`, from);
    expect(forbidden).toEqual([]);
    expect(compareRbac(used)).toEqual({ ungranted: [], unused: [] });
  });
});
