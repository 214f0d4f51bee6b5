import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from '../../lib/db/postgres.js';

export type LaneVerdict = 'ok' | 'share' | 'closed';

/**
 * Asks the database whether this worker's lane may claim a tenant's rows now
 * (herald_lane_admit, without counting: the claim itself counts). Slots of one
 * process waiting for the same tenant share one question at a time, so a lane
 * ahead of its weight costs a few queries a second, not one per slot.
 */
export class LaneGate {
  private readonly asking = new Map<string, { at: number; verdict: Promise<LaneVerdict> }>();

  constructor(
    private readonly pool: Pool,
    readonly lane: string,
    /** A lane with no worker heart-beating this recently is left out of the split. */
    readonly leaseSeconds: number,
    private readonly opts: { reuseMs?: number; maxWaitMs?: number } = {},
  ) {}

  /**
   * 'ok' once the lane may claim; 'closed' when it takes none of this work now; 'busy'
   * when it stayed ahead of its weight for maxWaitMs: the other lanes hold none of
   * this tenant's rows, so the caller offers its rows back to them.
   */
  async admit(tenant: string, rows: number, urgent: boolean, signal?: AbortSignal): Promise<'ok' | 'closed' | 'busy'> {
    const deadline = performance.now() + (this.opts.maxWaitMs ?? 250);
    for (let pause = 10; ; pause = Math.min(pause * 2, 100)) {
      if (signal?.aborted) return 'closed';
      const verdict = await this.ask(tenant, rows, urgent);
      if (verdict !== 'share') return verdict;
      if (performance.now() > deadline) return 'busy';
      await sleep(pause);
    }
  }

  private ask(tenant: string, rows: number, urgent: boolean): Promise<LaneVerdict> {
    const key = `${tenant}\n${urgent}`;
    const now = performance.now();
    const known = this.asking.get(key);
    if (known && now - known.at < (this.opts.reuseMs ?? 10)) return known.verdict;
    const verdict = this.pool
      .query<{ v: LaneVerdict }>('SELECT herald_lane_admit($1, $2, $3, $4, false, $5) AS v', [this.lane, tenant, rows, urgent, this.leaseSeconds])
      .then((r) => r.rows[0]?.v ?? 'closed');
    this.asking.set(key, { at: now, verdict });
    verdict.finally(() => { this.asking.set(key, { at: performance.now(), verdict }); }).catch(() => this.asking.delete(key));
    return verdict;
  }
}
