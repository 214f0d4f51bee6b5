import type { PgBoss } from 'pg-boss';
import { DELIVER_QUEUE, URGENT_PRIORITY, deliverGroup, type DeliverJob } from '../../lib/queue.js';
import { metrics } from '../../lib/metrics.js';
import { BATCH_SIZE } from './plan.js';

/**
 * Rows a worker held but did not claim (it drains, its lane takes none of them now,
 * or the shared limits have no tokens for its tenant now) go back to the queue as a new job, and the job that carried them completes:
 * a hand-back never spends pg-boss's retry limit, however often it happens. The new
 * job is inserted before the old one completes, so a crash in between leaves two
 * jobs naming the rows (the claim sends each row once), never none.
 */
export interface HandBack {
  urgent: boolean;
  /** The tenant whose rows these are: the new jobs' group. */
  tenantId?: string;
  /** Offer them again this much later (a lane that takes none now, or capacity that is spent). */
  startAfterMs?: number;
  jobSize?: number;
}

export async function handBack(boss: PgBoss, ids: number[], o: HandBack): Promise<void> {
  if (ids.length === 0) return;
  const jobs: { data: DeliverJob; priority: number; startAfter?: Date; group?: { id: string } }[] = [];
  const size = Math.max(1, Math.min(o.jobSize ?? BATCH_SIZE, BATCH_SIZE));
  // A Date, not seconds: pg-boss takes a number as whole seconds, and waits for capacity are milliseconds.
  const startAfter = o.startAfterMs ? new Date(Date.now() + o.startAfterMs) : undefined;
  for (let i = 0; i < ids.length; i += size) {
    jobs.push({
      data: { deliveryIds: ids.slice(i, i + size), ...(o.tenantId ? { tenantId: o.tenantId } : {}) },
      priority: o.urgent ? URGENT_PRIORITY : 0,
      ...(startAfter ? { startAfter } : {}),
      ...(o.tenantId ? { group: deliverGroup(o.tenantId, o.urgent) } : {}),
    });
  }
  await boss.insert(DELIVER_QUEUE, jobs);
  metrics.queueEnqueued.inc({ queue: DELIVER_QUEUE }, jobs.length);
}
