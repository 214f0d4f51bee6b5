import Koa from 'koa';
import type { PgBoss } from 'pg-boss';
import type { Pool } from '../../lib/db/postgres.js';
import { healthRoutes, httpMetrics } from '../../lib/http.js';
import { DELIVER_QUEUE } from '../../lib/queue.js';

/** The worker's HTTP face: health that tells the truth, and metrics. */
export function createWorkerApp(deps: { pool: Pool; boss: PgBoss; accepting: () => boolean }): Koa {
  const app = new Koa();
  app.use(httpMetrics('worker'));
  app.use(
    healthRoutes({
      live: () => true,
      ready: {
        database: () => deps.pool.query('SELECT 1'),
        queue: async () => {
          if (!(await deps.boss.getQueue(DELIVER_QUEUE))) throw new Error(`queue ${DELIVER_QUEUE} missing`);
        },
        accepting: async () => {
          if (!deps.accepting()) throw new Error('draining');
        },
      },
    }),
  );
  return app;
}
