import type { BroadcastRecord } from '../core/delivery/broadcasts.js';
import { broadcastIdFor } from '../core/delivery/ids.js';
import type { Broadcast } from './api/v1alpha1/broadcast.js';

/** "6h", "90m", "1h30m", "45s" → seconds (the CRD admits only these forms). */
export function durationSeconds(text: string): number {
  const re = /(\d+)(h|m|s)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
    consumed += m[0].length;
  }
  if (consumed !== text.length || consumed === 0) throw new Error(`"${text}" is not a duration such as 6h or 90m`);
  return total;
}

/** The delivery core's id for a Broadcast: derived from its uid, the same in every replica. */
export const deliveryIdOf = (bc: Broadcast): string => broadcastIdFor(bc.metadata.uid);

/** The delivery core's copy of a Broadcast at its current generation. */
export function toBroadcastRecord(bc: Broadcast): BroadcastRecord {
  const s = bc.spec;
  return {
    id: deliveryIdOf(bc),
    tenantId: s.tenant,
    namespace: bc.metadata.namespace,
    name: bc.metadata.name,
    generation: bc.metadata.generation,
    channel: s.channel,
    text: s.message.text,
    title: s.message.title ?? null,
    audience: {
      ...(s.audience.segment ? { segment: { ...(s.audience.segment.tags ? { tags: s.audience.segment.tags } : {}), ...(s.audience.segment.all ? { all: true } : {}) } } : {}),
      ...(s.audience.contacts ? { contacts: s.audience.contacts } : {}),
      ...(s.audience.topic ? { topic: s.audience.topic } : {}),
    },
    priority: s.priority,
    ratePerSecond: s.delivery.ratePerSecond ?? null,
    maxAttempts: s.delivery.maxAttempts,
    expireAfterSeconds: durationSeconds(s.delivery.expireAfter),
    suspended: s.suspend,
  };
}
