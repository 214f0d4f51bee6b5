/**
 * The node on this machine, and Herald on it. The node: Ready, its kubelet refusing
 * anonymous callers and serving the API server (kubectl logs), pods reaching Services by
 * name (CoreDNS + kube-proxy). Herald: the Pulumi program's objects made local
 * (devenv/node/herald.ts) with images built here; every pod Ready under its restricted
 * securityContext, Broadcasts delivered by the worker pods through the simulator pod,
 * failover of workers and of the operator's Lease, a rollout to a second image tag. Last,
 * a stop that leaves the host as it found it. One file: one node per machine at a time.
 * A machine where the node cannot start (no root, no runtime) fails here with the
 * reason, not a skip.
 */
import https from 'node:https';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../lib/db/postgres.js';
import { applyTenantNamespaces } from '../tenant-namespaces.js';
import { waitFor } from '../poll.js';
import { smsNumberOk } from '../../services/simulator/behaviours.js';
import { seedDemo, type DemoTenant } from '../seed-demo.js';
import { startCluster, type Cluster } from './cluster.js';
import { deployHerald, waitRolledOut, type HeraldOnNode } from './herald.js';
import { buildHeraldImages } from './herald-images.js';
import { hostDifferences, snapshotHost } from './host.js';
import { nodeBaseLayer } from './images.js';
import { KUBELET_PORT, NODE_NAME, nodeUnavailable } from './node.js';
import { writeIndex } from './oci.js';
import { BRIDGE, BRIDGE_ADDRESS, IMAGE_PREFIX } from './runtime.js';

const dir = path.join(process.cwd(), '.herald', 'test-node');
const repo = process.cwd();
let cluster: Cluster | undefined;
let herald: HeraldOnNode | undefined;
let stopped = false;

beforeAll(async () => {
  const why = await nodeUnavailable();
  if (why) throw new Error(`the Kubernetes node cannot start on this machine: ${why}`);
  await rm(dir, { recursive: true, force: true });
  // helpers' test runs on one machine take turns with the node (one per machine)
  cluster = await startCluster({ dir, lockWaitMs: 20 * 60_000, onStep: (l) => l.startsWith('waiting') && console.log(l) });
}, 25 * 60_000);

afterAll(async () => {
  if (cluster && !stopped) await cluster.stop();
  await herald?.stop();
}, 180_000);

function need(): Cluster {
  if (!cluster) throw new Error('the cluster did not start (see beforeAll)');
  return cluster;
}

function kubeletGet(p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: BRIDGE_ADDRESS, port: KUBELET_PORT, path: p, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

describe('a kubelet node on this machine', () => {
  it('is Ready, and its kubelet refuses anonymous requests while serving the API server', async () => {
    const c = need();
    expect((await c.node.kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).trim()).toBe('True');
    expect(await kubeletGet('/pods')).toBe(401);
    // kubectl logs goes API server -> kubelet with the API server's client certificate
    const pod = (await c.node.kubectl(['-n', 'kube-system', 'get', 'pods', '-l', 'k8s-app=kube-dns', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    const logs = await c.node.kubectl(['-n', 'kube-system', 'logs', pod]);
    expect(logs).toMatch(/CoreDNS-/);
  });

  it('runs a restricted pod that reaches the API server through a ClusterIP found by name', async () => {
    const c = need();
    const layout = path.join(dir, 'images', 'probe');
    const work = path.join(dir, 'images', 'probe-work');
    await mkdir(work, { recursive: true });
    const base = await nodeBaseLayer(layout, work, path.join(process.cwd(), 'node_modules', 'node', 'bin', 'node'));
    const image = `${IMAGE_PREFIX}node-probe:1`;
    await writeIndex(layout, [{ name: image, layers: [base], config: { user: '1000:1000', entrypoint: ['/usr/local/bin/node'] } }]);
    await c.node.importImages(layout);
    // Any HTTP answer means DNS resolved the Service and kube-proxy routed its ClusterIP (401: no credentials).
    const script = `require('node:dns').lookup('kubernetes.default.svc.cluster.local', (e, a) => { if (e) { console.log('dns', e.code); process.exit(2); }
      require('node:https').get({ host: a, port: 443, path: '/version', rejectUnauthorized: false }, (r) => { console.log('answer', a, r.statusCode); process.exit(0); })
        .on('error', (err) => { console.log('connect', err.code); process.exit(3); }); });`;
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: 'default' },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'probe',
            image,
            imagePullPolicy: 'Never',
            args: ['-e', script],
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          },
        ],
      },
    };
    await c.node.kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
    await c.node.kubectl(['wait', '--for=jsonpath={.status.phase}=Succeeded', 'pod/probe', '--timeout=90s']).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await c.node.kubectl(['logs', 'probe']).catch(() => '')}\n${await c.node.kubectl(['describe', 'pod', 'probe'])}`);
    });
    expect(await c.node.kubectl(['logs', 'probe'])).toMatch(/^answer 10\.0\.0\.1 401/m);
  }, 180_000);

});

interface Pod {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { containers: { name: string; image: string; securityContext?: Record<string, any> }[]; securityContext?: Record<string, any> };
  status: { phase: string; conditions?: { type: string; status: string }[]; containerStatuses?: { ready: boolean; restartCount: number; image: string }[] };
}

async function pods(c: Cluster, namespace: string, selector?: string): Promise<Pod[]> {
  const out = await c.node.kubectl(['-n', namespace, 'get', 'pods', ...(selector ? ['-l', selector] : []), '-o', 'json']);
  return (JSON.parse(out) as { items: Pod[] }).items;
}

const ready = (p: Pod) => p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') === true && !p.metadata.deletionTimestamp;

/** Polls once a second (the node's pace) until f answers. */
const until = <T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> => waitFor(what, f, { timeoutMs, everyMs: 1000 });

async function serviceUrl(c: Cluster, name: string): Promise<string> {
  return `http://${(await c.node.kubectl(['-n', 'herald', 'get', 'service', name, '-o', 'jsonpath={.spec.clusterIP}'])).trim()}`;
}

interface Received {
  sms: { accepted: number; perRecipient?: Record<string, number> };
}
async function received(c: Cluster): Promise<Received> {
  return (await (await fetch(`${await serviceUrl(c, 'herald-provider-simulator')}/_sim/received?recipients=1`)).json()) as Received;
}

interface BroadcastStatus {
  phase?: string;
  counts?: { sent?: number; delivered?: number; failed?: number; skipped?: number };
}
async function broadcastStatus(c: Cluster, namespace: string, name: string): Promise<BroadcastStatus> {
  return (JSON.parse(await c.node.kubectl(['-n', namespace, 'get', 'broadcast', name, '-o', 'json'])) as { status?: BroadcastStatus }).status ?? {};
}

describe('Herald on the node', () => {
  beforeAll(async () => {
    herald = await deployHerald(need(), { dir: path.join(dir, 'herald'), repo });
  }, 900_000);

  it('runs every pod Ready as uid 1000 on a read-only root filesystem with no capabilities', async () => {
    const c = need();
    const all = [...(await pods(c, 'herald')), ...(await pods(c, 'herald-system'))].filter((p) => p.status.phase !== 'Succeeded');
    const components = new Set(all.map((p) => p.metadata.labels?.['app.kubernetes.io/component']));
    for (const want of ['api', 'worker', 'operator', 'provider-simulator']) expect(components).toContain(want);
    for (const p of all) {
      expect(ready(p), `${p.metadata.name} Ready`).toBe(true);
      for (const ct of p.spec.containers) {
        expect(ct.securityContext, p.metadata.name).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
        expect(ct.image).toMatch(/^local\/herald\//);
      }
      // what the process really is: its uid, its capabilities, and / refusing a write
      const probe = `const fs=require('fs');let w='written';try{fs.writeFileSync('/probe','x')}catch(e){w=e.code}
        const cap=fs.readFileSync('/proc/self/status','utf8').match(/CapEff:\\s*(\\w+)/)[1];console.log(process.getuid(),cap,w)`;
      const out = await c.node.kubectl(['-n', p.metadata.namespace, 'exec', p.metadata.name, '--', 'node', '-e', probe]);
      expect(out.trim(), p.metadata.name).toBe('1000 0000000000000000 EROFS');
    }
  }, 120_000);

  it('delivers a Broadcast applied with kubectl through the worker pods and the simulator pod; receipts reach the api pod', async () => {
    const c = need();
    const before = (await received(c)).sms.accepted;
    await c.node.kubectl(['apply', '-f', path.join(repo, 'examples', 'sms-send-now.yaml')]);
    // the demo's 24 members, one opted out; delivered counts come from the simulator's receipts via the api's webhook
    const st = await until('sunday-reminder delivered', async () => {
      const s = await broadcastStatus(c, 'grace-church', 'sunday-reminder');
      return s.phase === 'Completed' && s.counts?.delivered === 23 ? s : undefined;
    }, 180_000);
    expect(st.counts).toMatchObject({ sent: 23, delivered: 23, skipped: 1, failed: 0 });
    expect((await received(c)).sms.accepted - before).toBe(23);
  }, 240_000);

  it('replaces a worker pod deleted mid-send; no recipient is lost or sent twice', async () => {
    const c = need();
    const pool = createPool(herald!.hostDatabaseUrl, 2, 'node-test');
    const n = 1500;
    const tenant: DemoTenant = {
      id: 'node-failover',
      name: 'Node failover',
      defaultTimeZone: 'America/Chicago',
      smsPerSecond: 100,
      pushPerSecond: 100,
      sendingNumber: { phone: '+18885550177', kind: 'toll_free', perSecond: 100 },
      contacts: Array.from({ length: n }, (_, i) => ({ phone: smsNumberOk(500_000 + i), name: `Bulk ${i}`, timeZone: null, tags: ['bulk'] })),
    };
    try {
      await seedDemo(pool, [tenant]);
    } finally {
      await pool.end();
    }
    const phones = new Set(tenant.contacts.map((x) => x.phone));
    const countOurs = async () => {
      const per = (await received(c)).sms.perRecipient ?? {};
      return Object.entries(per).filter(([k]) => phones.has(k));
    };
    await applyTenantNamespaces(c.node.kubectl, [{ id: tenant.id }]);
    const broadcast = { apiVersion: 'herald.dev/v1alpha1', kind: 'Broadcast', metadata: { name: 'node-failover', namespace: tenant.id },
      spec: { tenant: tenant.id, channel: 'sms', message: { text: 'Failover on a real node' }, audience: { segment: { tags: ['bulk'] } } } };
    await c.node.kubectl(['apply', '-f', '-'], JSON.stringify(broadcast));
    await until('the send under way', async () => (await countOurs()).length >= n * 0.1, 180_000);
    const victims = (await pods(c, 'herald', 'app.kubernetes.io/component=worker')).map((p) => p.metadata.name);
    await c.node.kubectl(['-n', 'herald', 'delete', 'pod', '--wait=false', ...victims]);
    const sentAtDelete = (await countOurs()).length;
    expect(sentAtDelete).toBeLessThan(n);
    // replaced: new pods, Ready
    await until('replacement workers Ready', async () => {
      const now = (await pods(c, 'herald', 'app.kubernetes.io/component=worker')).filter(ready);
      return now.length >= victims.length && now.every((p) => !victims.includes(p.metadata.name));
    }, 180_000);
    const st = await until('node-failover Completed', async () => {
      const s = await broadcastStatus(c, tenant.id, 'node-failover');
      return s.phase === 'Completed' ? s : undefined;
    }, 300_000);
    const ours = await countOurs();
    // nothing lost: every recipient reached the simulator
    expect(ours.length).toBe(n);
    expect(st.counts?.sent).toBe(n);
    // A graceful delete drains: what a worker claimed it sends before it exits, and what it
    // has not claimed another takes, so nobody gets the text twice; and any recipient who
    // did would have to be counted (possibleDuplicates), never silent.
    const twice = ours.filter(([, times]) => times !== 1);
    const flagged = Number((st.counts as Record<string, unknown> | undefined)?.['possibleDuplicates'] ?? 0);
    console.log(`node-failover: ${twice.length} of ${n} recipients received more than once (possibleDuplicates ${flagged})`);
    expect(twice.length).toBeLessThanOrEqual(flagged);
    expect(twice).toEqual([]);
  }, 600_000);

  it("hands the operator's Lease to the other replica when the leader pod is deleted", async () => {
    const c = need();
    const holder = async () =>
      (await c.node.kubectl(['-n', 'herald-system', 'get', 'lease', 'herald-operator', '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
    const operators = (await pods(c, 'herald-system', 'app.kubernetes.io/component=operator')).map((p) => p.metadata.name);
    expect(operators).toHaveLength(2);
    const leader = await until('a leader', async () => ((await holder()) ? holder() : undefined));
    expect(operators).toContain(leader);
    const other = operators.find((x) => x !== leader)!;
    await c.node.kubectl(['-n', 'herald-system', 'delete', 'pod', leader, '--wait=false']);
    expect(await until('the Lease handed over', async () => ((await holder()) === other ? other : undefined), 120_000)).toBe(other);
  }, 180_000);

  it("rolls a Deployment's pods when its image changes to a second locally built tag", async () => {
    const c = need();
    const second = await buildHeraldImages({ repo, dir: path.join(dir, 'herald', 'images'), tag: 'dev-next', build: false });
    await c.node.importImages(second.layout);
    const api = herald!.manifests.find((m) => m.kind === 'Deployment' && m.metadata.name === 'herald-api')!;
    const oldPods = (await pods(c, 'herald', 'app.kubernetes.io/component=api')).map((p) => p.metadata.name);
    await c.node.kubectl(['-n', 'herald', 'set', 'image', 'deployment/herald-api', 'api=local/herald/api:dev-next']);
    await waitRolledOut(c, [api]);
    const now = (await pods(c, 'herald', 'app.kubernetes.io/component=api')).filter(ready);
    expect(now.length).toBeGreaterThan(0);
    for (const p of now) {
      expect(oldPods).not.toContain(p.metadata.name);
      expect(p.spec.containers[0]!.image).toBe('local/herald/api:dev-next');
    }
  }, 300_000);

  it("runs the load-test CronJob's k6 as a Job that succeeds; a run whose threshold fails leaves a failed Job", async () => {
    const c = need();
    const ns = 'herald-loadtest';
    const cronJob = JSON.parse(await c.node.kubectl(['-n', ns, 'get', 'cronjob', 'herald-k6-capacity', '-o', 'json'])) as {
      spec: { jobTemplate: { spec: { template: { spec: { containers: { env?: Record<string, unknown>[] }[] } } } } };
    };
    // the synthetic tenant is made through the api's admin routes, with the admin token from a Secret
    await c.node.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'herald-k6-admin', namespace: ns }, stringData: { token: herald!.values.adminToken } }));
    const run = async (name: string, env: Record<string, string>): Promise<string> => {
      const spec = structuredClone(cronJob.spec.jobTemplate.spec);
      const k6 = spec.template.spec.containers[0]!;
      k6.env = [
        ...(k6.env ?? []),
        ...Object.entries(env).map(([n, value]) => ({ name: n, value })),
        { name: 'HERALD_ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'herald-k6-admin', key: 'token' } } },
      ];
      // as `kubectl create job --from=cronjob/herald-k6-capacity`, with a short run
      await c.node.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name, namespace: ns, annotations: { 'cronjob.kubernetes.io/instantiate': 'manual' } }, spec }));
      return until(`Job ${name} finished`, async () => {
        const job = JSON.parse(await c.node.kubectl(['-n', ns, 'get', 'job', name, '-o', 'json'])) as { status?: { conditions?: { type: string; status: string; reason?: string }[] } };
        const done = job.status?.conditions?.find((x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True');
        return done ? `${done.type}${done.reason ? ` ${done.reason}` : ''}` : undefined;
      }, 300_000);
    };
    const short = { HERALD_CAPACITY_STEPS: '1', HERALD_CAPACITY_STEP_SECONDS: '5', HERALD_CAPACITY_RECIPIENTS: '5' };
    expect(await run('k6-ok', short)).toMatch(/^Complete/);
    // no time to complete: broadcast_completed misses its threshold, k6 exits 99, the pod failure policy fails the Job
    expect(await run('k6-threshold', { ...short, HERALD_CAPACITY_COMPLETE_WITHIN_S: '0' })).toBe('Failed PodFailurePolicy');
  }, 660_000);
});

describe('stopping the node', () => {
  it('stops and leaves the host as it found it', async () => {
    const c = need();
    // While it runs, the host differs (so the comparison below could fail).
    const during = hostDifferences(c.host.before, await snapshotHost());
    expect(during).toEqual(expect.arrayContaining([`link added: ${BRIDGE}`, expect.stringMatching(/^sysctl vm\/overcommit_memory/)]));
    expect(during.some((d) => /^iptables added: :KUBE-/.test(d))).toBe(true);
    expect(during.some((d) => /^cgroup added: .*kubepods/.test(d))).toBe(true);
    expect(during.some((d) => /^mount added: /.test(d))).toBe(true);
    stopped = true;
    const left = await c.stop();
    expect(left).toEqual([]);
    expect(hostDifferences(c.host.before, await snapshotHost())).toEqual([]);
  }, 120_000);
});
