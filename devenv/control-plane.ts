/**
 * A real local Kubernetes control plane (etcd + kube-apiserver), configured like
 * controller-runtime's envtest, for operator tests. Binaries come from the tool cache
 * filled by scripts/control-plane/build-tools.sh; versions live in scripts/control-plane/versions.env.
 *
 * No kubelet, controller-manager or scheduler: pods never run, the ServiceAccount
 * admission plugin is disabled (nothing creates "default" service accounts), and
 * garbage collection / namespace deletion finalizers never complete.
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

export type Tool = 'etcd' | 'kube-apiserver' | 'k6' | 'kubectl' | 'actionlint';

export interface ControlPlaneOptions {
  /** Working directory: certs, etcd data, logs, kubeconfigs. Reused if it exists. */
  dir: string;
  /** kube-apiserver secure port (default: the one used last time in `dir` if free, else a free port). */
  port?: number;
  /** etcd client port (default: as for `port`). The etcd peer port is always picked automatically. */
  etcdPort?: number;
  /** Write an audit log (Metadata level, every request) to `<dir>/audit.log`. Default true. */
  auditLog?: boolean;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  /** Path of a kubeconfig authenticating as a system:masters client-certificate user. */
  adminKubeconfig: string;
  dir: string;
  auditLogPath: string;
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
  const notBeforeDate = new Date();
  const validity = { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate, notAfterDate: new Date(notBeforeDate.getTime() + TEN_YEARS_MS) } as const;
  const ca = await generateCertificate([{ name: 'commonName', value: 'herald-local-ca' }], {
    ...validity,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = (usage: 'serverAuth' | 'clientAuth') => [
    { name: 'basicConstraints' as const, cA: false, critical: true },
    { name: 'keyUsage' as const, digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage' as const, [usage]: true },
  ];
  const signedByCa = { ...validity, ca: { key: ca.private, cert: ca.cert } };
  const serving = await generateCertificate([{ name: 'commonName', value: 'kube-apiserver' }], {
    ...signedByCa,
    extensions: [
      ...leaf('serverAuth'),
      { name: 'subjectAltName', altNames: [...SERVING_IPS.map((ip) => ({ type: 7 as const, ip })), ...SERVING_NAMES.map((value) => ({ type: 2 as const, value }))] },
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

interface HttpResult {
  status: number;
  body: string;
}

function request(
  url: string,
  init: { method?: string; body?: unknown; ca?: Buffer; cert?: Buffer; key?: Buffer; timeoutMs?: number },
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

const SERVICE_CIDR = '10.0.0.0/24';
const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = path.resolve(opts.dir);
  const auditLog = opts.auditLog ?? true;
  const etcdBin = toolPath('etcd');
  const apiserverBin = toolPath('kube-apiserver');
  await mkdir(dir, { recursive: true });
  await mkdir(path.join(dir, 'logs'), { recursive: true });
  await mkdir(path.join(dir, 'kubeconfigs'), { recursive: true, mode: 0o700 });

  const pki = await ensurePki(path.join(dir, 'pki'));
  const ports = await portsFor(dir, opts);
  const server = `https://127.0.0.1:${ports.apiserver}`;
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
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${path.join(dir, 'pki')}`,
      `--tls-cert-file=${pki.servingCrt}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCrt}`,
      '--authorization-mode=RBAC',
      '--anonymous-auth=false',
      `--service-account-issuer=${SA_ISSUER}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allow-privileged=true',
      // As envtest: without a controller-manager nothing creates the "default" ServiceAccount,
      // so the ServiceAccount admission plugin would reject every pod.
      '--disable-admission-plugins=ServiceAccount',
      '--profiling=false',
    ];
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
    auditLogPath,
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

function b64file(p: string): string {
  return readFileSync(p).toString('base64');
}
