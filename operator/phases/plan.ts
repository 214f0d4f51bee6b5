import { metrics } from '../../lib/metrics.js';
import { planOccurrence } from '../../core/delivery/plan.js';
import { rfc3339 } from '../conditions.js';
import { audienceSize } from '../../core/delivery/reads.js';
import type { Occurrence } from '../schedule.js';
import { emptyAudience } from './schedule.js';
import type { Blocked, Reconciling } from './reconciling.js';

/**
 * Plan: hand each due occurrence to the delivery core, which writes its delivery
 * rows and enqueues their jobs in one transaction under the occurrence's key.
 * Planning a key twice adds nothing, so a crash, a restart or a paused ex-leader
 * waking up cannot duplicate a job or a delivery.
 */
export async function plan(r: Reconciling, due: Occurrence[]): Promise<Blocked | undefined> {
  if (due.length === 0) return undefined;
  const spec = r.spec;
  if ((await audienceSize(r.deps.pool, spec.tenant, spec.channel, spec.audience)) === 0) return emptyAudience(r);

  for (const occ of due) {
    const res = await planOccurrence(r.deps.pool, r.deps.boss, { broadcastId: r.id, key: occ.key, scheduledAt: occ.scheduledAt, local: occ.local }, r.now, r.deps.settings.batchSize);
    if (!res.created) continue;
    metrics.operatorPlanned.inc();
    r.log.info({ occurrence: occ.key, ...res }, 'occurrence planned');
    const parts = [`${res.queued} queued`];
    if (res.deferred) parts.push(`${res.deferred} waiting for their local time`);
    if (res.skipped) parts.push(`${res.skipped} opted out`);
    if (res.expired) parts.push(`${res.expired} expired (past expireAfter)`);
    r.event('Normal', 'Planned', 'Plan', `occurrence ${occ.key} (due ${rfc3339(occ.scheduledAt)}): ${res.audienceSize} recipients in ${res.batches} batches; ${parts.join(', ')}`);
  }
  return undefined;
}
