/**
 * The Kubernetes objects each stack's mocked run registers, applied to a real local
 * kube-apiserver with `kubectl apply --server-side --dry-run=server` (strict field
 * validation): a malformed Deployment, Job, CronJob, PDB, Ingress or CRD fails here.
 * Namespaces and CRDs are applied for real first (a dry run cannot create what later
 * objects need). ESO/KEDA CRDs come from stand-ins (fixtures/third-party-crds.yaml): their
 * objects are checked for kind, scope and metadata only. Helm releases are not rendered.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../devenv/control-plane.js';
import { runKubectl } from '../devenv/kubectl.js';
import type { Manifest } from './operator-manifests.js';
import { podContainers } from './policy/policies.js';
import { renderKubernetesManifests } from './testing/mocked-run.js';

const kubectl = runKubectl;

const list = (items: unknown[]): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
const dryRun = (cp: ControlPlane, items: Manifest[]) =>
  kubectl(cp.adminKubeconfig, ['apply', '--server-side', '--field-manager=pulumi', '--dry-run=server', '--validate=strict', '-f', '-'], list(items));

describe('server-side dry run of the rendered Kubernetes objects', () => {
  let dir = '';
  let cp: ControlPlane;
  const rendered = new Map<string, Map<string, Manifest[]>>();

  beforeAll(async () => {
    for (const stack of ['staging', 'production']) rendered.set(stack, await renderKubernetesManifests(stack));
    dir = await mkdtemp(path.join(os.tmpdir(), 'herald-platform-dry-run-'));
    cp = await startControlPlane({ dir, auditLog: false });
    const setup = await kubectl(cp.adminKubeconfig, ['apply', '-f', path.join(import.meta.dirname, 'testing/fixtures/third-party-crds.yaml')]);
    expect(setup.stderr).toBe('');
    // what later objects need, for real: namespaces and our own CRDs (identical in every region)
    const firstRegion = [...rendered.get('staging')!.values()][0]!;
    const prerequisites = firstRegion.filter((m) => m.kind === 'Namespace' || m.kind === 'CustomResourceDefinition');
    const real = await kubectl(cp.adminKubeconfig, ['apply', '--server-side', '--field-manager=pulumi', '-f', '-'], list(prerequisites));
    expect(real.stderr).toBe('');
    const established = await kubectl(cp.adminKubeconfig, ['wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all']);
    expect(established.code, established.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  for (const stack of ['staging', 'production']) {
    it(`accepts every object of ${stack}, in each region's cluster`, async () => {
      const byRegion = rendered.get(stack)!;
      expect(byRegion.size).toBe(2);
      for (const [region, manifests] of byRegion) {
        const kinds = new Set(manifests.map((m) => m.kind));
        for (const kind of ['CustomResourceDefinition', 'Deployment', 'Job', 'CronJob', 'PodDisruptionBudget', 'Ingress', 'ScaledObject', 'ExternalSecret']) {
          if (kind === 'Job' && !manifests.some((m) => m.kind === 'Job')) continue; // writer region only
          expect(kinds, `${stack}/${region}`).toContain(kind);
        }
        const r = await dryRun(cp, manifests);
        expect(r.stderr, `${stack}/${region}`).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout.trim().split('\n')).toHaveLength(manifests.length);
        for (const line of r.stdout.trim().split('\n')) expect(line).toMatch(/serverside-applied \(server dry run\)$/);
      }
    });
  }

  it("creates a Pod of every pod template in its namespace, which enforces the restricted Pod Security Standard (and refuses one that is not)", async () => {
    const manifests = [...rendered.get('staging')!.values()][0]!;
    const podOf = (m: Manifest): Manifest => {
      const spec = m['spec'] as Record<string, any>;
      const template = m.kind === 'CronJob' ? spec['jobTemplate'].spec.template : spec['template'];
      return { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${m.metadata.name}-pss`.slice(0, 63), namespace: m.metadata.namespace }, spec: template.spec };
    };
    const pods = manifests.filter((m) => podContainers(`kubernetes:x:${m.kind}`, m as Record<string, unknown>)).map(podOf);
    expect(pods.map((p) => p.metadata.namespace).sort()).toEqual(expect.arrayContaining(['herald', 'herald-loadtest', 'herald-system']));
    for (const p of pods) {
      const ns = manifests.find((m) => m.kind === 'Namespace' && m.metadata.name === p.metadata.namespace)!;
      expect((ns.metadata['labels'] as Record<string, string>)['pod-security.kubernetes.io/enforce'], p.metadata.namespace).toBe('restricted');
    }
    const r = await dryRun(cp, pods);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);

    const escalating = structuredClone(pods.find((p) => p.metadata.name.startsWith('herald-api'))!) as Manifest & { spec: { containers: Record<string, any>[] } };
    escalating.spec.containers[0]!['securityContext'] = { ...escalating.spec.containers[0]!['securityContext'], allowPrivilegeEscalation: true };
    const refused = await dryRun(cp, [escalating]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/violates PodSecurity "restricted:latest": allowPrivilegeEscalation/);
  });

  it('rejects a malformed object (so the dry run really validates)', async () => {
    const manifests = [...rendered.get('staging')!.values()][0]!;
    const worker = structuredClone(manifests.find((m) => m.kind === 'Deployment' && m.metadata.name === 'herald-worker-blue')!) as Manifest & {
      spec: { template: { spec: { containers: Record<string, unknown>[] } } };
    };
    worker.spec.template.spec.containers[0]!['imagePullPolicee'] = 'Always';
    const typo = await dryRun(cp, [worker]);
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/unknown field .*imagePullPolicee/);

    const cron = structuredClone(manifests.find((m) => m.kind === 'CronJob')!) as Manifest & { spec: { schedule: string } };
    cron.spec.schedule = 'every morning';
    const bad = await dryRun(cp, [cron]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/schedule/);
  });
});
