import { allowsUrgent, boundTenant, TENANT_LABEL, URGENT_LABEL } from '../../lib/tenancy/namespace.js';
import type { Blocked, Reconciling } from './reconciling.js';

/** A namespace's labels as the operator's namespace informer has them; undefined when it does not know the namespace. */
export type NamespaceLabels = (namespace: string) => Record<string, string> | undefined;

/**
 * The API server already refuses a Broadcast outside its tenant's namespace
 * (operator/config/admission/broadcast-tenant.yaml); the operator checks again before
 * it plans anything, so a Broadcast admitted before the policy existed, or left in a
 * namespace that has since been relabelled, sends nothing. Deletion never gets here:
 * cancel and finalizer removal run whatever the namespace says.
 */
export function tenantBinding(r: Reconciling, labelsOf: NamespaceLabels): Blocked | undefined {
  const namespace = r.bc.metadata.namespace;
  const { tenant, priority } = r.spec;
  const labels = labelsOf(namespace);
  const bound = boundTenant(labels);
  if (!bound) {
    const message = `namespace ${namespace} is bound to no tenant (no ${TENANT_LABEL} label), so it cannot send as tenant ${tenant}; nothing is planned until a platform admin binds it`;
    return r.block({ phase: 'Pending', reason: 'NamespaceNotBound', message, retry: true }, false);
  }
  if (bound !== tenant) {
    const message = `spec.tenant ${tenant} is not the tenant of namespace ${namespace}, which is bound to tenant ${bound}; nothing is planned`;
    return r.block({ phase: 'Pending', reason: 'TenantNotBound', message, retry: true }, false);
  }
  if (priority === 'urgent' && !allowsUrgent(labels)) {
    const message = `spec.priority urgent is not allowed in namespace ${namespace}: it lacks the label ${URGENT_LABEL}: "true"; nothing is planned`;
    return r.block({ phase: 'Pending', reason: 'UrgentNotAllowed', message, retry: true }, false);
  }
  return undefined;
}
