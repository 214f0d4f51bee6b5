import type { Pool, PoolClient } from './postgres.js';
import type { Logger } from '../logger.js';

export interface ListenerOptions {
  pool: Pool;
  log: Logger;
  /** The NOTIFY channel (an identifier: it is written into LISTEN as is). */
  channel: string;
  /** A notification on the channel, with its payload (a hint: the listener re-reads the truth). */
  onNotify: (payload: string) => void;
  /** LISTEN is in place again after a (re)connect: whatever happened meanwhile went unheard. */
  onListening: () => void;
  retryMs?: number;
}

/**
 * LISTENs on one channel on one connection held for the purpose, and comes back after a
 * lost connection. Notifications sent while it was away are lost, so every (re)connect is
 * reported and the listener looks at everything once.
 */
export class Listener {
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Ends the current wait (a held connection, or the pause before a retry). */
  private wake: (() => void) | undefined;

  constructor(private readonly o: ListenerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let client: PoolClient | undefined;
      try {
        client = await this.o.pool.connect();
        const held = client;
        const lost = this.waitUntilWoken((end) => {
          held.once('error', (err) => {
            this.o.log.warn({ err, channel: this.o.channel }, 'notifications: connection lost');
            end();
          });
          held.once('end', end);
        });
        held.on('notification', (n) => {
          if (n.channel === this.o.channel) this.o.onNotify(n.payload ?? '');
        });
        if (!this.isStopped()) {
          await held.query(`LISTEN ${this.o.channel}`);
          this.o.onListening();
          await lost;
        }
      } catch (err) {
        if (!this.isStopped()) this.o.log.warn({ err, channel: this.o.channel }, 'notifications: could not listen; retrying');
      } finally {
        // Never back to the pool: a connection that LISTENed keeps receiving.
        client?.release(true);
      }
      if (!this.isStopped()) await this.waitUntilWoken((end) => setTimeout(end, this.o.retryMs ?? 2_000).unref());
    }
  }

  /** stop() may come during any await of the loop. */
  private isStopped(): boolean {
    return this.stopped;
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
