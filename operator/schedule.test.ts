import { describe, expect, it } from 'vitest';
import { cronTicks, decideSchedule, localInstant, ONCE, scheduleKind, scheduleProblem } from './schedule.js';

const at = (iso: string) => new Date(iso);
const none = new Map<string, Date>();

describe('schedule kinds and what the schema cannot check', () => {
  it('names the kind', () => {
    expect(scheduleKind(undefined)).toBe('now');
    expect(scheduleKind({ sendAt: '2027-01-01T00:00:00Z' })).toBe('sendAt');
    expect(scheduleKind({ localTime: '09:00', date: '2027-01-01' })).toBe('localTime');
    expect(scheduleKind({ cron: '0 9 * * 0', timeZone: 'America/Chicago' })).toBe('cron');
  });

  it('refuses an unknown time zone and a cron expression cron-parser cannot use', () => {
    expect(scheduleProblem({ cron: '0 9 * * 0', timeZone: 'Mars/Olympus' })).toMatch(/not an IANA time zone/);
    expect(scheduleProblem({ cron: '61 9 * * *', timeZone: 'UTC' })).toMatch(/schedule.cron "61 9 \* \* \*" cannot be used/);
    expect(scheduleProblem({ cron: '0 9 * * 1-5', timeZone: 'Europe/London' })).toBeUndefined();
    expect(scheduleProblem({ localTime: '09:00', date: '2027-02-30' })).toMatch(/not a calendar day/);
  });
});

describe('one-shot schedules', () => {
  it('send now is due at once, under the key "once", and never again once planned', () => {
    const now = at('2027-03-01T12:00:00Z');
    expect(decideSchedule(undefined, { now, planned: none })).toEqual({ due: [{ key: ONCE, scheduledAt: now }], exhausted: true, dropped: 0 });
    expect(decideSchedule(undefined, { now, planned: new Map([[ONCE, now]]) })).toMatchObject({ due: [], exhausted: true });
  });

  it('sendAt waits (nextRunAt) until its instant, then is due; a time already past is due at once', () => {
    const s = { sendAt: '2027-03-01T15:00:00Z' };
    expect(decideSchedule(s, { now: at('2027-03-01T14:00:00Z'), planned: none })).toEqual({ due: [], nextRunAt: at('2027-03-01T15:00:00Z'), exhausted: false, dropped: 0 });
    expect(decideSchedule(s, { now: at('2027-03-02T00:00:00Z'), planned: none }).due).toEqual([{ key: ONCE, scheduledAt: at('2027-03-01T15:00:00Z') }]);
  });

  it('localTime is due at the earliest instant among the recipients’ zones, carrying the local date and time', () => {
    const s = { localTime: '09:00', date: '2027-03-14' };
    const earliestLocal = at('2027-03-14T09:00:00Z'); // London
    expect(decideSchedule(s, { now: at('2027-03-14T08:00:00Z'), planned: none, earliestLocal })).toMatchObject({ due: [], nextRunAt: earliestLocal });
    expect(decideSchedule(s, { now: at('2027-03-14T09:00:00Z'), planned: none, earliestLocal }).due).toEqual([
      { key: ONCE, scheduledAt: earliestLocal, local: { date: '2027-03-14', time: '09:00' } },
    ]);
  });

  it('local instants are DST-correct (the day US clocks spring forward, and a skipped time)', () => {
    expect(localInstant('2027-03-13', '09:00', 'America/Chicago')).toEqual(at('2027-03-13T15:00:00Z')); // CST
    expect(localInstant('2027-03-14', '09:00', 'America/Chicago')).toEqual(at('2027-03-14T14:00:00Z')); // CDT
    expect(localInstant('2027-03-14', '09:00', 'Europe/London')).toEqual(at('2027-03-14T09:00:00Z'));
    expect(localInstant('2027-03-14', '02:30', 'America/Chicago')).toEqual(at('2027-03-14T08:30:00Z')); // moves forward
  });
});

describe('cron schedules', () => {
  const daily = { cron: '0 9 * * *', timeZone: 'America/Chicago' };

  it('a new Broadcast waits for the first tick after now', () => {
    const d = decideSchedule(daily, { now: at('2027-03-13T12:00:00Z'), planned: none });
    expect(d).toEqual({ due: [], nextRunAt: at('2027-03-13T15:00:00Z'), exhausted: false, dropped: 0 });
  });

  it('ticks follow the zone across a DST change: 15:00Z before, 14:00Z after, each its own ISO key', () => {
    const { ticks } = cronTicks(daily.cron, daily.timeZone, at('2027-03-12T00:00:00Z'), at('2027-03-16T00:00:00Z'), 100);
    expect(ticks.map((t) => t.toISOString())).toEqual([
      '2027-03-12T15:00:00.000Z',
      '2027-03-13T15:00:00.000Z',
      '2027-03-14T14:00:00.000Z',
      '2027-03-15T14:00:00.000Z',
    ]);
  });

  it('a tick whose local time does not exist (spring forward) fires once; a repeated hour (fall back) fires once', () => {
    const spring = cronTicks('30 2 * * *', 'America/Chicago', at('2027-03-13T00:00:00Z'), at('2027-03-16T00:00:00Z'), 100).ticks;
    expect(spring.map((t) => t.toISOString())).toEqual(['2027-03-13T08:30:00.000Z', '2027-03-14T08:30:00.000Z', '2027-03-15T07:30:00.000Z']);
    const fall = cronTicks('30 1 * * *', 'America/Chicago', at('2027-11-06T00:00:00Z'), at('2027-11-09T00:00:00Z'), 100).ticks;
    expect(fall.map((t) => t.toISOString())).toEqual(['2027-11-06T06:30:00.000Z', '2027-11-07T06:30:00.000Z', '2027-11-08T07:30:00.000Z']);
  });

  it('after downtime every tick since the recorded nextRunAt is due, oldest first, none already planned', () => {
    const d = decideSchedule(daily, {
      now: at('2027-03-15T20:00:00Z'),
      planned: none,
      recordedNextRunAt: at('2027-03-13T15:00:00Z'),
    });
    expect(d.due.map((o) => o.key)).toEqual(['2027-03-13T15:00:00.000Z', '2027-03-14T14:00:00.000Z', '2027-03-15T14:00:00.000Z']);
    expect(d.nextRunAt).toEqual(at('2027-03-16T14:00:00Z'));
  });

  it('continues after the latest planned occurrence, whatever status says', () => {
    const planned = new Map([['2027-03-14T14:00:00.000Z', at('2027-03-14T14:00:00Z')]]);
    const d = decideSchedule(daily, { now: at('2027-03-15T14:00:00Z'), planned, recordedNextRunAt: at('2027-03-13T15:00:00Z') });
    expect(d.due.map((o) => o.key)).toEqual(['2027-03-15T14:00:00.000Z']);
  });

  it('plans at most catchUpLimit missed ticks (the most recent) and reports the rest', () => {
    const d = decideSchedule({ cron: '* * * * *', timeZone: 'UTC' }, {
      now: at('2027-03-01T10:00:00Z'),
      planned: none,
      recordedNextRunAt: at('2027-03-01T09:00:00Z'),
      catchUpLimit: 10,
    });
    expect(d.due).toHaveLength(10);
    expect(d.due.at(-1)!.key).toBe('2027-03-01T10:00:00.000Z');
    expect(d.dropped).toBe(51);
  });
});
