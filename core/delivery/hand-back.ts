import type { PgBoss } from 'pg-boss';
import { DELIVER_QUEUE, URGENT_PRIORITY, type DeliverJob } from '../../lib/queue.js';
import { metrics } from '../../lib/metrics.js';
import { BATCH_SIZE } from './plan.js';

/**
 * Rows a worker held but did not claim (it drains, or its lane takes none of them
 * now) go back to the queue as a new job, and the job that carried them completes:
 * a hand-back never spends pg-boss's retry limit, however often it happens. The new
 * job is inserted before the old one completes, so a crash in between leaves two
 * jobs naming the rows (the claim sends each row once), never none.
 */
export async function handBack(boss: PgBoss, ids: number[], o: { urgent: boolean; startAfterSeconds?: number; jobSize?: number }): Promise<void> {
  if (ids.length === 0) return;
  const jobs: { data: DeliverJob; priority: number; startAfter?: number }[] = [];
  const size = Math.max(1, Math.min(o.jobSize ?? BATCH_SIZE, BATCH_SIZE));
  for (let i = 0; i < ids.length; i += size) {
    jobs.push({ data: { deliveryIds: ids.slice(i, i + size) }, priority: o.urgent ? URGENT_PRIORITY : 0, ...(o.startAfterSeconds ? { startAfter: o.startAfterSeconds } : {}) });
  }
  await boss.insert(DELIVER_QUEUE, jobs);
  metrics.queueEnqueued.inc({ queue: DELIVER_QUEUE }, jobs.length);
}
