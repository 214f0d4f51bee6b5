import type { Context, Next } from 'koa';
import type { Pool } from '../../lib/db/postgres.js';
import { metrics } from '../../lib/metrics.js';
import { HttpError } from './http.js';
import { tenantOf } from './auth.js';

/** $1 tenant: 0 when admitted, else seconds until the next request is allowed. */
export const ADMIT_REQUEST = 'SELECT herald_api_admit($1) AS wait';

/**
 * Each /v1 request takes one from its tenant's allowance (its plan's requests a minute,
 * a token bucket in PostgreSQL: migration 013), so the limit holds across api replicas.
 * Over it: 429 with Retry-After in whole seconds, and nothing of the request is done.
 */
export function tenantAllowance(pool: Pool) {
  return async (ctx: Context, next: Next) => {
    const tenant = tenantOf(ctx);
    const { rows } = await pool.query<{ wait: number }>(ADMIT_REQUEST, [tenant]);
    const wait = rows[0]?.wait ?? 0;
    if (wait > 0) {
      metrics.apiRateLimited.inc({ tenant });
      ctx.set('Retry-After', String(Math.max(1, Math.ceil(wait))));
      throw new HttpError(429, null, `tenant ${tenant} is over its plan's API requests a minute; retry after the Retry-After seconds`);
    }
    await next();
  };
}
