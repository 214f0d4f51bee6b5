/**
 * Herald's API in a control plane: the Broadcast and Release CRDs, the operator's RBAC and the admission policies, applied from
 * operator/config as a cluster would get them, and the operator's ServiceAccount.
 */
import path from 'node:path';
import { mustKubectl, runKubectl } from './kubectl.js';
import { waitFor } from './poll.js';
import { REPO } from './processes.js';

export const OPERATOR_SA = { namespace: 'herald-system', name: 'herald-operator' } as const;

/** Apply the operator's namespace, the Broadcast and Release CRDs, the RBAC and the admission policies; return once both kinds are served. */
export async function installHeraldApi(adminKubeconfig: string): Promise<void> {
  const must = (args: string[], input?: string) => mustKubectl(adminKubeconfig, args, input);
  await must(['apply', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${OPERATOR_SA.namespace}\n`);
  await must(['apply', '-f', path.join(REPO, 'operator/config/crd/broadcasts.herald.dev.yaml')]);
  await must(['apply', '-f', path.join(REPO, 'operator/config/crd/releases.herald.dev.yaml')]);
  await must(['apply', '-f', path.join(REPO, 'operator/config/rbac')]);
  // A namespace sends only as its own tenant; only platform admins bind namespaces.
  await must(['apply', '-f', path.join(REPO, 'operator/config/admission')]);
  await must(['wait', '--for=condition=Established', '--timeout=60s', 'crd/broadcasts.herald.dev', 'crd/releases.herald.dev']);
  // Established is not served yet: the new resource's storage answers 429 for a moment.
  for (const resource of ['broadcasts', 'releases']) {
    await waitFor(`${resource} storage`, async () => (await runKubectl(adminKubeconfig, ['get', resource, '-A', '--request-timeout=5s'])).code === 0, {
      timeoutMs: 60_000,
    });
  }
}
