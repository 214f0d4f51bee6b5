import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from '../../lib/db/postgres.js';

export interface RateKey {
  key: string;
  perSecond: number;
}

/**
 * Limits that hold across every worker process: token buckets in PostgreSQL
 * (herald_take_tokens). Callers take tokens in small grants, so one caller cannot
 * run far ahead of the rate, and a waiting caller sleeps in-process rather than
 * holding a database connection.
 */
export class RateLimiter {
  constructor(
    private readonly pool: Pool,
    private readonly opts: { maxWaitMs?: number; signal?: AbortSignal } = {},
  ) {}

  /** The largest grant worth asking for: a quarter second of the slowest bucket, at least 1. */
  static grantSize(keys: RateKey[], want: number): number {
    const slowest = Math.min(...keys.map((k) => k.perSecond));
    return Math.max(1, Math.min(want, Math.floor(slowest / 4)));
  }

  /** Wait until `tokens` can be taken from every bucket, then take them. */
  async take(keys: RateKey[], tokens: number): Promise<void> {
    if (keys.length === 0 || tokens <= 0) return;
    const names = keys.map((k) => k.key);
    const rates = keys.map((k) => k.perSecond);
    for (;;) {
      const { rows } = await this.pool.query<{ r: number }>('SELECT herald_take_tokens($1::text[], $2::float8[], $3) AS r', [names, rates, tokens]);
      const result = Number(rows[0]?.r ?? 0);
      if (result > 0) return;
      const waitMs = Math.min(Math.max(5, -result * 1000), this.opts.maxWaitMs ?? 10_000);
      await sleep(waitMs, undefined, { signal: this.opts.signal });
    }
  }
}
