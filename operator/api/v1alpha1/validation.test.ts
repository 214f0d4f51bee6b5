import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dump } from 'js-yaml';
import { startKube, type Kube } from '../../testing/harness.js';

/**
 * The API server itself refuses a wrong Broadcast, with a message a person
 * understands: each kind of bad manifest goes through `kubectl apply` against a
 * real kube-apiserver with the generated CRD installed.
 */
let kube: Kube;
beforeAll(async () => {
  kube = await startKube();
  await kube.bindNamespace('grace', 'grace');
}, 120_000);
afterAll(async () => {
  await kube?.stop();
});

const manifest = (name: string, spec: Record<string, unknown>) =>
  dump({
    apiVersion: 'herald.dev/v1alpha1',
    kind: 'Broadcast',
    metadata: { name, namespace: 'grace' },
    spec: { tenant: 'grace', channel: 'sms', message: { text: 'Service starts at 10am.' }, audience: { segment: { tags: ['youth'] } }, ...spec },
  });
const apply = (yaml: string) => kube.kubectl(['apply', '-f', '-'], yaml);
const phones = (n: number) => Array.from({ length: n }, (_, i) => `+1206${String(2_000_000 + i)}`);

const refusals: [string, Record<string, unknown>, RegExp][] = [
  ['two kinds of schedule', { schedule: { sendAt: '2026-11-29T15:00:00Z', cron: '0 9 * * 0', timeZone: 'UTC' } },
    /spec.schedule: .*schedule must set exactly one of sendAt, localTime \(with date\) or cron \(with timeZone\)/],
  ['an empty schedule', { schedule: {} }, /schedule must set exactly one of sendAt, localTime/],
  ['localTime without a date', { schedule: { localTime: '09:00' } }, /schedule.localTime and schedule.date go together/],
  ['cron without a time zone', { schedule: { cron: '0 9 * * 0' } }, /schedule.cron and schedule.timeZone go together/],
  ['a cron expression without five fields', { schedule: { cron: 'every sunday', timeZone: 'UTC' } }, /schedule.cron needs five fields/],
  ['a cron every minute', { schedule: { cron: '* * * * *', timeZone: 'UTC' } }, /schedule.cron runs more often than every 5 minutes/],
  ['a cron every 2 minutes', { schedule: { cron: '*/2 9 * * *', timeZone: 'UTC' } }, /schedule.cron runs more often than every 5 minutes/],
  ['a cron whose minutes are 3 apart', { schedule: { cron: '0,3 9 * * *', timeZone: 'UTC' } }, /schedule.cron runs more often than every 5 minutes/],
  ['a cron 2 minutes apart across the hour', { schedule: { cron: '1,59 * * * *', timeZone: 'UTC' } }, /schedule.cron runs more often than every 5 minutes/],
  ['a cron step that ends 4 minutes before the next hour', { schedule: { cron: '*/7 * * * *', timeZone: 'UTC' } }, /schedule.cron runs more often than every 5 minutes/],
  ['a cron over a range of minutes', { schedule: { cron: '0-30 9 * * *', timeZone: 'UTC' } }, /schedule.cron runs more often than every 5 minutes/],
  ['a sendAt that is not a date-time', { schedule: { sendAt: 'tomorrow' } }, /spec.schedule.sendAt .*must be of type date-time/],
  ['a localTime that is not HH:MM', { schedule: { localTime: '9am', date: '2026-12-01' } }, /spec.schedule.localTime .*should match/],
  ['no audience source', { audience: {} }, /audience needs at least one source: segment, contacts or topic/],
  ['a segment with neither tags nor all', { audience: { segment: {} } }, /audience.segment needs either tags or all: true/],
  ['a segment with both tags and all', { audience: { segment: { tags: ['a'], all: true } } }, /audience.segment needs either tags or all: true \(not both\)/],
  ['a topic for SMS', { audience: { topic: 'news' } }, /audience.topic is for channel push only/],
  ['a topic combined with contacts', { channel: 'push', audience: { topic: 'news', contacts: ['+15551234567'] } }, /audience.topic cannot be combined with segment or contacts/],
  ['a topic at a local time', { channel: 'push', audience: { topic: 'news' }, schedule: { localTime: '09:00', date: '2026-12-01' } }, /audience.topic cannot use schedule.localTime/],
  ['a title on an SMS', { message: { text: 'hi', title: 'Hello' } }, /message.title is for channel push only/],
  ['contacts not in E.164', { audience: { contacts: ['+15551234567', '555-1234'] } }, /audience.contacts must be phone numbers in E.164 form, such as \+15551234567/],
  ['more than 1000 inline contacts', { audience: { contacts: phones(1001) } }, /spec.audience.contacts: Too many: 1001: must have at most 1000 items/],
  ['a rate above the bound', { delivery: { ratePerSecond: 5000 } }, /spec.delivery.ratePerSecond .*should be less than or equal to 1000/],
  ['a rate of zero', { delivery: { ratePerSecond: 0 } }, /spec.delivery.ratePerSecond .*should be greater than or equal to 1/],
  ['too many attempts', { delivery: { maxAttempts: 50 } }, /spec.delivery.maxAttempts .*should be less than or equal to 20/],
  ['an expiry that is not a duration', { delivery: { expireAfter: '10 days' } }, /delivery.expireAfter must be a duration from 1m to 168h/],
  ['an expiry beyond a week', { delivery: { expireAfter: '200h' } }, /delivery.expireAfter must be a duration from 1m to 168h/],
  ['an SMS longer than 10 parts can carry', { message: { text: 'a'.repeat(1531) } }, /message.text is longer than 1530 characters, more than 10 SMS parts can carry/],
  ['an unknown channel', { channel: 'fax' }, /spec.channel: Unsupported value: "fax": supported values: "sms", "push"/],
  ['an unknown priority', { priority: 'asap' }, /spec.priority: Unsupported value: "asap"/],
  ['a tenant that is not a DNS label', { tenant: 'Grace Church' }, /spec.tenant .*should match/],
  ['an empty message', { message: { text: '' } }, /spec.message.text .*should be at least 1 chars long/],
];

describe('kubectl apply of a bad Broadcast is refused by the API server', { timeout: 180_000 }, () => {
  it.each(refusals)('refuses %s', async (_what, spec, message) => {
    const r = await apply(manifest('bad', spec));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/The Broadcast "bad" is invalid/);
    expect(r.stderr).toMatch(message);
    expect(await kube.get('bad', 'grace')).toBeUndefined();
  });

  it('accepts a good one and fills in the defaults', async () => {
    const r = await apply(manifest('good', { audience: { segment: { tags: ['youth'] }, contacts: phones(1000) } }));
    expect(r.stderr).toBe('');
    const bc = await kube.get('good', 'grace');
    expect(bc?.spec).toMatchObject({ suspend: false, dryRun: false, priority: 'normal', delivery: { maxAttempts: 5, expireAfter: '6h' } });
  });

  it('accepts each kind of schedule and a push topic', async () => {
    for (const [name, spec] of [
      ['at', { schedule: { sendAt: '2026-11-29T15:00:00Z' } }],
      ['local', { schedule: { localTime: '09:00', date: '2026-12-06' } }],
      ['weekly', { schedule: { cron: '0 9 * * 0', timeZone: 'America/Chicago' } }],
      ['quarter-hourly', { schedule: { cron: '*/15 * * * *', timeZone: 'UTC' } }],
      ['twice-an-hour', { schedule: { cron: '0,30 9-17 * * 1-5', timeZone: 'UTC' } }],
      ['every-5', { schedule: { cron: '*/5 * * * *', timeZone: 'UTC' } }],
      ['topic', { channel: 'push', message: { text: 'Class moved', title: 'CS101' }, audience: { topic: 'students-cs101' } }],
    ] as const) {
      const r = await apply(manifest(name, spec));
      expect(r.stderr, name).toBe('');
    }
  });

  it('refuses changing the tenant or channel, and turning dryRun on once live', async () => {
    const tenant = await apply(manifest('good', { tenant: 'other' }));
    expect(tenant.stderr).toMatch(/spec.tenant cannot be changed; create a new Broadcast instead/);
    const channel = await apply(manifest('good', { channel: 'push', audience: { segment: { all: true } } }));
    expect(channel.stderr).toMatch(/spec.channel cannot be changed/);
    const dry = await apply(manifest('good', { dryRun: true }));
    expect(dry.stderr).toMatch(/spec.dryRun cannot be turned on once a Broadcast is live/);
    await apply(manifest('preview', { dryRun: true }));
    expect((await apply(manifest('preview', { dryRun: false }))).stderr).toBe('');
  });

  it('kubectl get bc shows tenant, channel, phase, audience, sent, failed and age', async () => {
    const r = await kube.kubectl(['get', 'bc', 'good', '-n', 'grace']);
    expect(r.stdout.split('\n')[0]!.split(/\s+/).filter(Boolean)).toEqual(['NAME', 'TENANT', 'CHANNEL', 'PHASE', 'AUDIENCE', 'SENT', 'FAILED', 'AGE']);
  });
});
