import type { Logger } from '../lib/logger.js';
import { Semaphore } from '../lib/semaphore.js';
import { metrics } from '../lib/metrics.js';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import type { KubeClient } from './kube-client.js';
import { microTime } from './leader-election.js';

export const REPORTING_CONTROLLER = 'herald.dev/broadcast-operator';

export interface BroadcastEvent {
  type: 'Normal' | 'Warning';
  /** CamelCase, what happened: Planned, Completed, UnknownTenant … */
  reason: string;
  /** What the operator did or could not do: Plan, Send, Cancel, Accept … */
  action: string;
  /** A sentence for a person (at most 1 kB). */
  note: string;
}

/**
 * Writes events.k8s.io/v1 Events about Broadcasts (`kubectl describe bc` and
 * `kubectl get events` show them). The same event for the same object is written
 * at most once per `dedupeMs`, so a problem retried with backoff does not flood
 * etcd. A failed write is logged, never fatal: events are advisory.
 */
export class EventRecorder {
  private readonly recent = new Map<string, number>();
  private sequence = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly identity: string,
    private readonly log?: Logger,
    private readonly dedupeMs = 10 * 60_000,
    /** While this says so (new Broadcasts wait to be planned), events wait: they are advisory. */
    private readonly holdWhile: () => boolean = () => false,
    /** …but no longer than this, or a burst that goes on would keep every event back while it lasts. */
    private readonly maxHoldMs = 10_000,
  ) {
    this.suffix = Buffer.from(identity).reduce((h, c) => (h * 31 + c) >>> 0, 7).toString(16).slice(0, 4);
  }

  private readonly suffix: string;

  private background = new Set<Promise<void>>();
  // Events are advisory: a burst of them (1,000 Broadcasts planned at once) must not
  // take the API connections and server time that finalizers and status need.
  private readonly writing = new Semaphore(2);

  /** Record these in order without waiting; `drain` waits for what is in flight. */
  recordAll(bc: Broadcast, events: BroadcastEvent[]): void {
    const p = (async () => {
      const since = Date.now();
      await this.writing.acquire();
      try {
        while (this.holdWhile() && Date.now() - since < this.maxHoldMs) await new Promise((r) => setTimeout(r, 100));
        for (const e of events) await this.record(bc, e);
      } finally {
        this.writing.release();
      }
    })();
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.background]);
  }

  async record(bc: Broadcast, e: BroadcastEvent): Promise<void> {
    const key = `${bc.metadata.uid}/${e.reason}/${e.note}`;
    const now = Date.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < this.dedupeMs) return;
    this.recent.set(key, now);
    if (this.recent.size > 10_000) {
      for (const [k, t] of this.recent) if (now - t >= this.dedupeMs) this.recent.delete(k);
    }
    const ns = bc.metadata.namespace;
    try {
      await this.client.request('POST', `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/events`, {
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          // <object>.<hex>, as client-go's recorder names events (unique per replica and instant).
          metadata: { name: `${bc.metadata.name.slice(0, 200)}.${(now * 1000 + (this.sequence++ % 1000)).toString(16)}${this.suffix}`, namespace: ns },
          eventTime: microTime(new Date(now)),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.identity.slice(0, 128),
          action: e.action,
          reason: e.reason,
          note: e.note.slice(0, 1000),
          type: e.type,
          regarding: {
            apiVersion: bc.apiVersion,
            kind: bc.kind,
            namespace: ns,
            name: bc.metadata.name,
            uid: bc.metadata.uid,
            resourceVersion: bc.metadata.resourceVersion,
          },
        },
      });
      metrics.operatorEvents.inc({ type: e.type, reason: e.reason });
    } catch (err) {
      this.recent.delete(key);
      this.log?.warn({ err, reason: e.reason, broadcast: `${ns}/${bc.metadata.name}` }, 'could not record event');
    }
  }
}
