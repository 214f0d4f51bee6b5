import type { Pool } from '../lib/db/postgres.js';
import type { Logger } from '../lib/logger.js';
import { Listener } from '../lib/db/listener.js';
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
 * LISTENs on the delivery core's progress channel (core/delivery/progress.ts); every
 * (re)connect is reported, and the operator then looks at everything once.
 */
export class ProgressListener extends Listener {
  constructor(o: ProgressListenerOptions) {
    super({ ...o, channel: PROGRESS_CHANNEL, onNotify: (id) => { if (id) o.onProgress(id); } });
  }
}
