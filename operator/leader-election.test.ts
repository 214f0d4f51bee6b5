import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from './kube-client.js';
import { LeaderElector } from './leader-election.js';
import { handOver, leaseHolder, recordLease, startKube, waitFor, type Kube } from './testing/harness.js';

let kube: Kube;
let client: KubeClient;
const electors: LeaderElector[] = [];

beforeAll(async () => {
  kube = await startKube();
  client = KubeClient.fromFile(kube.operatorKubeconfig);
}, 120_000);
afterAll(async () => {
  for (const e of electors) await e.stop().catch(() => {});
  client?.close();
  await kube?.stop();
});

function elector(identity: string, transitions: string[], leaseDurationMs = 3_000): LeaderElector {
  const e = new LeaderElector({
    client, namespace: 'herald-system', name: 'herald-operator', identity,
    leaseDurationMs, renewDeadlineMs: leaseDurationMs - 1_000, retryPeriodMs: 300,
    onStartedLeading: () => transitions.push(`${identity} leads`),
    onStoppedLeading: () => transitions.push(`${identity} stops`),
  });
  electors.push(e);
  return e;
}

describe('LeaderElector on a coordination.k8s.io/v1 Lease', { timeout: 180_000 }, () => {
  it('of two candidates exactly one leads; release hands over at once; a silent leader is replaced after the lease duration', async () => {
    const log: string[] = [];
    // A lease long enough that "before it ran out" means the release did it, not expiry.
    const a = elector('replica-a', log, 6_000);
    const b = elector('replica-b', log, 6_000);
    a.start();
    b.start();
    const first = await waitFor('a leader', async () => (a.isLeader() ? a : b.isLeader() ? b : undefined));
    const second = first === a ? b : a;
    expect(await leaseHolder(kube)).toBe(first.identity);
    // Over several renewals, never both.
    for (let i = 0; i < 10; i++) {
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 150));
    }

    const history = await recordLease(kube);
    await first.stop({ release: true });
    await waitFor('the standby to lead', async () => second.isLeader());
    expect(await leaseHolder(kube)).toBe(second.identity);
    // At once: the standby acquired before the old holder's last renewal would have run out.
    const released = handOver(history.records, first.identity, second.identity);
    expect(released.released).toBe(true);
    expect(released.acquired.getTime()).toBeLessThan(released.deadline.getTime());

    // The new leader goes silent without releasing (a crash): a third candidate waits
    // out the lease duration as it observes it, then takes over.
    const c = elector('replica-c', log);
    c.start();
    await new Promise((r) => setTimeout(r, 500));
    expect(c.isLeader()).toBe(false);
    await second.stop(); // no release
    await waitFor('c to take over', async () => c.isLeader(), { timeoutMs: 20_000 });
    expect(await leaseHolder(kube)).toBe('replica-c');
    // Without a release, c waited out the lease (less the read it acquired on, hence the slack).
    const crashed = handOver(history.records, second.identity, 'replica-c');
    await history.stop();
    expect(crashed.released).toBe(false);
    expect(crashed.acquired.getTime()).toBeGreaterThan(crashed.deadline.getTime() - 1_000);
    expect(log.filter((l) => l.endsWith('leads'))).toEqual([`${first.identity} leads`, `${second.identity} leads`, 'replica-c leads']);

    const lease = await kube.admin.request<{ spec: { leaseTransitions: number } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/herald-system/leases/herald-operator');
    expect(lease.spec.leaseTransitions).toBe(2);
  });

  it('a leader whose Lease was taken steps down, and does not take back a Lease another holder keeps fresh', async () => {
    for (const e of electors) await e.stop();
    const log: string[] = [];
    const d = elector('replica-d', log);
    d.start();
    await waitFor('d to lead', async () => d.isLeader(), { timeoutMs: 20_000 });
    const path = '/apis/coordination.k8s.io/v1/namespaces/herald-system/leases/herald-operator';
    const lease = await kube.admin.request<{ metadata: object; spec: object }>('GET', path);
    const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    await kube.admin.request('PUT', path, { body: { ...lease, spec: { ...lease.spec, holderIdentity: 'someone-else', renewTime: now, leaseDurationSeconds: 60 } } });
    await waitFor('d to step down', async () => !d.isLeader());
    await new Promise((r) => setTimeout(r, 1_500));
    expect(d.isLeader()).toBe(false);
    expect(await leaseHolder(kube)).toBe('someone-else');
    expect(log).toEqual(['replica-d leads', 'replica-d stops']);
  });
});
