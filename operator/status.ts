import type { Logger } from '../lib/logger.js';
import { metrics } from '../lib/metrics.js';
import type { Broadcast, BroadcastStatus } from './api/v1alpha1/broadcast.js';
import type { BroadcastApi } from './broadcast-api.js';
import { isConflict } from './kube-client.js';

/** JSON with object keys sorted, so two statuses compare by content. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

export const sameStatus = (a: BroadcastStatus | undefined, b: BroadcastStatus | undefined): boolean => canonicalJson(a ?? {}) === canonicalJson(b ?? {});

/**
 * Write `status` through the status subresource. On a conflict (the object changed
 * since it was read) take the newer copy from the informer's cache and apply the
 * same status to it, a few times; stop if this replica is no longer the leader or the
 * object is gone.
 * Returns the stored object, or undefined when nothing was written.
 */
export async function writeStatus(
  api: BroadcastApi,
  bc: Broadcast,
  status: BroadcastStatus,
  o: { stillLeading: () => boolean; log: Logger; attempts?: number },
): Promise<Broadcast | undefined> {
  let target = bc;
  for (let attempt = 1; ; attempt++) {
    try {
      const stored = await api.replaceStatus({ ...target, status });
      metrics.operatorStatusWrites.inc({ result: 'written' });
      return stored;
    } catch (err) {
      if (!isConflict(err) || attempt >= (o.attempts ?? 5)) throw err;
      metrics.operatorStatusWrites.inc({ result: 'conflict' });
      if (!o.stillLeading()) return undefined;
      const fresh = await api.newerThan(target);
      if (!fresh) {
        if (!api.get(bc.metadata.namespace, bc.metadata.name)) return undefined; // gone
        throw err; // the watch has not brought the change yet: the reconcile runs again
      }
      if (fresh.metadata.uid !== bc.metadata.uid) return undefined;
      o.log.debug({ attempt, resourceVersion: fresh.metadata.resourceVersion }, 'status conflict: re-read, re-applying');
      target = fresh;
    }
  }
}
