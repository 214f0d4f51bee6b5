import { PgBoss } from 'pg-boss';
import type { Logger } from './logger.js';
import { clientClass } from './db/postgres.js';

/** The one pg-boss queue that carries delivery work: jobs name batches of delivery rows. */
export const DELIVER_QUEUE = 'herald-deliver';

/** Urgent work (a campus emergency) outranks every normal job, whatever fairness says. */
export const URGENT_PRIORITY = 1_000_000;

export interface DeliverJob {
  /** A planned batch: every row of (occurrence, batch_no). */
  occurrenceId?: string;
  batchNo?: number;
  /** Rows woken by the sweeper (retries, deferrals, resumes). */
  deliveryIds?: number[];
  /** The tenant whose rows these are (jobs made before it was carried have none). */
  tenantId?: string;
}

/**
 * The pg-boss group of a deliver job: a tenant's normal and urgent work apart, so a worker
 * can leave out the jobs of a tenant that waits for capacity without leaving out its alerts.
 */
export function deliverGroup(tenantId: string, urgent: boolean): { id: string } {
  return { id: urgent ? `${tenantId}!urgent` : tenantId };
}

export async function startBoss(
  url: string,
  opts: { max?: number; supervise?: boolean; schedule?: boolean; log?: Logger; superviseIntervalSeconds?: number } = {},
): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    max: opts.max ?? 4,
    supervise: opts.supervise ?? true,
    schedule: opts.schedule ?? false,
    application_name: 'herald-boss',
    // pg-boss hands its options to pg.Pool: its fetch and complete statements are prepared too.
    ...({ Client: clientClass() } as object),
    // Frequent supervision so a job whose worker died (no heartbeat) is retried in seconds.
    superviseIntervalSeconds: opts.superviseIntervalSeconds ?? 5,
    // The monitor pass is what fails a job whose heartbeat stopped.
    monitorIntervalSeconds: 10,
  });
  boss.on('error', (err) => opts.log?.error({ err }, 'pg-boss error'));
  await boss.start();
  if (!(await boss.getQueue(DELIVER_QUEUE))) {
    await boss
      .createQueue(DELIVER_QUEUE, {
        // A batch handler records every row before it returns; a job only throws for a
        // database fault, and the retry resolves against the rows, so retrying is safe.
        retryLimit: 10,
        retryDelay: 1,
        retryBackoff: true,
        retryDelayMax: 60,
        expireInSeconds: 3600,
        // A worker killed mid-batch stops heart-beating; pg-boss hands the job on within ~15 s.
        heartbeatSeconds: 10,
      })
      .catch((err: Error) => {
        // Two processes may create it at once.
        if (!/already exists|duplicate key/i.test(err.message)) throw err;
      });
  }
  return boss;
}
