import type { Pool, PoolClient } from '../lib/db/postgres.js';
import type { Logger } from '../lib/logger.js';
import { PROGRESS_CHANNEL } from '../services/delivery/progress.js';

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
 * LISTENs on the delivery core's progress channel (services/delivery/progress.ts)
 * on one connection held for the purpose, and comes back after a lost connection.
 * Notifications sent while it was away are lost, so every (re)connect is reported
 * and the operator looks at everything once.
 */
export class ProgressListener {
  private stopped = false;
  private client: PoolClient | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly o: ProgressListenerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.client?.release(true);
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const client = await this.o.pool.connect();
        this.client = client;
        const lost = new Promise<void>((resolve) => {
          this.wake = resolve;
          client.once('error', (err) => {
            this.o.log.warn({ err }, 'progress notifications: connection lost');
            resolve();
          });
          client.once('end', resolve);
        });
        client.on('notification', (n) => {
          if (n.channel === PROGRESS_CHANNEL && n.payload) this.o.onProgress(n.payload);
        });
        await client.query(`LISTEN ${PROGRESS_CHANNEL}`);
        this.o.onListening();
        await lost;
        this.client = undefined;
        if (!this.stopped) client.release(true);
      } catch (err) {
        if (this.stopped) break;
        this.o.log.warn({ err }, 'progress notifications: could not listen; retrying');
      }
      if (!this.stopped) await new Promise<void>((r) => setTimeout(r, this.o.retryMs ?? 2_000).unref());
    }
  }
}
