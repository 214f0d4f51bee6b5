/**
 * A work queue of object keys, shaped like client-go's rate-limited workqueue:
 * - a key is held once however many events name it (coalescing), and never handed
 *   to two workers at once; a key added while it is being processed runs again after;
 * - `addAfter` (RequeueAfter) wakes a key at a planned time, keeping the earliest;
 * - `addRateLimited` requeues a failure after a per-key capped exponential backoff,
 *   which `forget` resets after a success;
 * - two priorities, as controller-runtime's priority queue: a key added `high`
 *   (a new object, a spec change, a deletion: someone is waiting for it) is handed
 *   out before every `normal` one (planned wake-ups, progress refreshes, resyncs), so
 *   a burst of new Broadcasts is not stuck behind status refreshes of running ones.
 */
export type Priority = 'high' | 'normal';

export interface WorkQueueOptions {
  /** First retry delay after a failure. */
  baseDelayMs?: number;
  /** Longest retry delay. */
  maxDelayMs?: number;
  /** Called whenever the number of waiting keys changes (the depth metric). */
  onDepth?: (depth: number) => void;
}

export class WorkQueue {
  private readonly lanes: Record<Priority, Lane> = { high: new Lane(), normal: new Lane() };
  /** Waiting keys and the lane each is in; a key also in `processing` waits to run again. */
  private readonly dirty = new Map<string, Priority>();
  private readonly processing = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly o: WorkQueueOptions = {}) {
    this.baseDelayMs = o.baseDelayMs ?? 500;
    this.maxDelayMs = o.maxDelayMs ?? 5 * 60_000;
  }

  /** Keys waiting to be processed (not counting those in progress or timed). */
  get depth(): number {
    return this.lanes.high.size + this.lanes.normal.size;
  }

  /** High-priority keys waiting: someone is waiting on each. */
  get urgent(): number {
    return this.lanes.high.size;
  }

  add(key: string, priority: Priority = 'normal'): void {
    if (this.shuttingDown) return;
    const waiting = this.dirty.get(key);
    if (waiting === 'high' || waiting === priority) return;
    this.dirty.set(key, priority);
    if (this.processing.has(key)) return; // `done` puts it back
    if (waiting === 'normal') {
      // Promoted: it moves to the high lane.
      this.lanes.normal.delete(key);
      this.lanes.high.push(key);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.lanes[priority].push(key);
    this.o.onDepth?.(this.depth);
  }

  /** Add `key` once `delayMs` has passed; an earlier pending wake-up wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Requeue after this key's next backoff delay: base × 2^failures, capped. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = this.backoffFor(n);
    this.addAfter(key, delay);
    return delay;
  }

  backoffFor(failures: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(failures, 30));
  }

  /** How many times in a row this key has been requeued with backoff. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The key succeeded: its next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to process; undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.lanes.high.shift() ?? this.lanes.normal.shift();
    if (key !== undefined) {
      this.o.onDepth?.(this.depth);
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Processing of `key` finished; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    const priority = this.dirty.get(key);
    if (priority) {
      this.dirty.delete(key);
      this.add(key, priority);
    }
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    for (const w of this.waiters) w(undefined);
    this.waiters = [];
  }
}

/** FIFO of keys with O(1) removal of any key (a promotion), in insertion order. */
class Lane {
  private readonly keys = new Set<string>();

  get size(): number {
    return this.keys.size;
  }

  push(key: string): void {
    this.keys.add(key);
  }

  delete(key: string): void {
    this.keys.delete(key);
  }

  shift(): string | undefined {
    for (const key of this.keys) {
      this.keys.delete(key);
      return key;
    }
    return undefined;
  }
}
