import type { PgBoss } from 'pg-boss';
import type { Pool } from '../../lib/db/postgres.js';
import { BATCH_SIZE } from '../../core/delivery/plan.js';
import type { Logger } from '../../lib/logger.js';
import type { Broadcast, BroadcastPhase, BroadcastStatus, ConditionType } from '../api/v1alpha1/broadcast.js';
import { setCondition, type ConditionStatus } from '../conditions.js';
import { deliveryIdOf } from '../delivery-record.js';
import type { BroadcastEvent } from '../events.js';

export interface OperatorSettings {
  /** While sending, counts are folded into status at most this often (progress notifications wait for it). */
  statusRefreshMs: number;
  /**
   * Longest a progress-only status write or an Event yields to new Broadcasts waiting to be
   * planned. Past it, they are written anyway: a sustained stream of new Broadcasts must not
   * leave the status of those already sending stale for as long as it lasts.
   */
  maxYieldMs: number;
  /** While rows move and no progress notification arrives, look anyway this often (one may have been lost). */
  progressPollMs: number;
  /** Longest planned wait before a Broadcast is looked at again (RequeueAfter cap). */
  maxRequeueMs: number;
  /** Dry-run price of one SMS part, as a decimal string ("0.0040"). */
  pricePerSegment: string;
  currency: string;
  /** Most missed cron ticks planned on return from downtime. */
  catchUpLimit: number;
  /** Delivery rows per pg-boss job. */
  batchSize: number;
}

export const defaultSettings: OperatorSettings = {
  statusRefreshMs: 2_000,
  maxYieldMs: 10_000,
  progressPollMs: 30_000,
  maxRequeueMs: 5 * 60_000,
  pricePerSegment: '0.0040',
  currency: 'USD',
  catchUpLimit: 100,
  batchSize: BATCH_SIZE,
};

export interface PhaseDeps {
  pool: Pool;
  boss: PgBoss;
  log: Logger;
  settings: OperatorSettings;
}

/** Something that stops a Broadcast from going on; the condition says which. */
export interface Blocked {
  phase: Extract<BroadcastPhase, 'Pending' | 'Failed'>;
  reason: string;
  message: string;
  /** True when the world may fix it (a tenant created): look again with backoff. */
  retry: boolean;
}

/**
 * One reconcile of one Broadcast: the object as read at the start, the instant
 * it runs at (the operator's clock), the status being built, and the events to
 * record once that status is written. Phase functions read and fill it.
 */
export class Reconciling {
  readonly id: string;
  readonly status: BroadcastStatus;
  readonly events: BroadcastEvent[] = [];
  readonly log: Logger;
  /** The delivery core's copy as accept found it (before any upsert). */
  coreCopy: { generation: number; suspended: boolean; cancelledAt: Date | null } | undefined;
  private degraded: { reason: string; message: string } | undefined;

  constructor(
    public bc: Broadcast,
    readonly now: Date,
    readonly deps: PhaseDeps,
  ) {
    this.id = deliveryIdOf(bc);
    this.status = structuredClone(bc.status ?? {});
    this.log = deps.log.child({ broadcast: `${bc.metadata.namespace}/${bc.metadata.name}`, broadcastId: this.id, generation: bc.metadata.generation });
  }

  get spec() {
    return this.bc.spec;
  }

  get generation(): number {
    return this.bc.metadata.generation;
  }

  /** The phase written by the previous reconcile. */
  get previousPhase(): BroadcastPhase | undefined {
    return this.bc.status?.phase;
  }

  getPreviousCondition(type: ConditionType) {
    return this.bc.status?.conditions?.find((c) => c.type === type);
  }

  condition(type: ConditionType, value: ConditionStatus, reason: string, message: string): void {
    setCondition(this.status, type, value, reason, message, { generation: this.generation, now: this.now });
  }

  /** Degraded=True with this reason (the first one set in a reconcile wins); else Degraded=False at the end. */
  degrade(reason: string, message: string): void {
    this.degraded ??= { reason, message };
  }

  settleDegraded(): void {
    if (this.degraded) this.condition('Degraded', 'True', this.degraded.reason, this.degraded.message);
    else this.condition('Degraded', 'False', 'AsExpected', 'no problem found');
  }

  event(type: BroadcastEvent['type'], reason: string, action: string, note: string): void {
    this.events.push({ type, reason, action, note });
  }

  /** Record a problem on every condition it affects, as a Warning event too. */
  block(b: Blocked, accepted: boolean): Blocked {
    if (!accepted) this.condition('Accepted', 'False', b.reason, b.message);
    this.condition('Scheduled', 'False', b.reason, b.message);
    this.condition('Progressing', 'False', b.reason, b.message);
    this.condition('Complete', 'False', b.reason, b.message);
    this.degrade(b.reason, b.message);
    this.event('Warning', b.reason, accepted ? 'Plan' : 'Accept', b.message);
    return b;
  }
}
