import { tenantNamespaceManifest } from '../lib/tenancy/namespace.js';
import { waitFor } from './poll.js';

const BROADCAST_COUNT = 'count/broadcasts.herald.dev';

type Kubectl = (args: string[], input?: string) => Promise<string>;

/**
 * Applies each tenant's namespace manifest and waits until kube-controller-manager has
 * computed its ResourceQuota: until then the API server refuses every Broadcast there
 * ("status unknown for quota"), so a create right after the apply would fail. For a custom
 * resource that usage appears only after the quota controller's next discovery pass (every
 * 30 s), so this can take a minute after the CRD is installed.
 */
export async function applyTenantNamespaces(kubectl: Kubectl, tenants: { id: string; urgent?: boolean }[]): Promise<void> {
  await kubectl(['apply', '-f', '-'], tenants.map((t) => tenantNamespaceManifest(t.id, { urgent: t.urgent ?? false })).join('\n---\n'));
  for (const t of tenants) {
    await waitFor(`the Broadcast quota of namespace ${t.id} computed`, async () => {
      const q = JSON.parse(await kubectl(['-n', t.id, 'get', 'resourcequota', 'herald-broadcasts', '-o', 'json'])) as { status?: { used?: Record<string, string> } };
      // the API server's quota admission needs the usage of every resource it bounds
      return q.status?.used?.[BROADCAST_COUNT] !== undefined;
    }, { timeoutMs: 180_000, everyMs: 500 });
  }
}
