/**
 * A real local Kubernetes control plane (etcd + kube-apiserver), configured like
 * controller-runtime's envtest, for operator tests. Binaries come from the tool cache
 * filled by scripts/control-plane/build-tools.sh; versions live in scripts/control-plane/versions.env.
 *
 * By default no kubelet, controller-manager or scheduler: pods never run, the ServiceAccount
 * admission plugin is disabled (nothing creates "default" service accounts), and
 * garbage collection / namespace deletion finalizers never complete. `controllers: true`
 * adds kube-controller-manager and kube-scheduler; `node` readies it for a kubelet
 * (devenv/node).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate as generateCertificate } from 'selfsigned';
import { writeKubeconfig } from './kubeconfig.js';
import { waitFor } from './poll.js';
import { choosePorts } from './ports.js';
import { spawnWatchdog, startProcess, type Supervised } from './processes.js';

export type Tool =
  | 'etcd'
  | 'kube-apiserver'
  | 'k6'
  | 'kubectl'
  | 'actionlint'
  | 'kubelet'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kube-proxy'
  | 'coredns'
  | 'promtool';

export interface ControlPlaneOptions {
  /** Working directory: certs, etcd data, logs, kubeconfigs. Reused if it exists. */
  dir: string;
  /** kube-apiserver secure port (default: the one used last time in `dir` if free, else a free port). */
  port?: number;
  /** etcd client port (default: as for `port`). The etcd peer port is always picked automatically. */
  etcdPort?: number;
  /** Write an audit log (Metadata level, every request) to `<dir>/audit.log`. Default true. */
  auditLog?: boolean;
  /**
   * Also run kube-controller-manager (namespace lifecycle, garbage collection, Deployments,
   * Jobs, ResourceQuota, ServiceAccounts and their tokens...) and kube-scheduler, with the
   * ServiceAccount admission plugin on. Default false: the API server alone, as envtest.
   */
  controllers?: boolean;
  /**
   * Ready for a kubelet node (devenv/node): the API server listens on the node's bridge
   * address (so pods reach it through the `kubernetes` Service; the bridge exists first),
   * reaches kubelets with a client certificate of its own (allowed the kubelet API), and
   * authorizes kubelets with the Node authorizer and NodeRestriction. Implies controllers.
   */
  node?: { address: string };
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> (a node's control plane: https://<bridge address>:<port>) */
  server: string;
  /** Path of a kubeconfig authenticating as a system:masters client-certificate user. */
  adminKubeconfig: string;
  dir: string;
  /** The PKI folder: ca.crt/ca.key sign the node's certificates (devenv/node). */
  pkiDir: string;
  auditLogPath: string;
  /** Whether kube-controller-manager and kube-scheduler run. */
  controllers: boolean;
  stop(): Promise<void>;
  /** Creates the namespace and ServiceAccount if absent and returns a token kubeconfig path for it. */
  kubeconfigForServiceAccount(namespace: string, name: string): Promise<string>;
}

// ---------------------------------------------------------------------------------------------
// Tool resolution (versions.env is the single source of truth, shared with build-tools.sh)

const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'control-plane');

export function toolVersions(): Record<string, string> {
  const text = readFileSync(path.join(here, 'versions.env'), 'utf8');
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(\S*)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

export function toolCacheDir(): string {
  // Mirrors build-tools.sh: ${HERALD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/tools}
  const explicit = process.env['HERALD_TOOLS_CACHE'];
  if (explicit) return explicit;
  const xdg = process.env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'herald', 'tools');
}

const versionKey: Record<Tool, string> = {
  etcd: 'ETCD_VERSION',
  'kube-apiserver': 'KUBERNETES_VERSION',
  kubectl: 'KUBERNETES_VERSION',
  k6: 'K6_VERSION',
  actionlint: 'ACTIONLINT_VERSION',
  kubelet: 'KUBERNETES_VERSION',
  'kube-controller-manager': 'KUBERNETES_VERSION',
  'kube-scheduler': 'KUBERNETES_VERSION',
  'kube-proxy': 'KUBERNETES_VERSION',
  coredns: 'COREDNS_VERSION',
  promtool: 'PROMETHEUS_VERSION',
};

/** Absolute path of a tool binary in the cache; throws if it has not been built. */
export function toolPath(tool: Tool): string {
  const key = versionKey[tool];
  if (!key) throw new Error(`unknown tool '${String(tool)}'`);
  const version = toolVersions()[key];
  if (!version) throw new Error(`${key} missing from ${path.join(here, 'versions.env')}`);
  const p = path.join(toolCacheDir(), `${tool}-${version}`, 'bin', tool);
  if (!existsSync(p)) {
    throw new Error(
      `${tool} ${version} is not built (expected ${p}). Run: bash scripts/control-plane/build-tools.sh ${tool}`,
    );
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Ports

interface Ports {
  apiserver: number;
  etcd: number;
  etcdPeer: number;
}

async function portsFor(dir: string, opts: ControlPlaneOptions): Promise<Ports> {
  let saved: Partial<Ports> = {};
  try {
    saved = JSON.parse(await readFile(path.join(dir, 'ports.json'), 'utf8')) as Partial<Ports>;
  } catch {
    /* first start */
  }
  const ports = await choosePorts({
    apiserver: { exact: opts.port, preferred: saved.apiserver },
    etcd: { exact: opts.etcdPort, preferred: saved.etcd },
    etcdPeer: { preferred: saved.etcdPeer },
  });
  await writeFile(path.join(dir, 'ports.json'), JSON.stringify(ports, null, 2) + '\n');
  return ports;
}

// ---------------------------------------------------------------------------------------------
// PKI (generated once per dir, in-process: selfsigned for the certificates, node:crypto for the signing key)

interface Pki {
  caCrt: string;
  servingCrt: string;
  servingKey: string;
  adminCrt: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

const TEN_YEARS_MS = 3650 * 24 * 3600 * 1000;
const SERVING_NAMES = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];
const SERVING_IPS = ['127.0.0.1', '10.0.0.1'];

function validFromNow() {
  const notBeforeDate = new Date();
  return { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate: new Date(notBeforeDate.getTime() + TEN_YEARS_MS) } as const;
}

const leaf = (usage: 'serverAuth' | 'clientAuth') => [
  { name: 'basicConstraints' as const, cA: false, critical: true },
  { name: 'keyUsage' as const, digitalSignature: true, keyEncipherment: true, critical: true },
  { name: 'extKeyUsage' as const, [usage]: true },
];

const subjectAltName = (ips: string[], names: string[]) => ({
  name: 'subjectAltName' as const,
  altNames: [...ips.map((ip) => ({ type: 7 as const, ip })), ...names.map((value) => ({ type: 2 as const, value }))],
});

export interface CertificateRequest {
  /** Organization (a Kubernetes group, e.g. system:nodes) and common name (the user). */
  organization?: string;
  commonName: string;
  usage: 'serverAuth' | 'clientAuth';
  ips?: string[];
  names?: string[];
}

/**
 * `<base>.crt`/`.key` in the CA's folder, signed by the CA (ca.key beside ca.crt), issued
 * once: the node's and the controllers' certificates.
 */
export async function issueOnce(caCrt: string, base: string, r: CertificateRequest): Promise<{ crt: string; key: string }> {
  const pkiDir = path.dirname(caCrt);
  const crt = path.join(pkiDir, `${base}.crt`);
  const key = path.join(pkiDir, `${base}.key`);
  if (existsSync(crt) && existsSync(key)) return { crt, key };
  const subject = [...(r.organization ? [{ name: 'organizationName', value: r.organization }] : []), { name: 'commonName', value: r.commonName }];
  const cert = await generateCertificate(subject, {
    ...validFromNow(),
    ca: { key: await readFile(path.join(pkiDir, 'ca.key'), 'utf8'), cert: await readFile(caCrt, 'utf8') },
    extensions: [...leaf(r.usage), ...(r.ips || r.names ? [subjectAltName(r.ips ?? [], r.names ?? [])] : [])],
  });
  await writeFile(key, cert.private, { mode: 0o600 });
  await writeFile(crt, cert.cert);
  return { crt, key };
}

/** A client certificate (issued once) and a kubeconfig using it, in a control plane's dir. */
export async function clientKubeconfig(dir: string, server: string, base: string, r: Omit<CertificateRequest, 'usage'>): Promise<string> {
  const caCrt = path.join(dir, 'pki', 'ca.crt');
  const { crt, key } = await issueOnce(caCrt, base, { ...r, usage: 'clientAuth' });
  return writeKubeconfig(path.join(dir, 'kubeconfigs', `${base}.kubeconfig`), server, { data: b64file(caCrt) }, {
    name: base,
    credentials: { 'client-certificate-data': b64file(crt), 'client-key-data': b64file(key) },
  });
}

async function ensurePki(pkiDir: string): Promise<Pki> {
  await mkdir(pkiDir, { recursive: true, mode: 0o700 });
  const f = (n: string): string => path.join(pkiDir, n);
  const pki: Pki = {
    caCrt: f('ca.crt'),
    servingCrt: f('apiserver.crt'),
    servingKey: f('apiserver.key'),
    adminCrt: f('admin.crt'),
    adminKey: f('admin.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
  };
  if (Object.values(pki).every((p) => existsSync(p))) return pki;

  // Partial state (e.g. interrupted generation): start the PKI over; it is cheap.
  for (const p of Object.values(pki)) await rm(p, { force: true });
  const validity = validFromNow();
  const ca = await generateCertificate([{ name: 'commonName', value: 'herald-local-ca' }], {
    ...validity,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const signedByCa = { ...validity, ca: { key: ca.private, cert: ca.cert } };
  const serving = await generateCertificate([{ name: 'commonName', value: 'kube-apiserver' }], {
    ...signedByCa,
    extensions: [
      ...leaf('serverAuth'),
      subjectAltName(SERVING_IPS, SERVING_NAMES),
    ],
  });
  // O=system:masters is the group Kubernetes gives the admin.
  const admin = await generateCertificate([{ name: 'organizationName', value: 'system:masters' }, { name: 'commonName', value: 'herald-admin' }], {
    ...signedByCa,
    extensions: leaf('clientAuth'),
  });
  // Service-account token signing key (RS256, the most widely supported JWT algorithm).
  const sa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const secret = { mode: 0o600 };
  await writeFile(f('ca.key'), ca.private, secret);
  await writeFile(pki.caCrt, ca.cert);
  await writeFile(pki.servingKey, serving.private, secret);
  await writeFile(pki.servingCrt, serving.cert);
  await writeFile(pki.adminKey, admin.private, secret);
  await writeFile(pki.adminCrt, admin.cert);
  await writeFile(pki.saKey, sa.privateKey, secret);
  await writeFile(pki.saPub, sa.publicKey);
  return pki;
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

export interface HttpResult {
  status: number;
  body: string;
}

export function request(
  url: string,
  init: { method?: string; body?: unknown; ca?: Buffer; cert?: Buffer; key?: Buffer; timeoutMs?: number; insecure?: boolean },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = init.body === undefined ? undefined : JSON.stringify(init.body);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        method: init.method ?? 'GET',
        ca: init.ca,
        cert: init.cert,
        key: init.key,
        rejectUnauthorized: !init.insecure,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
          : {},
        timeout: init.timeoutMs ?? 10_000,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`;

export const SERVICE_CIDR = '10.0.0.0/24';
/** The API server's identity towards kubelets. */
const KUBELET_API_CLIENT = 'herald:apiserver-kubelet-client';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startControlPlaneOnce(opts);
    } catch (e) {
      // A port found free was taken before etcd or the API server bound it (vitest's other
      // files, and anything else on the machine, pick ports too): choose new ones.
      if (attempt >= 3 || !/address already in use/.test(String(e))) throw e;
      await rm(path.join(path.resolve(opts.dir), 'ports.json'), { force: true });
    }
  }
}

async function startControlPlaneOnce(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = path.resolve(opts.dir);
  const auditLog = opts.auditLog ?? true;
  const node = opts.node;
  const controllers = node !== undefined || (opts.controllers ?? false);
  const address = node?.address ?? '127.0.0.1';
  const etcdBin = toolPath('etcd');
  const apiserverBin = toolPath('kube-apiserver');
  await mkdir(dir, { recursive: true });
  await mkdir(path.join(dir, 'logs'), { recursive: true });
  await mkdir(path.join(dir, 'kubeconfigs'), { recursive: true, mode: 0o700 });

  const pki = await ensurePki(path.join(dir, 'pki'));
  const ports = await portsFor(dir, opts);
  const server = `https://${address}:${ports.apiserver}`;
  // On a node's address the API server needs a serving certificate naming it.
  const serving = node
    ? await issueOnce(pki.caCrt, `apiserver-${node.address}`, {
        commonName: 'kube-apiserver',
        usage: 'serverAuth',
        ips: [node.address, ...SERVING_IPS],
        names: SERVING_NAMES,
      })
    : { crt: pki.servingCrt, key: pki.servingKey };
  const auditLogPath = path.join(dir, 'audit.log');
  const auditPolicyPath = path.join(dir, 'audit-policy.yaml');
  await writeFile(auditPolicyPath, AUDIT_POLICY);

  const ca = await readFile(pki.caCrt);
  const adminCert = await readFile(pki.adminCrt);
  const adminKey = await readFile(pki.adminKey);

  const procs: Supervised[] = [];
  // The watchdog kills etcd and kube-apiserver if this process dies without stopping them.
  const pidFile = path.join(dir, 'children.pids');
  await writeFile(pidFile, '');
  spawnWatchdog(pidFile);
  const notePids = () => writeFile(pidFile, procs.map((p) => `KILL ${p.pid}\n`).join(''));
  const stopAll = async (): Promise<void> => {
    // apiserver first (it depends on etcd), then etcd.
    for (const p of [...procs].reverse()) await p.stop();
    await rm(pidFile, { force: true });
  };

  try {
    // etcd ------------------------------------------------------------------
    const etcdUrl = `http://127.0.0.1:${ports.etcd}`;
    const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
    const etcd = startProcess(
      etcdBin,
      [
        '--name=herald',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=herald=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      { name: 'etcd', logFile: path.join(dir, 'logs', 'etcd.log') },
    );
    procs.push(etcd);
    await notePids();
    await waitFor(
      'etcd',
      async () => {
        const r = await request(`${etcdUrl}/health`, { timeoutMs: 2000 });
        return r.status === 200 && /"health":\s*"true"/.test(r.body);
      },
      { timeoutMs: 30_000, everyMs: 250, process: etcd },
    );

    // kube-apiserver ----------------------------------------------------------
    const args = [
      `--etcd-servers=${etcdUrl}`,
      `--secure-port=${ports.apiserver}`,
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      `--cert-dir=${path.join(dir, 'pki')}`,
      `--tls-cert-file=${serving.crt}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.caCrt}`,
      node ? '--authorization-mode=Node,RBAC' : '--authorization-mode=RBAC',
      '--anonymous-auth=false',
      `--service-account-issuer=${SA_ISSUER}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allow-privileged=true',
      // As envtest: without a controller-manager nothing creates the "default" ServiceAccount,
      // so the ServiceAccount admission plugin would reject every pod.
      ...(controllers ? [] : ['--disable-admission-plugins=ServiceAccount']),
      '--profiling=false',
    ];
    if (node) {
      const kc = await issueOnce(pki.caCrt, 'apiserver-kubelet-client', { commonName: KUBELET_API_CLIENT, usage: 'clientAuth' });
      args.push(
        '--enable-admission-plugins=NodeRestriction',
        `--kubelet-client-certificate=${kc.crt}`,
        `--kubelet-client-key=${kc.key}`,
        `--kubelet-certificate-authority=${pki.caCrt}`,
        '--kubelet-preferred-address-types=InternalIP',
      );
    }
    if (auditLog) {
      args.push(
        `--audit-policy-file=${auditPolicyPath}`,
        `--audit-log-path=${auditLogPath}`,
        '--audit-log-format=json',
        '--audit-log-mode=blocking',
        '--audit-log-maxsize=100',
        '--audit-log-maxbackup=1',
      );
    }
    const apiserver = startProcess(apiserverBin, args, { name: 'kube-apiserver', logFile: path.join(dir, 'logs', 'kube-apiserver.log') });
    procs.push(apiserver);
    await notePids();
    await waitFor(
      'kube-apiserver',
      async () => {
        if (!etcd.running()) throw new Error(`etcd exited:\n${etcd.tail()}`);
        const r = await request(`${server}/readyz`, { ca, cert: adminCert, key: adminKey, timeoutMs: 5000 });
        return r.status === 200 && r.body.trim() === 'ok';
      },
      { timeoutMs: 90_000, everyMs: 250, process: apiserver, explain: async () => `--- etcd:\n${etcd.tail()}` },
    );
    if (node) {
      // The kubelet authorizes the API server's requests (logs, exec, port-forward) by
      // SubjectAccessReview: allow its client identity the kubelet API.
      const r = await request(`${server}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings`, {
        method: 'POST',
        ca,
        cert: adminCert,
        key: adminKey,
        body: {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'herald:apiserver-kubelet-client' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' },
          subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: KUBELET_API_CLIENT }],
        },
      });
      if (r.status !== 201 && r.status !== 409) throw new Error(`binding ${KUBELET_API_CLIENT}: HTTP ${r.status} ${r.body}`);
    }
    if (controllers) {
      // Each serves /healthz on a port of its own (free ones: control planes run side by side).
      const { freePort } = await import('./ports.js');
      const serve = async (name: string) => ['--bind-address=127.0.0.1', `--secure-port=${await freePort()}`, `--cert-dir=${path.join(dir, 'pki', name)}`];
      const kcmKubeconfig = await clientKubeconfig(dir, server, 'kube-controller-manager', { commonName: 'system:kube-controller-manager' });
      const kcmServe = await serve('kcm-serving');
      const kcm = startProcess(
        toolPath('kube-controller-manager'),
        [
          `--kubeconfig=${kcmKubeconfig}`,
          `--authentication-kubeconfig=${kcmKubeconfig}`,
          `--authorization-kubeconfig=${kcmKubeconfig}`,
          ...kcmServe,
          '--leader-elect=false',
          '--use-service-account-credentials=true',
          `--service-account-private-key-file=${pki.saKey}`,
          `--root-ca-file=${pki.caCrt}`,
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          // pod CIDRs come from the node's CNI configuration, not from Node objects; no cloud
          '--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller',
          // A quota made before its custom resource's quota monitor existed gets its usage only
          // at the next full resync (5 min by default, past the 3 min a tenant namespace is
          // waited for: it failed a fresh CI run); a small cluster resyncs cheaply.
          '--resource-quota-sync-period=15s',
          '--profiling=false',
        ],
        { name: 'kube-controller-manager', logFile: path.join(dir, 'logs', 'kube-controller-manager.log') },
      );
      procs.push(kcm);
      const schedKubeconfig = await clientKubeconfig(dir, server, 'kube-scheduler', { commonName: 'system:kube-scheduler' });
      const schedServe = await serve('scheduler-serving');
      const scheduler = startProcess(
        toolPath('kube-scheduler'),
        [
          `--kubeconfig=${schedKubeconfig}`,
          `--authentication-kubeconfig=${schedKubeconfig}`,
          `--authorization-kubeconfig=${schedKubeconfig}`,
          ...schedServe,
          '--leader-elect=false',
          '--profiling=false',
        ],
        { name: 'kube-scheduler', logFile: path.join(dir, 'logs', 'kube-scheduler.log') },
      );
      procs.push(scheduler);
      await notePids();
      for (const [p, flags] of [[kcm, kcmServe], [scheduler, schedServe]] as const) {
        const port = flags[1]!.split('=')[1];
        await waitFor(
          p.name,
          // its own self-signed serving certificate; /healthz needs no credentials
          async () => (await request(`https://127.0.0.1:${port}/healthz`, { insecure: true, timeoutMs: 3000 })).status === 200,
          { timeoutMs: 60_000, everyMs: 250, process: p },
        );
      }
    }
  } catch (e) {
    await stopAll();
    throw e;
  }

  const adminKubeconfig = await writeKubeconfig(path.join(dir, 'kubeconfigs', 'admin.kubeconfig'), server, { data: b64file(pki.caCrt) }, {
    name: 'herald-admin',
    credentials: { 'client-certificate-data': b64file(pki.adminCrt), 'client-key-data': b64file(pki.adminKey) },
  });

  const admin = (method: string, p: string, body?: unknown): Promise<HttpResult> =>
    request(`${server}${p}`, { method, body, ca, cert: adminCert, key: adminKey });
  const must = (r: HttpResult, what: string, ok: number[]): HttpResult => {
    if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.body}`);
    return r;
  };

  let stopped: Promise<void> | undefined;
  return {
    server,
    adminKubeconfig,
    dir,
    pkiDir: path.join(dir, 'pki'),
    auditLogPath,
    controllers,
    stop: () => (stopped ??= stopAll()),
    async kubeconfigForServiceAccount(namespace: string, name: string): Promise<string> {
      const ns = encodeURIComponent(namespace);
      const sa = encodeURIComponent(name);
      must(
        await admin('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }),
        `create namespace ${namespace}`,
        [201, 409],
      );
      must(
        await admin('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name, namespace },
        }),
        `create serviceaccount ${namespace}/${name}`,
        [201, 409],
      );
      const tr = must(
        await admin('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 24 * 3600 },
        }),
        `TokenRequest for ${namespace}/${name}`,
        [200, 201],
      );
      const token = (JSON.parse(tr.body) as { status?: { token?: string } }).status?.token;
      if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token: ${tr.body}`);
      return writeKubeconfig(path.join(dir, 'kubeconfigs', `sa-${namespace}-${name}.kubeconfig`), server, { data: b64file(pki.caCrt) }, {
        name: `system:serviceaccount:${namespace}:${name}`,
        credentials: { token },
      });
    },
  };
}

export function b64file(p: string): string {
  return readFileSync(p).toString('base64');
}
