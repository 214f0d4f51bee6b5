import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dump } from 'js-yaml';
import { ManualClock } from '../lib/clock.js';
import { tenantNamespaceObjects } from '../lib/tenancy/namespace.js';
import { broadcastIdFor } from '../core/delivery/ids.js';
import { seedContacts, seedTenant } from '../core/delivery/testing/fixtures.js';
import type { Broadcast } from './api/v1alpha1/broadcast.js';
import { startOperator, type RunningOperator } from './operator.js';
import { runKubectl as kubectl } from '../devenv/kubectl.js';
import { REPO } from '../devenv/processes.js';
import { startDelivery, startKube, testLog, waitFor, type Delivery, type Kube } from './testing/harness.js';

/**
 * A namespace sends only as its own tenant: each attack is performed against a real
 * kube-apiserver with the admission policies of operator/config/admission applied,
 * as a ServiceAccount that may edit Broadcasts and namespaces (so RBAC would let it
 * through: only the policies stand in the way), and against the operator itself.
 */
let kube: Kube;
let delivery: Delivery;
let operator: RunningOperator | undefined;
let editor: string; // kubeconfig of system:serviceaccount:grace:grace-editor
const clock = new ManualClock('2027-03-01T15:00:00Z');
const EDITOR = 'system:serviceaccount:grace:grace-editor';

const manifest = (name: string, namespace: string, spec: Record<string, unknown> = {}) =>
  dump({
    apiVersion: 'herald.dev/v1alpha1',
    kind: 'Broadcast',
    metadata: { name, namespace },
    spec: { tenant: 'grace', channel: 'sms', message: { text: 'Choir practice at 7.' }, audience: { segment: { all: true } }, ...spec },
  });
const asEditor = (args: string[], input?: string) => kubectl(editor, args, input);
const asAdmin = (args: string[], input?: string) => kube.kubectl(args, input);
const must = async (p: Promise<{ code: number; stderr: string; stdout: string }>) => {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr);
  return r;
};
const rowsOf = async (bc: Broadcast) =>
  (await delivery.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM deliveries WHERE broadcast_id = $1', [broadcastIdFor(bc.metadata.uid)])).rows[0]!.n;
const accepted = async (name: string, ns: string) => (await kube.get(name, ns))?.status?.conditions?.find((c) => c.type === 'Accepted');

function startTheOperator(): Promise<RunningOperator> {
  return startOperator({
    kubeconfig: kube.operatorKubeconfig, pool: delivery.db.pool, boss: delivery.boss, clock, log: testLog('operator'),
    leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300, resyncMs: 1_000,
    settings: { statusRefreshMs: 500, maxRequeueMs: 1_000, batchSize: 10 },
  });
}

beforeAll(async () => {
  kube = await startKube();
  delivery = await startDelivery(inject('databaseUrl'), clock);
  for (const t of ['grace', 'northfield']) await seedTenant(delivery.db.pool, t);
  await seedContacts(delivery.db.pool, 'grace', 12, { tags: ['members'] });
  await kube.bindNamespace('grace', 'grace');
  await kube.bindNamespace('northfield', 'northfield');
  await must(asAdmin(['create', 'namespace', 'lobby'])); // bound to no tenant
  // An editor RBAC lets do everything the attacks need: only the admission policies refuse them.
  await must(
    asAdmin(['apply', '-f', '-'], [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'grace-editor', namespace: 'grace' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'namespace-and-broadcast-editor' },
        rules: [
          { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'create', 'patch', 'update'] },
          { apiGroups: ['herald.dev'], resources: ['broadcasts'], verbs: ['get', 'list', 'create', 'patch', 'update', 'delete'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'namespace-and-broadcast-editor' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'namespace-and-broadcast-editor' },
        subjects: [
          { kind: 'ServiceAccount', name: 'grace-editor', namespace: 'grace' },
          { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'herald:platform-admins' },
          { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'mallory' },
        ],
      },
    ].map((o) => JSON.stringify(o)).join('\n---\n')),
  );
  editor = await kube.cp.kubeconfigForServiceAccount('grace', 'grace-editor');
  operator = await startTheOperator();
  await waitFor('leadership', async () => operator!.isLeader());
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  await delivery?.stop();
  await kube?.stop();
});

describe('the API server binds a namespace to one tenant', { timeout: 120_000 }, () => {
  it('refuses a Broadcast in a namespace bound to no tenant, naming the namespace and the tenant', async () => {
    const r = await asAdmin(['apply', '-f', '-'], manifest('sneaky', 'lobby'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/denied request: namespace lobby is bound to no tenant \(it has no herald.dev\/tenant label\), so it cannot send as tenant grace/);
    expect(await kube.get('sneaky', 'lobby')).toBeUndefined();
  });

  it("refuses a Broadcast that sends as another tenant, naming both", async () => {
    const r = await asEditor(['apply', '-f', '-'], manifest('impostor', 'grace', { tenant: 'northfield' }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/spec.tenant northfield is not the tenant of namespace grace, which is bound to tenant grace/);
    expect(await kube.get('impostor', 'grace')).toBeUndefined();
    // The same Broadcast for its own tenant is accepted: the refusal is about the tenant, not the editor.
    expect((await asEditor(['apply', '-f', '-'], manifest('own', 'grace'))).stderr).toBe('');
  });

  it('refuses priority urgent, on create and on a later change, unless a platform admin allowed it', async () => {
    const created = await asEditor(['apply', '-f', '-'], manifest('alarm', 'grace', { priority: 'urgent' }));
    expect(created.stderr).toMatch(/spec.priority urgent is not allowed in namespace grace \(tenant grace\).*herald.dev\/urgent: "true"/);
    expect((await asEditor(['apply', '-f', '-'], manifest('calm', 'grace', { dryRun: true }))).stderr).toBe('');
    const raised = await asEditor(['patch', 'broadcast', 'calm', '-n', 'grace', '--type=merge', '-p', '{"spec":{"priority":"urgent"}}']);
    expect(raised.stderr).toMatch(/spec.priority urgent is not allowed in namespace grace/);
    // A change of anything else is not the policy's business.
    expect((await asEditor(['patch', 'broadcast', 'calm', '-n', 'grace', '--type=merge', '-p', '{"spec":{"message":{"text":"edited"}}}'])).code).toBe(0);

    await must(asAdmin(['label', 'namespace', 'grace', 'herald.dev/urgent=true']));
    expect((await asEditor(['patch', 'broadcast', 'calm', '-n', 'grace', '--type=merge', '-p', '{"spec":{"priority":"urgent"}}'])).stderr).toBe('');
    await must(asAdmin(['label', 'namespace', 'grace', 'herald.dev/urgent-']));
  });

  it('lets only a platform admin bind a namespace, rebind it, unbind it or allow urgent', async () => {
    const attempts: [string[], RegExp][] = [
      [['label', 'namespace', 'grace', 'herald.dev/tenant=northfield', '--overwrite'], /herald.dev\/tenant on namespace grace/],
      [['label', 'namespace', 'grace', 'herald.dev/tenant-'], /herald.dev\/tenant on namespace grace/],
      [['label', 'namespace', 'grace', 'herald.dev/urgent=true'], /herald.dev\/urgent on namespace grace/],
      [['label', 'namespace', 'lobby', 'herald.dev/tenant=northfield'], /herald.dev\/tenant on namespace lobby/],
    ];
    for (const [args, label] of attempts) {
      const r = await asEditor(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(/only a platform admin \(group herald:platform-admins\) may set, change or remove the label/);
      expect(r.stderr).toMatch(label);
      expect(r.stderr).toContain(`${EDITOR} is not one`);
    }
    // A new namespace bound to someone else's tenant is the same attack.
    const created = await asEditor(['apply', '-f', '-'], dump({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'annexed', labels: { 'herald.dev/tenant': 'northfield' } } }));
    expect(created.stderr).toMatch(/may set, change or remove the label herald.dev\/tenant on namespace annexed/);
    expect((await asAdmin(['get', 'namespace', 'annexed'])).code).not.toBe(0);
    // Other labels stay the editor's to change; a user of the platform-admins group may bind.
    expect((await asEditor(['label', 'namespace', 'grace', 'team=choir'])).code).toBe(0);
    expect((await asAdmin(['label', 'namespace', 'lobby', 'herald.dev/tenant=northfield', '--as=mallory'])).stderr).toMatch(/mallory is not one/);
    expect((await asAdmin(['label', 'namespace', 'lobby', 'herald.dev/tenant=northfield', '--as=alice', '--as-group=herald:platform-admins'])).code).toBe(0);
    await must(asAdmin(['label', 'namespace', 'lobby', 'herald.dev/tenant-']));
    const labels = JSON.parse((await asAdmin(['get', 'namespace', 'grace', '-o', 'json'])).stdout).metadata.labels;
    expect(labels).toMatchObject({ 'herald.dev/tenant': 'grace', team: 'choir' });
    expect(labels['herald.dev/urgent']).toBeUndefined();
  });

  it('the load-test ServiceAccount creates Broadcasts for the synthetic tenant only', async () => {
    await must(asAdmin(['apply', '-f', path.join(REPO, 'loadtests/k8s/loadtest-rbac.yaml')]));
    const k6 = await kube.cp.kubeconfigForServiceAccount('herald-loadtest', 'herald-loadtest');
    const other = await kubectl(k6, ['apply', '-f', '-'], manifest('cap', 'herald-loadtest', { tenant: 'grace' }));
    expect(other.stderr).toMatch(/spec.tenant grace is not the tenant of namespace herald-loadtest, which is bound to tenant k6-synthetic/);
    const urgent = await kubectl(k6, ['create', '-f', '-'], manifest('cap', 'herald-loadtest', { tenant: 'k6-synthetic', priority: 'urgent' }));
    expect(urgent.stderr).toMatch(/spec.priority urgent is not allowed in namespace herald-loadtest/);
    expect((await kubectl(k6, ['create', '-f', '-'], manifest('cap', 'grace'))).stderr).toMatch(/forbidden/i);
    expect((await kubectl(k6, ['create', '-f', '-'], manifest('cap', 'herald-loadtest', { tenant: 'k6-synthetic' }))).stderr).toBe('');
  });
});

describe('the operator plans only in a bound namespace, and always finalizes', { timeout: 180_000 }, () => {
  it('plans nothing for a Broadcast whose namespace lost its binding, and plans once it is bound again', async () => {
    await kube.bindNamespace('annex', 'grace');
    await operator!.stop();
    operator = undefined;
    // Admitted while the namespace was bound; the binding removed before the operator saw it.
    const bc = await kube.create({
      apiVersion: 'herald.dev/v1alpha1', kind: 'Broadcast', metadata: { name: 'left-behind', namespace: 'annex' },
      spec: { tenant: 'grace', channel: 'sms', message: { text: 'Hello' }, audience: { segment: { all: true } } },
    });
    await must(asAdmin(['label', 'namespace', 'annex', 'herald.dev/tenant-']));
    operator = await startTheOperator();
    await waitFor('leadership', async () => operator!.isLeader());
    const refused = await waitFor('Accepted=False', async () => {
      const c = await accepted('left-behind', 'annex');
      return c?.status === 'False' ? c : undefined;
    });
    expect(refused).toMatchObject({ reason: 'NamespaceNotBound' });
    expect(refused.message).toMatch(/namespace annex is bound to no tenant .* cannot send as tenant grace/);
    expect((await kube.get('left-behind', 'annex'))?.status).toMatchObject({ phase: 'Pending' });
    expect(await rowsOf(bc)).toBe(0);

    // Bound to another tenant: still nothing.
    await must(asAdmin(['label', 'namespace', 'annex', 'herald.dev/tenant=northfield']));
    await waitFor('TenantNotBound', async () => (await accepted('left-behind', 'annex'))?.reason === 'TenantNotBound');
    expect(await rowsOf(bc)).toBe(0);

    // Bound to its own tenant again: the namespace change alone brings it back, and it plans.
    await must(asAdmin(['label', 'namespace', 'annex', 'herald.dev/tenant=grace', '--overwrite']));
    await waitFor('planned', async () => (await rowsOf(bc)) === 12);
  });

  it('a Broadcast in a relabelled namespace can still be edited and deleted: the operator cancels and removes its finalizer', async () => {
    await kube.bindNamespace('chapel', 'grace');
    await kube.create({
      apiVersion: 'herald.dev/v1alpha1', kind: 'Broadcast', metadata: { name: 'stranded', namespace: 'chapel' },
      spec: { tenant: 'grace', channel: 'sms', message: { text: 'Next month' }, audience: { segment: { all: true } }, schedule: { sendAt: '2027-04-01T15:00:00Z' } },
    });
    await waitFor('finalizer', async () => (await kube.get('stranded', 'chapel'))?.metadata.finalizers?.includes('herald.dev/cancel-deliveries'));
    await must(asAdmin(['label', 'namespace', 'chapel', 'herald.dev/tenant=northfield', '--overwrite']));
    await waitFor('TenantNotBound', async () => (await accepted('stranded', 'chapel'))?.reason === 'TenantNotBound');
    // Edits that change neither tenant nor priority pass; deletion waits for the finalizer only.
    expect((await asAdmin(['patch', 'broadcast', 'stranded', '-n', 'chapel', '--type=merge', '-p', '{"spec":{"suspend":true}}'])).code).toBe(0);
    expect((await asAdmin(['delete', 'broadcast', 'stranded', '-n', 'chapel', '--wait=true', '--timeout=60s'])).code).toBe(0);
    expect(await kube.get('stranded', 'chapel')).toBeUndefined();
  });
});

describe('a ResourceQuota bounds the Broadcasts of a tenant namespace', { timeout: 120_000 }, () => {
  it('refuses the Broadcast past the quota, as the API server quota admission does on CREATE', async () => {
    const [ns, quota] = tenantNamespaceObjects('grace', { name: 'quota-test', broadcastQuota: 2 });
    await must(asAdmin(['apply', '-f', '-'], `${JSON.stringify(ns)}\n---\n${JSON.stringify(quota)}`));
    // Stand-in for kube-controller-manager's quota controller (not in the local control plane
    // yet): it fills status.hard and status.used; until then quota admission ignores a quota.
    await kube.admin.request('PUT', '/api/v1/namespaces/quota-test/resourcequotas/herald-broadcasts/status', {
      body: {
        ...(await kube.admin.request<Record<string, unknown>>('GET', '/api/v1/namespaces/quota-test/resourcequotas/herald-broadcasts')),
        status: { hard: { 'count/broadcasts.herald.dev': '2' }, used: { 'count/broadcasts.herald.dev': '0' } },
      },
    });
    for (const name of ['one', 'two']) expect((await asAdmin(['create', '-f', '-'], manifest(name, 'quota-test', { dryRun: true }))).stderr).toBe('');
    const third = await asAdmin(['create', '-f', '-'], manifest('three', 'quota-test', { dryRun: true }));
    expect(third.stderr).toMatch(/exceeded quota: herald-broadcasts, requested: count\/broadcasts.herald.dev=1, used: count\/broadcasts.herald.dev=2, limited: count\/broadcasts.herald.dev=2/);
  });
});
