import type { Pool } from '../../lib/db/postgres.js';
import { inTransaction } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import { recordOutcomes, type DeliveryResult } from './outcomes.js';
import { recordAttempts, type Attempt } from './attempts.js';

/**
 * Coalesces outcomes from every send in the process into few UPDATEs: at 3,000
 * sends a second, one statement per send would cost more than the sends. Each
 * add() resolves once its row (and the provider attempt behind it) is durably recorded.
 */
export class OutcomeRecorder {
  private pending: { result: DeliveryResult; attempt?: Attempt; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly clock: Clock,
    private readonly opts: { maxBatch?: number; maxDelayMs?: number } = {},
  ) {}

  add(result: DeliveryResult, attempt?: Attempt): Promise<void> {
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
      try {
        const attempts = batch.flatMap((b) => (b.attempt ? [b.attempt] : []));
        // The row's state and its attempt land together: the analysis never sees one without the other.
        await inTransaction(this.pool, async (tx) => {
          await recordOutcomes(tx, batch.map((b) => b.result), this.clock.now());
          await recordAttempts(tx, attempts);
        });
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    });
    return this.flushing;
  }
}
