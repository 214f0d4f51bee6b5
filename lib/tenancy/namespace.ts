/**
 * A tenant's Kubernetes namespace: where its Broadcasts live. The label binds the
 * namespace to the tenant; the API server's admission policies
 * (operator/config/admission/) refuse a Broadcast of another tenant there, refuse
 * priority urgent unless URGENT_LABEL is "true", and let only platform admins set
 * either label. The ResourceQuota bounds how many Broadcasts (and so how much of the
 * operator's cache and work) one tenant can create.
 */
import { dump } from 'js-yaml';

export const TENANT_LABEL = 'herald.dev/tenant';
export const URGENT_LABEL = 'herald.dev/urgent';
/** The group whose members may bind namespaces (besides system:masters). */
export const PLATFORM_ADMIN_GROUP = 'herald:platform-admins';
export const BROADCAST_QUOTA_RESOURCE = 'count/broadcasts.herald.dev';
/** Broadcasts one tenant namespace may hold at once (done ones included, until deleted). */
export const DEFAULT_BROADCAST_QUOTA = 500;

export interface TenantNamespaceOptions {
  /** Namespace name; the tenant id by default (tenant ids are DNS labels). */
  name?: string;
  /** May send priority urgent (skips quiet hours). */
  urgent?: boolean;
  broadcastQuota?: number;
}

/** The tenant a namespace is bound to, from its labels; undefined when unbound. */
export const boundTenant = (labels: Record<string, string> | undefined): string | undefined => labels?.[TENANT_LABEL] || undefined;
export const allowsUrgent = (labels: Record<string, string> | undefined): boolean => labels?.[URGENT_LABEL] === 'true';

export function tenantNamespaceObjects(tenantId: string, o: TenantNamespaceOptions = {}) {
  const name = o.name ?? tenantId;
  const labels: Record<string, string> = {
    [TENANT_LABEL]: tenantId,
    // A tenant namespace holds Broadcasts, never pods: the strictest profile costs nothing.
    'pod-security.kubernetes.io/enforce': 'restricted',
    'app.kubernetes.io/part-of': 'herald',
  };
  if (o.urgent) labels[URGENT_LABEL] = 'true';
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } },
    {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'herald-broadcasts', namespace: name, labels: { 'app.kubernetes.io/part-of': 'herald' } },
      spec: { hard: { [BROADCAST_QUOTA_RESOURCE]: String(o.broadcastQuota ?? DEFAULT_BROADCAST_QUOTA) } },
    },
  ];
}

/** The manifest a platform admin applies (`kubectl apply -f -`) to give a tenant its namespace. */
export function tenantNamespaceManifest(tenantId: string, o: TenantNamespaceOptions = {}): string {
  const header = `# Namespace of tenant ${tenantId}: apply as a platform admin (group ${PLATFORM_ADMIN_GROUP});\n# Broadcasts created here send as ${tenantId} only.\n`;
  // One document (a List, as kubectl get -o yaml prints): YAML readers that expect one document read it too.
  return header + dump({ apiVersion: 'v1', kind: 'List', items: tenantNamespaceObjects(tenantId, o) }, { lineWidth: -1, noRefs: true });
}
