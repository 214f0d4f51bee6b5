import { readFileSync } from 'node:fs';

/**
 * Every time-dependent business decision (quiet hours, expiry, due occurrences)
 * reads a Clock, never `new Date()`, so tests can move time.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * A clock a test sets and advances by hand. With `running`, it also moves forward
 * in real time from the last instant set, so backoffs and leases still elapse.
 */
export class ManualClock implements Clock {
  private current: number;
  private setAt = Date.now();
  constructor(start: Date | string, private readonly opts: { running?: boolean } = {}) {
    this.current = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.current + (this.opts.running ? Date.now() - this.setAt : 0));
  }
  set(to: Date | string): void {
    this.current = new Date(to).getTime();
    this.setAt = Date.now();
  }
  advance(ms: number): void {
    this.current = this.now().getTime() + ms;
    this.setAt = Date.now();
  }
}

/**
 * A clock shared by several processes in a test: the file holds an ISO instant
 * that the test rewrites; the clock runs forward from it in real time so that
 * backoffs and leases still elapse.
 */
export class FileClock implements Clock {
  private checkedAt = 0;
  private content = '';
  private base = 0;
  private readAt = 0;
  constructor(private readonly path: string) {}
  now(): Date {
    const wall = Date.now();
    if (wall - this.checkedAt > 200) {
      this.checkedAt = wall;
      const content = readFileSync(this.path, 'utf8').trim();
      // Only a new instant in the file resets the clock; otherwise it keeps running.
      if (content !== this.content) {
        const base = new Date(content).getTime();
        if (Number.isNaN(base)) throw new Error(`HERALD_CLOCK_FILE ${this.path} does not hold an ISO instant`);
        this.content = content;
        this.base = base;
        this.readAt = wall;
      }
    }
    return new Date(this.base + (wall - this.readAt));
  }
}

/** The process clock: HERALD_CLOCK_FILE switches a whole process to a FileClock. */
export function clockFromEnv(env: NodeJS.ProcessEnv = process.env): Clock {
  return env.HERALD_CLOCK_FILE ? new FileClock(env.HERALD_CLOCK_FILE) : systemClock;
}
