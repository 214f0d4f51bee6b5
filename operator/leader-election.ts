import { performance } from 'node:perf_hooks';
import type { Logger } from '../lib/logger.js';
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from './kube-client.js';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Unique per replica (hostname-pid-random). */
  identity: string;
  /** A standby takes over when the Lease has not changed for this long. */
  leaseDurationMs?: number;
  /** The leader stops acting when it has not renewed for this long (< leaseDuration). */
  renewDeadlineMs?: number;
  /** How often to try to acquire or renew. */
  retryPeriodMs?: number;
  log?: Logger;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  /** Optional in the API: a Lease someone else created may have none. */
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** RFC 3339 with microseconds, as metav1.MicroTime parses it. */
export const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: every
 * write carries the resourceVersion it read, so two candidates cannot both win
 * one round; a standby takes over when it has seen the record unchanged for a
 * whole lease duration (measured on its own monotonic clock, never by comparing
 * wall clocks); a leader that could not renew within renewDeadline stops acting.
 *
 * A Lease is not a fence: a leader paused (SIGSTOP) past its deadline believes
 * nothing until it runs again. `isLeader()` re-checks the deadline on every call,
 * so a woken ex-leader stops before its next reconcile, and whatever it was doing
 * at the pause is safe because planning is idempotent.
 */
export class LeaderElector {
  private leading = false;
  private lastRenewed = -Infinity;
  private observed: { record: string; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private tick: Promise<void> = Promise.resolve();
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;

  constructor(private readonly o: LeaderElectionOptions) {
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration');
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(o.namespace)}/leases`;
  }

  get identity(): string {
    return this.o.identity;
  }

  /** True only while this replica holds the Lease and renewed it within renewDeadline. */
  isLeader(): boolean {
    if (this.leading && performance.now() - this.lastRenewed >= this.renewDeadlineMs) this.stepDown('renew deadline passed');
    return this.leading;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      this.tick = this.tryAcquireOrRenew()
        .catch((err) => this.o.log?.warn({ err }, 'leader election: request failed'))
        .finally(() => {
          this.isLeader(); // steps down if renewals keep failing
          if (this.running) this.timer = setTimeout(loop, this.retryPeriodMs);
        });
    };
    loop();
  }

  /** Stop campaigning; with `release`, hand the Lease back so a standby takes over at once. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.tick;
    const wasLeading = this.leading;
    if (wasLeading) this.stepDown('stopping');
    if (opts.release && wasLeading) await this.release().catch((err) => this.o.log?.warn({ err }, 'leader election: release failed'));
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.o.log?.info({ identity: this.o.identity, why }, 'stopped leading');
    this.o.onStoppedLeading?.();
  }

  private async get(): Promise<Lease | undefined> {
    try {
      return await this.o.client.request<Lease>('GET', `${this.path}/${encodeURIComponent(this.o.name)}`);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const now = new Date();
    const lease = await this.get();
    const durationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    if (!lease) {
      try {
        await this.o.client.request<Lease>('POST', this.path, {
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: { holderIdentity: this.o.identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
          },
        });
        this.renewed();
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
      }
      return;
    }

    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.acquireTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: performance.now() };
    const heldByOther = !!spec.holderIdentity && spec.holderIdentity !== this.o.identity;
    const observedFor = performance.now() - this.observed.at;
    const otherDuration = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && observedFor < otherDuration) {
      if (this.leading) this.stepDown(`lease held by ${spec.holderIdentity}`);
      return;
    }

    const mine = spec.holderIdentity === this.o.identity;
    const next: Lease = {
      ...lease,
      spec: mine
        ? { ...spec, leaseDurationSeconds: durationSeconds, renewTime: microTime(now) }
        : {
            holderIdentity: this.o.identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
          },
    };
    try {
      // The resourceVersion read above makes this a compare-and-swap.
      await this.o.client.request<Lease>('PUT', `${this.path}/${encodeURIComponent(this.o.name)}`, { body: next });
      if (!mine) this.o.log?.info({ identity: this.o.identity, previous: spec.holderIdentity || null }, 'acquired lease');
      this.renewed();
    } catch (e) {
      if (!isConflict(e)) throw e;
      // Someone else wrote first; the next round looks again.
    }
  }

  private renewed(): void {
    this.lastRenewed = performance.now();
    if (!this.leading) {
      this.leading = true;
      this.o.log?.info({ identity: this.o.identity }, 'started leading');
      this.o.onStartedLeading?.();
    }
  }

  private async release(): Promise<void> {
    const lease = await this.get();
    if (!lease || lease.spec?.holderIdentity !== this.o.identity) return;
    const now = microTime(new Date());
    await this.o.client.request<Lease>('PUT', `${this.path}/${encodeURIComponent(this.o.name)}`, {
      body: { ...lease, spec: { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: lease.spec.leaseTransitions ?? 0 } },
    });
    this.o.log?.info({ identity: this.o.identity }, 'released lease');
  }
}
