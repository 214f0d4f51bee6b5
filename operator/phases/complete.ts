import type { DeliveryCounts } from '../../core/delivery/broadcasts.js';
import type { BroadcastPhase } from '../api/v1alpha1/broadcast.js';
import { rfc3339 } from '../conditions.js';
import type { ScheduleDecision } from '../schedule.js';
import type { Reconciling } from './reconciling.js';
import { outstanding } from './send.js';

/**
 * Complete: decide the phase from what the delivery core reports. Sending while
 * any row is not final; Completed once every occurrence is planned and every row
 * final (Failed if none was sent and some failed); otherwise Scheduled, waiting
 * for the next occurrence.
 */
export function complete(r: Reconciling, c: DeliveryCounts, decision: ScheduleDecision, anyPlanned: boolean): BroadcastPhase {
  if (outstanding(c) > 0) {
    r.condition('Complete', 'False', 'Sending', 'deliveries are still in progress');
    return 'Sending';
  }
  if (decision.exhausted && decision.due.length === 0 && anyPlanned) {
    const failed = c.sent === 0 && c.failed > 0;
    const summary = `${c.sent} sent, ${c.delivered} delivered, ${c.failed} failed, ${c.skipped} skipped, ${c.expired} expired, ${c.cancelled} cancelled`;
    r.condition('Progressing', 'False', failed ? 'Failed' : 'Completed', summary);
    r.condition('Complete', 'True', failed ? 'AllDeliveriesFailed' : 'AllDeliveriesFinal', summary);
    r.status.completedAt ??= rfc3339(r.now);
    const phase: BroadcastPhase = failed ? 'Failed' : 'Completed';
    if (r.previousPhase !== phase) r.event(failed ? 'Warning' : 'Normal', phase, 'Complete', summary);
    return phase;
  }
  const waiting = r.status.nextRunAt ? `waiting for the next occurrence at ${r.status.nextRunAt}` : 'waiting for the schedule';
  r.condition('Progressing', 'False', 'Waiting', waiting);
  r.condition('Complete', 'False', 'Waiting', waiting);
  return 'Scheduled';
}
