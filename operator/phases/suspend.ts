import { resumeBroadcast, suspendBroadcast } from '../../core/delivery/broadcasts.js';
import { hasHeldDeliveries } from '../../core/delivery/reads.js';
import type { Reconciling } from './reconciling.js';

/** spec.suspend: true — workers hold every row not yet sent; nothing new is planned. */
export async function suspend(r: Reconciling): Promise<void> {
  await suspendBroadcast(r.deps.pool, r.id);
  r.condition('Progressing', 'False', 'Suspended', 'sending is paused (spec.suspend is true); deliveries not yet sent are held');
  r.condition('Complete', 'False', 'Suspended', 'sending is paused');
  if (r.previousPhase !== 'Suspended') r.event('Normal', 'Suspended', 'Suspend', 'sending paused; deliveries not yet sent are held until spec.suspend is false');
}

/**
 * spec.suspend: false — held rows become due at once and the workers' sweeper
 * enqueues them. Checked on every reconcile of a live Broadcast, so a row a worker
 * held just as the suspension lifted is released on the next pass.
 */
export async function resume(r: Reconciling): Promise<void> {
  const needed = r.previousPhase === 'Suspended' || r.coreCopy?.suspended || (await hasHeldDeliveries(r.deps.pool, r.id));
  if (!needed) return;
  const released = await resumeBroadcast(r.deps.pool, r.id, r.now);
  if (r.previousPhase === 'Suspended' || released > 0) {
    r.event('Normal', 'Resumed', 'Resume', `sending resumed; ${released} held deliveries released`);
  }
}
