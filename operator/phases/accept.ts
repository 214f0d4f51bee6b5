import { upsertBroadcast } from '../../core/delivery/broadcasts.js';
import { countSegments, MAX_SEGMENTS } from '../../core/delivery/segments.js';
import { deliveryCoreCopy, readTenant } from '../../core/delivery/reads.js';
import { toBroadcastRecord } from '../delivery-record.js';
import { scheduleProblem } from '../schedule.js';
import type { Blocked, Reconciling } from './reconciling.js';

/**
 * Accept: check what the API server's schema could not (a cron that parses, a
 * real time zone, the SMS part count, a known tenant with a sending number), then
 * give the delivery core this generation of the Broadcast (unless it has it). Rows not yet sent read
 * the message from that copy, so an edit applies to them; an older generation
 * never overwrites a newer one.
 */
export async function accept(r: Reconciling): Promise<Blocked | undefined> {
  const spec = r.spec;
  const invalidSchedule = scheduleProblem(spec.schedule);
  if (invalidSchedule) return r.block({ phase: 'Failed', reason: 'InvalidSchedule', message: invalidSchedule, retry: false }, false);

  if (spec.channel === 'sms') {
    const seg = countSegments(spec.message.text);
    if (seg.segments > MAX_SEGMENTS) {
      const message = `message.text needs ${seg.segments} SMS parts (${seg.encoding}, ${seg.characters} characters); carriers accept at most ${MAX_SEGMENTS}`;
      return r.block({ phase: 'Failed', reason: 'MessageTooLong', message, retry: false }, false);
    }
  }

  const tenant = await readTenant(r.deps.pool, spec.tenant);
  if (!tenant) {
    const message = `tenant "${spec.tenant}" is not known to the platform database; once it is created the Broadcast proceeds`;
    return r.block({ phase: 'Pending', reason: 'UnknownTenant', message, retry: true }, false);
  }
  if (spec.channel === 'sms' && tenant.sendingNumbers === 0) {
    const message = `SMS provider not configured: tenant "${spec.tenant}" has no sending number; once one is added the Broadcast proceeds`;
    return r.block({ phase: 'Pending', reason: 'ProviderNotConfigured', message, retry: true }, false);
  }

  // A read first: most reconciles (status refreshes) find this generation already there.
  r.coreCopy = await deliveryCoreCopy(r.deps.pool, r.id);
  if (!r.coreCopy || r.coreCopy.generation < r.generation) await upsertBroadcast(r.deps.pool, toBroadcastRecord(r.bc));
  r.condition('Accepted', 'True', 'Valid', `generation ${r.generation} accepted`);
  if (r.getPreviousCondition('Accepted')?.status !== 'True') r.event('Normal', 'Accepted', 'Accept', `accepted for tenant ${spec.tenant} (${spec.channel})`);
  return undefined;
}
