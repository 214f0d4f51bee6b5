import { cancelBroadcast } from '../../core/delivery/broadcasts.js';
import { FINALIZER } from '../api/v1alpha1/broadcast.js';
import type { BroadcastApi } from '../broadcast-api.js';
import { deliveryCoreCopy } from '../../core/delivery/reads.js';
import type { Reconciling } from './reconciling.js';

/**
 * Cancel (the Broadcast is being deleted): every delivery not yet sent is recorded
 * as cancelled — rows in flight finish — and only then is the finalizer removed
 * and the object let go. Re-running it cancels nothing twice.
 */
export async function cancel(r: Reconciling, api: BroadcastApi): Promise<void> {
  const finalizers = r.bc.metadata.finalizers ?? [];
  if (!finalizers.includes(FINALIZER)) return;
  if (await deliveryCoreCopy(r.deps.pool, r.id)) {
    const cancelled = await cancelBroadcast(r.deps.pool, r.id, r.now);
    r.log.info({ cancelled }, 'broadcast deleted: deliveries not yet sent cancelled');
    r.event('Normal', 'Cancelled', 'Cancel', `deleted: ${cancelled} deliveries not yet sent were cancelled`);
  }
  r.bc = await api.setFinalizers(r.bc, finalizers.filter((f) => f !== FINALIZER));
}
