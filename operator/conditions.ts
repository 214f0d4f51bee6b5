import type { BroadcastStatus, Condition, ConditionType } from './api/v1alpha1/broadcast.js';

/** The conditions a Broadcast reports, always in this order. */
export const CONDITION_TYPES: readonly ConditionType[] = ['Accepted', 'Scheduled', 'Progressing', 'Complete', 'Degraded'];

/** RFC 3339 at second precision, as Kubernetes writes metav1.Time. */
export const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A metav1.Condition whose type is one of a resource's own (Broadcast's, Release's). */
export type GenericCondition<T extends string> = Omit<Condition, 'type'> & { type: T };

/**
 * The one way a condition is set (metav1.Condition semantics): lastTransitionTime
 * moves only when `status` flips; reason and message are always replaced; the
 * observedGeneration says which spec the condition speaks about.
 */
export function setCondition<T extends string = ConditionType>(
  status: { conditions?: GenericCondition<T>[] },
  type: T,
  value: ConditionStatus,
  reason: string,
  message: string,
  at: { generation: number; now: Date },
  order: readonly T[] = CONDITION_TYPES as readonly string[] as readonly T[],
): void {
  const conditions = status.conditions ?? [];
  const old = conditions.find((c) => c.type === type);
  const next: GenericCondition<T> = {
    type,
    status: value,
    observedGeneration: at.generation,
    lastTransitionTime: old && old.status === value ? old.lastTransitionTime : rfc3339(at.now),
    reason,
    message: message.slice(0, 32_000),
  };
  status.conditions = order.flatMap((t) => {
    if (t === type) return [next];
    const c = conditions.find((x) => x.type === t);
    return c ? [c] : [];
  });
}

export function getCondition(status: BroadcastStatus | undefined, type: ConditionType): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

export function isTrue(status: BroadcastStatus | undefined, type: ConditionType): boolean {
  return getCondition(status, type)?.status === 'True';
}
