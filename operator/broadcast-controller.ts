import type { Clock } from '../lib/clock.js';
import type { Broadcast, BroadcastPhase } from './api/v1alpha1/broadcast.js';
import { FINALIZER } from './api/v1alpha1/broadcast.js';
import type { BroadcastApi } from './broadcast-api.js';
import { plannedOccurrences } from '../core/delivery/reads.js';
import type { EventRecorder } from './events.js';
import { accept } from './phases/accept.js';
import { cancel } from './phases/cancel.js';
import { complete } from './phases/complete.js';
import { clearPreview, dryRun } from './phases/dry-run.js';
import { plan } from './phases/plan.js';
import { Reconciling, type Blocked, type PhaseDeps } from './phases/reconciling.js';
import { tenantBinding, type NamespaceLabels } from './phases/tenant-binding.js';
import { isBlocked, schedule } from './phases/schedule.js';
import { outstanding, send } from './phases/send.js';
import { resume, suspend } from './phases/suspend.js';
import { sameStatus, writeStatus } from './status.js';

/** What a reconcile asks of the work queue. */
export interface ReconcileResult {
  /** Look again after this long (a planned wait: the next occurrence, the next status refresh). */
  requeueAfterMs?: number;
  /** Something outside the operator must change first: look again with per-key backoff. */
  backoff?: boolean;
}

export interface BroadcastControllerDeps extends PhaseDeps {
  api: BroadcastApi;
  /** Labels of a namespace (the namespace informer): only a namespace bound to the Broadcast's tenant plans. */
  namespaceLabels: NamespaceLabels;
  clock: Clock;
  events: EventRecorder;
  /** A paused ex-leader stops writing status as soon as it knows it no longer leads. */
  stillLeading: () => boolean;
  /** True while new or changed Broadcasts wait: a status write that can wait yields to them. */
  othersWaiting?: () => boolean;
  /** Tests: throw at a named step to prove a crash there converges on the next run. */
  crashAt?: (step: string, key: string) => void;
}

/**
 * The Broadcast reconciler. Level-triggered: every run reads the Broadcast afresh
 * and the delivery core's state, and moves both toward the spec; what it decides never
 * depends on an earlier run (the one thing it remembers is how long a status write has
 * yielded: a hint of when to report), so it can be killed at any line and the next run converges.
 *
 *   deleted?          → cancel what is not yet sent, drop the finalizer
 *   tenant binding    → its namespace is bound to its tenant (else nothing is planned)
 *   accept            → validate, give the delivery core this generation
 *   dryRun?           → preview audience, skips, parts and cost; done
 *   suspend / resume  → hold or release rows not yet sent
 *   schedule          → which occurrences are due, when is the next
 *   plan              → rows and jobs for each due occurrence (idempotent)
 *   send              → fold delivery counts into status
 *   complete          → Sending, Scheduled, Completed or Failed
 * then write status if it changed and record the events.
 */
export class BroadcastController {
  /** When each Broadcast's pending status write first yielded (a scheduling hint, never state the reconcile reads). */
  private readonly yieldingSince = new Map<string, number>();

  constructor(private readonly d: BroadcastControllerDeps) {}

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const found = this.d.api.get(namespace, name);
    if (!found) {
      this.yieldingSince.delete(key);
      return {}; // gone: the finalizer already did its work
    }
    const r = new Reconciling(found, this.d.clock.now(), this.d);
    this.d.crashAt?.('read', key);

    if (r.bc.metadata.deletionTimestamp) {
      this.yieldingSince.delete(key);
      await cancel(r, this.d.api);
      this.recordEvents(r);
      return {};
    }
    r.bc = await this.ensureFinalizer(r.bc);
    this.d.crashAt?.('finalizer', key);

    const rejected = tenantBinding(r, this.d.namespaceLabels) ?? (await accept(r));
    if (rejected) return this.finish(r, rejected.phase, this.afterBlocked(rejected));
    this.d.crashAt?.('accept', key);

    if (r.spec.dryRun) {
      await dryRun(r);
      return this.finish(r, 'Completed', {});
    }
    clearPreview(r);

    const planned = await plannedOccurrences(this.d.pool, r.id);
    if (r.spec.suspend) await suspend(r);
    else if (planned.length > 0) await resume(r);
    this.d.crashAt?.('suspend', key);

    const decision = await schedule(r, planned);
    if (isBlocked(decision)) return this.finish(r, planned.length > 0 ? 'Scheduled' : decision.phase, this.afterBlocked(decision));

    let blocked: Blocked | undefined;
    if (!r.spec.suspend) blocked = await plan(r, decision.due);
    this.d.crashAt?.('plan', key);
    const nowPlanned = blocked || decision.due.length === 0 ? planned : await plannedOccurrences(this.d.pool, r.id);

    const counts = await send(r, nowPlanned);
    this.d.crashAt?.('send', key);

    let phase: BroadcastPhase;
    if (blocked && nowPlanned.length === 0) phase = blocked.phase;
    else if (r.spec.suspend) phase = 'Suspended';
    else phase = complete(r, counts, blocked ? { ...decision, exhausted: false } : { ...decision, due: [] }, nowPlanned.length > 0);

    const waits: number[] = [];
    // While rows move, the workers' progress notifications bring this Broadcast back (at most every
    // statusRefreshMs); the poll is the safety net (suspended: only while some are in flight).
    if (r.spec.suspend ? counts.sending > 0 : outstanding(counts) > 0) waits.push(this.d.settings.progressPollMs);
    if (r.status.nextRunAt) waits.push(new Date(r.status.nextRunAt).getTime() - r.now.getTime());
    const result: ReconcileResult = blocked ? this.afterBlocked(blocked) : {};
    if (waits.length) result.requeueAfterMs = Math.max(0, Math.min(this.d.settings.maxRequeueMs, ...waits));
    return this.finish(r, phase, result);
  }

  /** The finalizer goes on before anything is planned, so a deletion always passes through cancel. */
  private async ensureFinalizer(bc: Broadcast): Promise<Broadcast> {
    const finalizers = bc.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return bc;
    return this.d.api.setFinalizers(bc, [...finalizers, FINALIZER]);
  }

  private afterBlocked(b: Blocked): ReconcileResult {
    return b.retry ? { backoff: true } : {};
  }

  /** Write status if it changed (with conflict retry), then record the events. */
  private async finish(r: Reconciling, phase: BroadcastPhase, result: ReconcileResult): Promise<ReconcileResult> {
    r.status.phase = phase;
    r.status.observedGeneration = r.generation;
    r.settleDegraded();
    const key = `${r.bc.metadata.namespace}/${r.bc.metadata.name}`;
    this.d.crashAt?.('status', key);
    if (!sameStatus(r.status, r.bc.status)) {
      // Acting comes before reporting: under a burst of new Broadcasts, the status of one
      // already planned waits (a normal-priority requeue writes it) while the rest get planned.
      // Only progress waits — never a transition a person or an event depends on (completion,
      // suspension, a problem, a deletion) — so the pass that writes it emits nothing twice.
      // And only for maxYieldMs: a burst that goes on does not freeze the status of the rest.
      const progressOnly = (phase === 'Sending' || phase === 'Scheduled') && (r.previousPhase === undefined || r.previousPhase === phase);
      if (progressOnly && !result.backoff && !r.bc.metadata.deletionTimestamp && this.d.othersWaiting?.()) {
        const since = this.yieldingSince.get(key) ?? Date.now();
        if (Date.now() - since < this.d.settings.maxYieldMs) {
          this.yieldingSince.set(key, since);
          this.recordEvents(r);
          return { ...result, requeueAfterMs: 0 };
        }
      }
      this.yieldingSince.delete(key);
      const stored = await writeStatus(this.d.api, r.bc, r.status, { stillLeading: this.d.stillLeading, log: r.log });
      if (stored) r.bc = stored;
      if (r.previousPhase !== phase) r.log.info({ from: r.previousPhase ?? null, to: phase }, 'phase');
    } else this.yieldingSince.delete(key);
    this.recordEvents(r);
    return result;
  }

  /** Events are advisory: recorded in the background, in order, never holding up the next reconcile. */
  private recordEvents(r: Reconciling): void {
    if (r.events.length > 0) this.d.events.recordAll(r.bc, [...r.events]);
  }
}
