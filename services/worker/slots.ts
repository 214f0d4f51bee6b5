import type { Job, PgBoss } from 'pg-boss';
import type { Logger } from '../../lib/logger.js';
import { DELIVER_QUEUE, type DeliverJob } from '../../lib/queue.js';
import { metrics } from '../../lib/metrics.js';

export interface SlotsOptions {
  /** Jobs handled at once by this process. */
  slots: number;
  /** Jobs of one group (a tenant's normal or urgent work) handled at once by this process. */
  perGroup: number;
  /** How often an idle process looks for work it was not told about (a job whose startAfter passed). */
  pollMs: number;
  handler: (job: Job<DeliverJob>) => Promise<unknown>;
  /** Whether a job's result says it was told to wait for capacity (its group keeps probing). */
  waited?: (result: unknown) => boolean;
  log: Logger;
}

/**
 * The worker's batch slots, fetching from pg-boss themselves (not boss.work) so a fetch can
 * leave out the groups this process knows to be waiting for capacity: a tenant whose claim
 * was refused tokens hands its rows back for the wait it was told (waitFor), and until then
 * no slot of this process takes another of its jobs only to hand it back too. A free slot
 * then goes to whoever can send, so one tenant's backlog never holds every slot.
 *
 * Idle slots park; one timer wakes one of them every pollMs, a slot that got a job wakes the
 * next (a backlog is taken up by every free slot within milliseconds), and a group's wait
 * ending wakes one: an idle process makes one fetch per pollMs, not one per slot.
 */
export class Slots {
  private readonly waiting = new Map<string, number>();
  /** Groups told to wait since their last job that did not: one job of each at a time. */
  private readonly probing = new Set<string>();
  private readonly active = new Map<string, number>();
  private readonly parked: (() => void)[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private poll?: NodeJS.Timeout;
  private stopping = false;

  constructor(private readonly boss: PgBoss, private readonly o: SlotsOptions) {}

  start(): void {
    for (let i = 0; i < this.o.slots; i++) this.loops.push(this.loop());
    this.poll = setInterval(() => this.wake(), this.o.pollMs);
  }

  /** Wake one parked slot (new work is known to be there). */
  wake(): void {
    this.parked.shift()?.();
  }

  /** This group's jobs wait `ms`: fetch none of them meanwhile, and look again when it is over. */
  waitFor(group: string, ms: number): void {
    const until = Date.now() + ms;
    if (until <= (this.waiting.get(group) ?? 0)) return;
    this.waiting.set(group, until);
    this.probing.add(group);
    const t = setTimeout(() => { this.timers.delete(t); this.wake(); }, ms + 2);
    t.unref();
    this.timers.add(t);
  }

  /** Stop fetching; resolves once every slot's current job has settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.poll);
    for (const t of this.timers) clearTimeout(t);
    while (this.parked.length) this.wake();
    await Promise.all(this.loops);
  }

  private stopped(): boolean {
    return this.stopping;
  }

  private leftOut(): string[] {
    const now = Date.now();
    const out: string[] = [];
    for (const [g, until] of this.waiting) {
      if (until <= now) this.waiting.delete(g);
      else out.push(g);
    }
    // A group that had to wait sends one job to find out whether it may go on, not perGroup
    // jobs that would all be refused and handed back again.
    for (const [g, n] of this.active) if (n >= (this.probing.has(g) ? 1 : this.o.perGroup) && !out.includes(g)) out.push(g);
    return out;
  }

  private park(): Promise<void> {
    return new Promise((resolve) => this.parked.push(resolve));
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let job: Job<DeliverJob> | undefined;
      try {
        const ignoreGroups = this.leftOut();
        [job] = await this.boss.fetch<DeliverJob>(DELIVER_QUEUE, { batchSize: 1, ...(ignoreGroups.length ? { ignoreGroups } : {}) });
      } catch (err) {
        this.o.log.warn({ err }, 'fetch failed');
      }
      if (!job) {
        metrics.idleFetches.inc();
        // stop() may have come while the fetch was out: it wakes parked slots only once.
        if (!this.stopped()) await this.park();
        continue;
      }
      this.wake();
      await this.run(job);
    }
  }

  private async run(job: Job<DeliverJob>): Promise<void> {
    const group = job.groupId ?? undefined;
    if (group) this.active.set(group, (this.active.get(group) ?? 0) + 1);
    // A fetched job proves its worker alive by its heartbeat (the queue's heartbeatSeconds).
    const beat = setInterval(() => { this.boss.touch(DELIVER_QUEUE, job.id).catch((err: unknown) => this.o.log.warn({ err }, 'job heartbeat failed')); }, Math.max(1, (job.heartbeatSeconds ?? 10) / 2) * 1000);
    try {
      const out = await this.o.handler(job);
      if (group && !this.o.waited?.(out)) this.probing.delete(group);
      await this.boss.complete(DELIVER_QUEUE, job.id, out as object);
    } catch (err) {
      await this.boss.fail(DELIVER_QUEUE, job.id, { message: err instanceof Error ? err.message : String(err) }).catch((e: unknown) => this.o.log.warn({ err: e }, 'job fail failed'));
    } finally {
      clearInterval(beat);
      if (group) {
        const n = (this.active.get(group) ?? 1) - 1;
        if (n > 0) this.active.set(group, n);
        else this.active.delete(group);
      }
    }
  }
}
