/**
 * Bounds work in flight: the worker's sends across all its jobs, the operator's
 * background Event writes. Unlike a plain concurrency limiter it hands out several
 * permits at once (a chunk of rows goes out together), first come first served.
 */
export class Semaphore {
  private waiters: { n: number; resolve: () => void }[] = [];
  readonly capacity: number;
  constructor(private available: number) {
    this.capacity = available;
  }

  get free(): number {
    return this.available;
  }

  async acquire(n = 1): Promise<void> {
    if (n === 0) return;
    if (this.waiters.length === 0 && this.available >= n) {
      this.available -= n;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push({ n, resolve }));
  }

  release(n = 1): void {
    this.available += n;
    while (this.waiters.length > 0 && this.available >= this.waiters[0]!.n) {
      const w = this.waiters.shift()!;
      this.available -= w.n;
      w.resolve();
    }
  }
}
