import type { Pool } from '../../lib/db/postgres.js';
import { inTransaction, isConnectionFault } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { recordOutcomes, type DeliveryResult } from './outcomes.js';
import { recordAttempts, type Attempt } from './attempts.js';

/**
 * Coalesces outcomes from every send in the process into few UPDATEs: at 3,000
 * sends a second, one statement per send would cost more than the sends. Each
 * add() resolves once its row (and the provider attempt behind it) is durably recorded.
 *
 * A write the database could not take because it was out of reach (a restart, a
 * failover, a dropped connection) is retried with backoff until it lands: the
 * provider has answered, and that answer exists nowhere else. Only close() ends the
 * retrying (a stopping worker); the rows then stay `sending` under this worker, and the
 * sweeper hands them on once its lease is over, flagged as possible duplicates.
 *
 * Outcomes not yet written are what a crash turns into resends (possible duplicates), so
 * the worker claims no more rows while more than a bound of them wait (whenBelow): when
 * the database lags behind the sends, the sends slow down instead of the backlog growing.
 */
export class OutcomeRecorder {
  private pending: { result: DeliveryResult; attempt?: Attempt; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  private wake: (() => void) | undefined;
  /** Outcomes added and not yet written (or given up on). */
  private unrecorded = 0;
  private belowWaiters: { limit: number; resolve: () => void }[] = [];

  constructor(
    private readonly pool: Pool,
    private readonly clock: Clock,
    private readonly opts: { maxBatch?: number; maxDelayMs?: number; log?: Logger; retryMs?: { first: number; max: number } } = {},
  ) {}

  /** Outcomes added and not yet written. */
  get backlog(): number {
    return this.unrecorded;
  }

  /** Resolves once at most `limit` outcomes wait to be written. */
  whenBelow(limit: number): Promise<void> {
    if (this.unrecorded <= limit) return Promise.resolve();
    return new Promise((resolve) => this.belowWaiters.push({ limit, resolve }));
  }

  private settled(n: number): void {
    this.unrecorded -= n;
    if (this.belowWaiters.length === 0) return;
    const still: { limit: number; resolve: () => void }[] = [];
    for (const w of this.belowWaiters) {
      if (this.unrecorded <= w.limit) w.resolve();
      else still.push(w);
    }
    this.belowWaiters = still;
  }

  add(result: DeliveryResult, attempt?: Attempt): Promise<void> {
    this.unrecorded++;
    return new Promise((resolve, reject) => {
      this.pending.push({ result, attempt, resolve, reject });
      if (this.pending.length >= (this.opts.maxBatch ?? 250)) void this.flush();
      else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.opts.maxDelayMs ?? 20);
    });
  }

  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.flushing;
    // Flushes run one after another so a row's updates land in order.
    this.flushing = this.flushing.then(async () => {
      const attempts = batch.flatMap((b) => (b.attempt ? [b.attempt] : []));
      let delay = this.opts.retryMs?.first ?? 100;
      for (let tries = 1; ; tries++) {
        try {
          // The row's state and its attempt land together: the analysis never sees one without the other.
          await inTransaction(this.pool, async (tx) => {
            await recordOutcomes(tx, batch.map((b) => b.result), this.clock.now());
            await recordAttempts(tx, attempts);
          });
          if (tries > 1) this.opts.log?.info({ outcomes: batch.length, tries }, 'outcomes recorded after the database came back');
          this.settled(batch.length);
          for (const b of batch) b.resolve();
          return;
        } catch (err) {
          if (!isConnectionFault(err) || this.closed) {
            this.settled(batch.length);
            for (const b of batch) b.reject(err);
            return;
          }
          this.opts.log?.warn({ err, outcomes: batch.length, tries, retryInMs: delay }, 'recording outcomes failed: database out of reach; retrying');
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, delay);
            this.wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
          this.wake = undefined;
          delay = Math.min(delay * 2, this.opts.retryMs?.max ?? 5_000);
        }
      }
    });
    return this.flushing;
  }

  /**
   * Write what is pending once more and stop retrying: a write that still fails is
   * rejected, and its rows are left to the sweeper.
   */
  close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    return this.flush();
  }
}
