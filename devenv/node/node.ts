/**
 * A real Kubernetes node on this machine, joined to a local control plane started with
 * `node: true` (devenv/control-plane.ts): containerd + runc + a CNI bridge
 * (devenv/node/runtime.ts), a kubelet with webhook authentication and authorization
 * (no anonymous access), kube-proxy (iptables mode, so ClusterIPs route), and CoreDNS
 * as a Deployment behind the cluster DNS Service (so pods reach Services by name).
 *
 * It needs root on Linux (as kind needs Docker): the kubelet and containerd manage
 * cgroups, mounts and network namespaces. One node per machine at a time: port 10250
 * and the paths kubelet and containerd fix (/var/lib/kubelet/device-plugins,
 * /var/log/pods, /run/containerd...) are the machine's.
 *
 * `stop()` stops every part, removes what containerd still runs, and undoes every host
 * side effect (devenv/node/host.ts), reporting anything it could not undo.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { clientKubeconfig, issueOnce, request, toolPath, toolVersions, type ControlPlane } from '../control-plane.js';
import { mustKubectl } from '../kubectl.js';
import { waitFor } from '../poll.js';
import { spawnWatchdog, startProcess, type Supervised } from '../processes.js';
import { isPortFree } from '../ports.js';
import { killShims, restoreHost, snapshotHost, type HostSnapshot } from './host.js';
import { BRIDGE_ADDRESS, createBridge, PAUSE_IMAGE, POD_CIDR, IMAGE_PREFIX, RUNTIME_BINARIES, removeAllContainers, runtimeMissing, startRuntime, type Runtime } from './runtime.js';
import { importLayout, writeIndex } from './oci.js';
import { pauseLayer, staticBinaryLayer } from './images.js';

const execFileP = promisify(execFile);

export const NODE_NAME = 'herald-node';
export const KUBELET_PORT = 10250;
export const CLUSTER_DNS_IP = '10.0.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
export const COREDNS_IMAGE = `${IMAGE_PREFIX}coredns:${toolVersions()['COREDNS_VERSION'] ?? 'unknown'}`;
/** Where the machine's one node keeps its lock: the pid of the process that runs it. */
export const NODE_LOCK = '/run/herald-node.pid';
/** The host's state before the node started, kept until it is restored (a crashed node's next start restores it). */
export const NODE_HOST_SNAPSHOT = '/run/herald-node.host.json';
/** containerd's socket of the machine's one node, recorded beside the snapshot for its shims. */
export const NODE_SOCKET_FILE = '/run/herald-node.socket';

/**
 * The machine, claimed for a node: the lock taken, the host's state recorded, and the
 * bridge up with the node's address (the control plane listens there; start it next).
 */
export interface NodeHost {
  address: string;
  before: HostSnapshot;
  /** Undoes every host side effect since the claim and drops the lock; returns what still differs. */
  release(): Promise<string[]>;
}

export async function claimHost(onStep?: (line: string) => void, lockWaitMs = 0): Promise<NodeHost> {
  const why = await nodeUnavailable();
  if (why) throw new Error(`cannot start a Kubernetes node here: ${why}`);
  await takeLock(onStep ?? (() => undefined), lockWaitMs);
  const before = await snapshotHost();
  await writeFile(NODE_HOST_SNAPSHOT, JSON.stringify(before));
  let released: Promise<string[]> | undefined;
  const release = () =>
    (released ??= (async () => {
      const socket = existsSync(NODE_SOCKET_FILE) ? (await readFile(NODE_SOCKET_FILE, 'utf8')).trim() : '';
      if (socket) await killShims(socket);
      await execFileP(toolPath('kube-proxy'), ['--cleanup']).catch(() => undefined);
      const left = await restoreHost(before);
      if (left.length === 0) await rm(NODE_HOST_SNAPSHOT, { force: true });
      await rm(NODE_SOCKET_FILE, { force: true });
      await rm(NODE_LOCK, { force: true });
      return left;
    })());
  try {
    await createBridge();
  } catch (e) {
    await release();
    throw e;
  }
  return { address: BRIDGE_ADDRESS, before, release };
}

export interface NodeOptions {
  /** The node's private folder: containerd, kubelet root, certificates, logs, image layouts. */
  dir: string;
  host: NodeHost;
  /** Started with { node: { address: host.address } }. */
  controlPlane: ControlPlane;
  /** Progress lines (start.ts / tests print them). */
  onStep?: (line: string) => void;
}

export interface KubeNode {
  name: string;
  dir: string;
  runtime: Runtime;
  /** Milliseconds from start to a Ready node with DNS serving. */
  startMs: number;
  /** Imports an OCI layout's images into the node. */
  importImages(layoutDir: string): Promise<void>;
  /** Runs kubectl with the admin kubeconfig; throws with its stderr on failure. */
  kubectl: (args: string[], input?: string) => Promise<string>;
  /** Stops the node's processes and every container (the host is restored by host.release()). */
  stop(): Promise<void>;
}

/** Why this machine cannot run a node, or undefined if it can. */
export async function nodeUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `the node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the node needs root (kubelet and containerd manage cgroups, mounts and network namespaces); run as root';
  const rt = runtimeMissing();
  if (rt) return rt;
  for (const t of ['kubelet', 'kube-proxy', 'coredns'] as const) {
    try {
      toolPath(t);
    } catch (e) {
      return (e as Error).message;
    }
  }
  for (const cmd of ['iptables-save', 'ip', 'gcc']) {
    try {
      await execFileP('sh', ['-c', `command -v ${cmd}`]);
    } catch {
      return `the node needs '${cmd}' on PATH`;
    }
  }
  return undefined;
}

async function pidAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Takes the machine's node lock (created atomically). A live holder: wait up to waitMs for
 * it to finish (test runs side by side take turns), else fail saying who holds it.
 */
async function takeLock(step: (line: string) => void, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  let said = false;
  for (;;) {
    try {
      await writeFile(NODE_LOCK, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number((await readFile(NODE_LOCK, 'utf8').catch(() => '')).trim());
    if (!pid || !(await pidAlive(pid))) {
      await rm(NODE_LOCK, { force: true }); // its holder is gone
      continue;
    }
    if (Date.now() >= deadline) {
      throw new Error(`another Herald node runs on this machine (pid ${pid}, ${NODE_LOCK}); one node per machine at a time`);
    }
    if (!said) step(`waiting for the node of pid ${pid} to stop (one node per machine)`);
    said = true;
    await new Promise((r) => setTimeout(r, 2000));
  }
  if (!(await isPortFree(KUBELET_PORT))) {
    await rm(NODE_LOCK, { force: true });
    throw new Error(`port ${KUBELET_PORT} (kubelet) is in use: is another node running?`);
  }
  // A node that died without stopping left its host side effects: undo them first.
  if (existsSync(NODE_HOST_SNAPSHOT)) {
    step('restoring the host after a node that did not stop');
    const socket = existsSync(NODE_SOCKET_FILE) ? (await readFile(NODE_SOCKET_FILE, 'utf8')).trim() : '';
    if (socket) await killShims(socket);
    await execFileP(toolPath('kube-proxy'), ['--cleanup']).catch(() => undefined);
    const left = await restoreHost(JSON.parse(await readFile(NODE_HOST_SNAPSHOT, 'utf8')) as HostSnapshot);
    if (left.length) throw new Error(`a previous node left host changes that could not be undone: ${left.join('; ')}`);
    await rm(NODE_HOST_SNAPSHOT, { force: true });
  }
}

function kubeletConfig(dir: string, address: string, pki: { ca: string; crt: string; key: string }, socket: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${address}
port: ${KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: ${pki.crt}
tlsPrivateKeyFile: ${pki.key}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 30s
  x509:
    clientCAFile: ${pki.ca}
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 30s
    cacheUnauthorizedTTL: 5s
containerRuntimeEndpoint: unix://${socket}
imageServiceEndpoint: unix://${socket}
cgroupDriver: cgroupfs
# this machine has cgroup v1 (deprecated in 1.34) and may have swap
failCgroupV1: false
failSwapOn: false
clusterDomain: ${CLUSTER_DOMAIN}
clusterDNS: [${CLUSTER_DNS_IP}]
resolvConf: ${path.join(dir, 'resolv.conf')}
staticPodPath: ""
# locally imported images: nothing can pull them again, so never collect them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
maxPods: 60
serializeImagePulls: false
registerNode: true
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 60s
shutdownGracePeriod: 0s
`;
}

function kubeProxyConfig(kubeconfig: string, healthzPort: number, metricsPort: number): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${kubeconfig}
mode: iptables
clusterCIDR: ${POD_CIDR}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:${healthzPort}
metricsBindAddress: 127.0.0.1:${metricsPort}
hostnameOverride: ${NODE_NAME}
conntrack:
  # leave the machine's conntrack sizing alone
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  syncPeriod: 30s
  minSyncPeriod: 1s
`;
}

/** CoreDNS: Service at CLUSTER_DNS_IP, Deployment (restricted pod), its RBAC and Corefile. */
function corednsManifests(): string {
  return `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "herald:coredns"}
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "herald:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "herald:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:5353 {
        errors
        health :8080
        ready :8181
        kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      terminationGracePeriodSeconds: 5
      securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: ${COREDNS_IMAGE}
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 5353, protocol: UDP}
        - {name: dns-tcp, containerPort: 5353, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: ${CLUSTER_DNS_IP}
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 5353, protocol: TCP}
`;
}

export async function startNode(opts: NodeOptions): Promise<KubeNode> {
  const t0 = Date.now();
  const step = opts.onStep ?? (() => undefined);
  const cp = opts.controlPlane;
  const address = opts.host.address;
  if (!cp.server.includes(`//${address}:`)) throw new Error(`startNode: start the control plane with { node: { address: '${address}' } }`);
  const dir = path.resolve(opts.dir);
  const logs = path.join(dir, 'logs');
  await mkdir(logs, { recursive: true });
  const procs: Supervised[] = [];
  let runtime: Runtime | undefined;
  // The watchdog stops the node's processes if this process dies without stopping them
  // (the next claimHost then restores the host from the snapshot it kept).
  const pidFile = path.join(dir, 'children.pids');
  await writeFile(pidFile, '');
  spawnWatchdog(pidFile);
  const rewatch = () => writeFile(pidFile, procs.map((p) => `TERM ${p.pid}\n`).join(''));
  // waits (rollout status, wait) carry their own --timeout, up to 300 s
  const kubectl = async (args: string[], input?: string): Promise<string> => (await mustKubectl(cp.adminKubeconfig, args, input, 330_000)).stdout;

  let stopped: Promise<void> | undefined;
  const stopAll = async (): Promise<void> => {
    // kubelet and kube-proxy first (nothing restarts containers), then what containerd runs.
    for (const p of [...procs].reverse()) if (p.name !== 'containerd') await p.stop(15_000);
    if (runtime) {
      await removeAllContainers(runtime).catch(() => undefined);
      await runtime.stop();
    }
    await rm(pidFile, { force: true });
  };

  try {
    // certificates ---------------------------------------------------------------------
    const pkiDir = cp.pkiDir;
    const ca = path.join(pkiDir, 'ca.crt');
    const serving = await issueOnce(ca, `kubelet-serving-${address}`, {
      organization: 'system:nodes',
      commonName: `system:node:${NODE_NAME}`,
      usage: 'serverAuth',
      ips: [address],
      names: [NODE_NAME],
    });
    const kubeletKubeconfig = await clientKubeconfig(cp.dir, cp.server, 'kubelet', { organization: 'system:nodes', commonName: `system:node:${NODE_NAME}` });
    const proxyKubeconfig = await clientKubeconfig(cp.dir, cp.server, 'kube-proxy', { commonName: 'system:kube-proxy' });

    // runtime and the node's own images ---------------------------------------------------
    step('containerd');
    runtime = await startRuntime(path.join(dir, 'containerd'), path.join(logs, 'containerd.log'));
    await writeFile(NODE_SOCKET_FILE, runtime.socket);
    procs.push(runtime.proc);
    await rewatch();
    const layout = path.join(dir, 'images', 'node');
    const work = path.join(dir, 'images', 'work');
    await mkdir(work, { recursive: true });
    const version = toolVersions();
    const pause = await pauseLayer(layout, work, version['KUBERNETES_VERSION'] ?? '');
    const coredns = await staticBinaryLayer(layout, work, toolPath('coredns'), 'coredns');
    await writeIndex(layout, [
      { name: PAUSE_IMAGE, layers: [pause], config: { user: '65535:65535', entrypoint: ['/pause'] } },
      { name: COREDNS_IMAGE, layers: [coredns], config: { user: '1000:1000', entrypoint: ['/usr/local/bin/coredns'] } },
    ]);
    await importLayout(RUNTIME_BINARIES.ctr, runtime.socket, layout);

    // kubelet ------------------------------------------------------------------------------
    step('kubelet');
    const kubeletRoot = path.join(dir, 'kubelet');
    await mkdir(kubeletRoot, { recursive: true });
    // Pods resolve cluster names through CoreDNS; CoreDNS itself (dnsPolicy Default) gets
    // this, and nothing outside the machine is resolvable.
    await writeFile(path.join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions ndots:1\n');
    const kubeletConfigPath = path.join(dir, 'kubelet-config.yaml');
    await writeFile(kubeletConfigPath, kubeletConfig(dir, address, { ca, ...serving }, runtime.socket));
    const kubelet = startProcess(
      toolPath('kubelet'),
      [
        `--config=${kubeletConfigPath}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=${kubeletRoot}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${address}`,
        `--cert-dir=${path.join(dir, 'kubelet-pki')}`,
        '--v=1',
      ],
      { name: 'kubelet', logFile: path.join(logs, 'kubelet.log') },
    );
    procs.push(kubelet);
    await rewatch();
    await waitFor(
      'node Ready',
      async () => {
        const out = await kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
        return out.trim() === 'True';
      },
      { timeoutMs: 120_000, everyMs: 250, process: kubelet },
    );

    // kube-proxy ---------------------------------------------------------------------------
    step('kube-proxy');
    const [healthz, metrics] = [10256, 10249];
    const proxyConfigPath = path.join(dir, 'kube-proxy-config.yaml');
    await writeFile(proxyConfigPath, kubeProxyConfig(proxyKubeconfig, healthz, metrics));
    const proxy = startProcess(toolPath('kube-proxy'), [`--config=${proxyConfigPath}`, '--v=1'], { name: 'kube-proxy', logFile: path.join(logs, 'kube-proxy.log') });
    procs.push(proxy);
    await rewatch();
    await waitFor(
      'kube-proxy',
      async () => (await request(`http://127.0.0.1:${healthz}/healthz`, { timeoutMs: 2000 })).status === 200,
      { timeoutMs: 60_000, everyMs: 250, process: proxy },
    );

    // cluster DNS ----------------------------------------------------------------------------
    step('CoreDNS');
    await kubectl(['apply', '-f', '-'], corednsManifests());
    await kubectl(['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=120s']);
  } catch (e) {
    await stopAll();
    throw e;
  }

  return {
    name: NODE_NAME,
    dir,
    runtime,
    startMs: Date.now() - t0,
    importImages: (layoutDir) => importLayout(RUNTIME_BINARIES.ctr, runtime.socket, layoutDir),
    kubectl,
    stop: () => (stopped ??= stopAll()),
  };
}

