import type { Logger } from '../../lib/logger.js';

/**
 * Work a request starts but does not wait for (the reply to an inbound HELP), kept
 * track of so that a SIGTERM drain waits for it and tests can await it.
 */
export class BackgroundTasks {
  private readonly running = new Set<Promise<void>>();
  constructor(private readonly log: Logger) {}

  run(task: () => Promise<void>): void {
    const p: Promise<void> = task()
      .catch((err: unknown) => this.log.error({ err }, 'background task failed'))
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  get size(): number {
    return this.running.size;
  }

  /** Resolves when every task started so far (and any they started) has finished. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
