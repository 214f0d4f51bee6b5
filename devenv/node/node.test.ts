/**
 * The node on this machine: Ready, its kubelet refusing anonymous callers and serving the
 * API server (kubectl logs), pods reaching Services by name (CoreDNS + kube-proxy), and a
 * stop that leaves the host as it found it. A machine where the node cannot start (no
 * root, no runtime) fails here with the reason, not a skip.
 */
import https from 'node:https';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolPath } from '../control-plane.js';
import { startCluster, type Cluster } from './cluster.js';
import { hostDifferences, snapshotHost } from './host.js';
import { nodeBaseLayer } from './images.js';
import { KUBELET_PORT, NODE_NAME, nodeUnavailable } from './node.js';
import { writeIndex } from './oci.js';
import { BRIDGE, BRIDGE_ADDRESS, IMAGE_PREFIX } from './runtime.js';

const dir = path.join(process.cwd(), '.herald', 'test-node');
let cluster: Cluster | undefined;
let stopped = false;

beforeAll(async () => {
  const why = await nodeUnavailable();
  if (why) throw new Error(`the Kubernetes node cannot start on this machine: ${why}`);
  await rm(dir, { recursive: true, force: true });
  cluster = await startCluster({ dir });
}, 300_000);

afterAll(async () => {
  if (cluster && !stopped) await cluster.stop();
}, 120_000);

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
