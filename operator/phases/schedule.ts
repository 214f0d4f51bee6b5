import { earliestLocalInstant, type PlannedOccurrence } from '../../core/delivery/reads.js';
import { rfc3339 } from '../conditions.js';
import { decideSchedule, ONCE, scheduleKind, type ScheduleDecision } from '../schedule.js';
import type { Blocked, Reconciling } from './reconciling.js';
import { rescheduleOccurrence } from '../../core/delivery/reschedule.js';

/**
 * Schedule: which occurrences are due at the operator's clock and when the next
 * one is (status.nextRunAt, and the RequeueAfter until then). A localTime
 * schedule is due at the earliest instant the time comes in any recipient's zone;
 * each row is then due at its own recipient's instant.
 */
export async function schedule(r: Reconciling, planned: PlannedOccurrence[]): Promise<ScheduleDecision | Blocked> {
  const spec = r.spec;
  const kind = scheduleKind(spec.schedule);
  let earliestLocal: Date | undefined;
  if (kind === 'localTime' && planned.some((o) => o.key === ONCE)) {
    // Already planned: an edited date or time moves the rows not yet sent (nothing is planned twice).
    const moved = await rescheduleOccurrence(r.deps.pool, r.id, ONCE, { date: spec.schedule!.date!, time: spec.schedule!.localTime! });
    if (moved > 0) r.event('Normal', 'Rescheduled', 'Schedule', `${moved} deliveries not yet sent moved to ${spec.schedule!.localTime} on ${spec.schedule!.date} in each recipient's zone`);
  }
  if (kind === 'localTime' && !planned.some((o) => o.key === ONCE)) {
    earliestLocal = await earliestLocalInstant(r.deps.pool, spec.tenant, spec.channel, spec.audience, {
      date: spec.schedule!.date!,
      time: spec.schedule!.localTime!,
    });
    if (!earliestLocal) return emptyAudience(r);
  }
  const decision = decideSchedule(spec.schedule, {
    now: r.now,
    planned: new Map(planned.map((o) => [o.key, o.scheduledAt])),
    earliestLocal,
    recordedNextRunAt: r.status.nextRunAt ? new Date(r.status.nextRunAt) : undefined,
    catchUpLimit: r.deps.settings.catchUpLimit,
  });
  if (decision.nextRunAt) r.status.nextRunAt = rfc3339(decision.nextRunAt);
  else delete r.status.nextRunAt;
  if (decision.dropped > 0) {
    r.event('Warning', 'MissedOccurrences', 'Schedule', `${decision.dropped} cron occurrences missed during downtime were beyond the catch-up limit and are not sent`);
  }

  if (decision.due.length > 0) r.condition('Scheduled', 'True', 'Due', `${decision.due.length} occurrence(s) due now`);
  else if (decision.nextRunAt) r.condition('Scheduled', 'True', 'Waiting', `next occurrence at ${rfc3339(decision.nextRunAt)}`);
  else r.condition('Scheduled', 'True', 'Planned', 'every occurrence is planned');
  return decision;
}

export function emptyAudience(r: Reconciling): Blocked {
  return r.block(
    {
      phase: 'Pending',
      reason: 'EmptyAudience',
      message: 'the audience has no recipient (check the segment tags and contacts); the operator looks again with backoff',
      retry: true,
    },
    true,
  );
}

export const isBlocked = (x: unknown): x is Blocked => typeof x === 'object' && x !== null && 'retry' in x && 'reason' in x;
