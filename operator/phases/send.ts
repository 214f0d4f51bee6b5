import { deliveryCounts, type DeliveryCounts } from '../../core/delivery/broadcasts.js';
import { capacityWait } from '../../core/delivery/capacity.js';
import { rfc3339 } from '../conditions.js';
import type { PlannedOccurrence } from '../../core/delivery/reads.js';
import type { Reconciling } from './reconciling.js';

export const outstanding = (c: DeliveryCounts): number => c.queued + c.sending;

/**
 * Send: the workers do the sending; the operator folds their progress into
 * status. It runs once per reconcile, and a sending Broadcast is reconciled when a
 * worker reports progress but at most every statusRefreshMs, so a 100,000-recipient
 * broadcast writes its status a few dozen times, not 100,000.
 */
export async function send(r: Reconciling, planned: PlannedOccurrence[]): Promise<DeliveryCounts> {
  const c = await deliveryCounts(r.deps.pool, r.id);
  r.status.counts = {
    queued: c.queued,
    sending: c.sending,
    sent: c.sent,
    delivered: c.delivered,
    failed: c.failed,
    skipped: c.skipped,
    expired: c.expired,
    cancelled: c.cancelled,
    possibleDuplicates: c.possibleDuplicates,
  };
  r.status.segments = c.segments;
  // From the delivery core's record, so a pass whose status write waited loses nothing.
  if (planned.length > 0) r.status.startedAt ??= rfc3339(new Date(Math.min(...planned.map((p) => (p.plannedAt ?? r.now).getTime()))));
  const latest = planned.at(-1);
  r.status.audienceSize = latest?.audienceSize ?? c.total;
  r.status.occurrences = planned.length;
  if (latest) r.status.lastScheduleTime = latest.scheduledAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (c.failed > 0) r.degrade('DeliveriesFailed', `${c.failed} of ${c.total} deliveries failed`);
  else if (c.possibleDuplicates > 0) {
    r.degrade('PossibleDuplicates', `${c.possibleDuplicates} deliveries were in flight when a worker died and may have been sent twice`);
  }
  if (outstanding(c) > 0 && !r.spec.suspend) {
    const progress = `${c.sent} of ${c.total} sent, ${outstanding(c)} to go`;
    // Shared with other tenants at this moment: say so, and what share this tenant gets.
    const wait = c.queued > 0 ? await capacityWait(r.deps.pool, r.spec.tenant, r.spec.channel) : undefined;
    if (wait) {
      r.condition('Progressing', 'True', 'WaitingForCapacity',
        `${progress}; waiting for the shared ${r.spec.channel === 'sms' ? 'SMS provider account' : 'push project'} limit, tenant ${r.spec.tenant}'s current share ${Math.round(wait.share * 100)}%`);
    } else {
      r.condition('Progressing', 'True', 'Sending', progress);
    }
  }
  return c;
}
