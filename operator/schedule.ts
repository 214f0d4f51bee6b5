import { CronExpressionParser } from 'cron-parser';
import { DateTime, IANAZone } from 'luxon';
import type { Schedule } from './api/v1alpha1/broadcast.js';

/**
 * When a Broadcast sends. Pure functions of the spec, the operator's clock and what
 * the delivery core already planned, so they are tested without a cluster.
 *
 * Every occurrence has an idempotency key: 'once' for send-now, sendAt and
 * localTime (a Broadcast sends those once, whatever edits or restarts happen), and
 * the tick's ISO instant for cron. Planning the same key twice adds nothing.
 */
export type ScheduleKind = 'now' | 'sendAt' | 'localTime' | 'cron';

export interface Occurrence {
  key: string;
  /** When it is due (localTime: the earliest instant any recipient is due). */
  scheduledAt: Date;
  local?: { date: string; time: string };
}

export const ONCE = 'once';

export function scheduleKind(s: Schedule | undefined): ScheduleKind {
  if (!s) return 'now';
  if (s.cron !== undefined) return 'cron';
  if (s.localTime !== undefined) return 'localTime';
  if (s.sendAt !== undefined) return 'sendAt';
  return 'now';
}

/** What the API server's schema cannot check: a parseable cron, a known time zone. */
export function scheduleProblem(s: Schedule | undefined): string | undefined {
  if (!s) return undefined;
  if (s.timeZone !== undefined && !IANAZone.isValidZone(s.timeZone)) {
    return `schedule.timeZone "${s.timeZone}" is not an IANA time zone (such as America/Chicago)`;
  }
  if (s.cron !== undefined) {
    try {
      CronExpressionParser.parse(s.cron, { tz: s.timeZone ?? 'UTC', currentDate: new Date() }).next();
    } catch (err) {
      return `schedule.cron "${s.cron}" cannot be used: ${(err as Error).message}`;
    }
  }
  if (s.date !== undefined && s.localTime !== undefined && !DateTime.fromISO(`${s.date}T${s.localTime}`, { zone: 'UTC' }).isValid) {
    return `schedule.date ${s.date} is not a calendar day`;
  }
  return undefined;
}

/** The instant of wall-clock `time` on `date` in `zone` (a time skipped by DST moves forward, as PostgreSQL does). */
export function localInstant(date: string, time: string, zone: string): Date {
  const dt = DateTime.fromISO(`${date}T${time}`, { zone });
  if (!dt.isValid) throw new Error(`${date} ${time} in ${zone}: ${dt.invalidExplanation ?? dt.invalidReason}`);
  return dt.toJSDate();
}

/** Cron ticks in [from, to], oldest first; at most `limit` (the most recent ones) — and whether more were dropped. */
export function cronTicks(expr: string, timeZone: string, from: Date, to: Date, limit: number): { ticks: Date[]; dropped: number } {
  const it = CronExpressionParser.parse(expr, { tz: timeZone, currentDate: new Date(from.getTime() - 1) });
  const ticks: Date[] = [];
  let dropped = 0;
  for (;;) {
    let next: Date;
    try {
      next = it.next().toDate();
    } catch {
      break; // no further tick
    }
    if (next > to) break;
    ticks.push(next);
    if (ticks.length > limit) {
      ticks.shift();
      dropped++;
    }
  }
  return { ticks, dropped };
}

/** The first cron tick strictly after `after`, or undefined if the expression never fires again. */
export function nextCronTick(expr: string, timeZone: string, after: Date): Date | undefined {
  try {
    return CronExpressionParser.parse(expr, { tz: timeZone, currentDate: after }).next().toDate();
  } catch {
    return undefined;
  }
}

export interface ScheduleState {
  now: Date;
  /** Keys of occurrences the delivery core has planned, with when each was due. */
  planned: ReadonlyMap<string, Date>;
  /** The earliest instant of a localTime schedule across the recipients' zones. */
  earliestLocal?: Date;
  /** Cron: the next tick recorded in status (the anchor before any occurrence was planned). */
  recordedNextRunAt?: Date;
  /** Cron: most missed ticks planned on return from downtime. */
  catchUpLimit?: number;
}

export interface ScheduleDecision {
  /** Occurrences due now and not yet planned, oldest first. */
  due: Occurrence[];
  /** The next occurrence after these, if any. */
  nextRunAt?: Date;
  /** True when no occurrence remains beyond `due` (one-shots once planned). */
  exhausted: boolean;
  /** Cron ticks missed beyond catchUpLimit, not planned. */
  dropped: number;
}

/**
 * What is due at `now`. A one-shot is due once its instant has passed (a time
 * already past is due at once; the planner expires rows past expireAfter). A cron
 * schedule is due for every tick from the one after the latest planned occurrence
 * (or the recorded nextRunAt, or now for a new Broadcast) up to now, so ticks
 * missed while the operator was down are planned on its return, each once.
 */
export function decideSchedule(s: Schedule | undefined, st: ScheduleState): ScheduleDecision {
  const kind = scheduleKind(s);
  const none = { due: [], dropped: 0 };
  if (kind !== 'cron') {
    if (st.planned.has(ONCE)) return { ...none, exhausted: true };
    let at: Date;
    let local: Occurrence['local'];
    if (kind === 'now') at = st.now;
    else if (kind === 'sendAt') at = new Date(s!.sendAt!);
    else {
      if (!st.earliestLocal) throw new Error('a localTime schedule needs the earliest local instant of its audience');
      at = st.earliestLocal;
      local = { date: s!.date!, time: s!.localTime! };
    }
    if (at > st.now) return { ...none, nextRunAt: at, exhausted: false };
    return { due: [{ key: ONCE, scheduledAt: at, ...(local ? { local } : {}) }], exhausted: true, dropped: 0 };
  }

  const expr = s!.cron!;
  const tz = s!.timeZone ?? 'UTC';
  let latestPlanned: Date | undefined;
  for (const [key, at] of st.planned) if (key !== ONCE && (!latestPlanned || at > latestPlanned)) latestPlanned = at;
  const from = latestPlanned
    ? new Date(latestPlanned.getTime() + 1)
    : st.recordedNextRunAt && st.recordedNextRunAt <= st.now
      ? st.recordedNextRunAt
      : st.now;
  const { ticks, dropped } = cronTicks(expr, tz, from, st.now, st.catchUpLimit ?? 100);
  const due = ticks.map((t) => ({ key: t.toISOString(), scheduledAt: t })).filter((o) => !st.planned.has(o.key));
  const nextRunAt = nextCronTick(expr, tz, st.now);
  return { due, nextRunAt, exhausted: nextRunAt === undefined, dropped };
}
