import type { Pool, PoolClient } from '../lib/db/postgres.js';
import type { Logger } from '../lib/logger.js';
import { PROGRESS_CHANNEL } from '../core/delivery/progress.js';

export interface ProgressListenerOptions {
  pool: Pool;
  log: Logger;
  /** A broadcast's rows moved (a hint: the reconcile reads the counts itself). */
  onProgress: (broadcastId: string) => void;
  /** LISTEN is in place again after a (re)connect: whatever happened meanwhile went unheard. */
  onListening: () => void;
  retryMs?: number;
}

/**
 * LISTENs on the delivery core's progress channel (core/delivery/progress.ts)
 * on one connection held for the purpose, and comes back after a lost connection.
 * Notifications sent while it was away are lost, so every (re)connect is reported
 * and the operator looks at everything once.
 */
export class ProgressListener {
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Ends the current wait (a held connection, or the pause before a retry). */
  private wake: (() => void) | undefined;

  constructor(private readonly o: ProgressListenerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /** A call, not the field: stop() sets it while run() awaits, which the type checker's narrowing of the field cannot see. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private async run(): Promise<void> {
    while (!this.isStopped()) {
      let client: PoolClient | undefined;
      try {
        client = await this.o.pool.connect();
        const held = client;
        const lost = this.waitUntilWoken((end) => {
          held.once('error', (err) => {
            this.o.log.warn({ err }, 'progress notifications: connection lost');
            end();
          });
          held.once('end', end);
        });
        held.on('notification', (n) => {
          if (n.channel === PROGRESS_CHANNEL && n.payload) this.o.onProgress(n.payload);
        });
        if (!this.isStopped()) {
          await held.query(`LISTEN ${PROGRESS_CHANNEL}`);
          this.o.onListening();
          await lost;
        }
      } catch (err) {
        if (!this.isStopped()) this.o.log.warn({ err }, 'progress notifications: could not listen; retrying');
      } finally {
        // Never back to the pool: a connection that LISTENed keeps receiving.
        client?.release(true);
      }
      if (!this.isStopped()) await this.waitUntilWoken((end) => setTimeout(end, this.o.retryMs ?? 2_000).unref());
    }
  }

  /** Resolves when `arm`'s callback fires or stop() is called, whichever comes first. */
  private waitUntilWoken(arm: (end: () => void) => void): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const end = () => {
        if (done) return;
        done = true;
        this.wake = undefined;
        resolve();
      };
      this.wake = end;
      if (this.stopped) return end();
      arm(end);
    });
  }
}
