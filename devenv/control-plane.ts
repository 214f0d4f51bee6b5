/**
 * A real local Kubernetes control plane (etcd + kube-apiserver), configured like
 * controller-runtime's envtest, for operator tests. Binaries come from the tool cache
 * filled by scripts/control-plane/build-tools.sh; versions live in scripts/control-plane/versions.env.
 *
 * No kubelet, controller-manager or scheduler: pods never run, the ServiceAccount
 * admission plugin is disabled (nothing creates "default" service accounts), and
 * garbage collection / namespace deletion finalizers never complete.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, isPortFree } from './ports.js';

const execFileP = promisify(execFile);

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
// Child-process bookkeeping: children must never outlive this Node process.

const livePids = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/**
 * A detached shell that SIGKILLs the given pids once this Node process disappears (covers
 * SIGKILL of the parent, where 'exit' handlers never run). It exits by itself once the
 * children are gone.
 */
function spawnWatchdog(pids: number[]): ChildProcess {
  const script = [
    'parent=$1; shift',
    'while kill -0 "$parent" 2>/dev/null; do',
    '  alive=0; for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done',
    '  [ "$alive" = 1 ] || exit 0',
    '  sleep 1',
    'done',
    'for p in "$@"; do kill -KILL "$p" 2>/dev/null; done',
  ].join('\n');
  const w = spawn('sh', ['-c', script, 'herald-cp-watchdog', String(process.pid), ...pids.map(String)], {
    detached: true,
    stdio: 'ignore',
  });
  w.unref();
  return w;
}

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  logPath: string;
}

function startProc(name: string, bin: string, args: string[], logPath: string): Proc {
  const log = createWriteStream(logPath, { flags: 'a' });
  log.write(`\n==== ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  if (child.pid === undefined) throw new Error(`failed to start ${name} (${bin})`);
  const pid = child.pid;
  livePids.add(pid);
  installExitHook();
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      livePids.delete(pid);
      log.end(`\n==== ${name} exited code=${code} signal=${signal}\n`);
      resolve(code);
    });
    child.once('error', (err) => {
      livePids.delete(pid);
      log.end(`\n==== ${name} error: ${err.message}\n`);
      resolve(null);
    });
  });
  return { name, child, exited, logPath };
}

async function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

async function tail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

interface Ports {
  apiserver: number;
  etcd: number;
  etcdPeer: number;
}

async function choosePorts(dir: string, opts: ControlPlaneOptions): Promise<Ports> {
  let saved: Partial<Ports> = {};
  try {
    saved = JSON.parse(await readFile(path.join(dir, 'ports.json'), 'utf8')) as Partial<Ports>;
  } catch {
    /* first start */
  }
  const taken = new Set<number>();
  const pick = async (explicit: number | undefined, previous: number | undefined): Promise<number> => {
    if (explicit !== undefined) {
      taken.add(explicit);
      return explicit;
    }
    if (previous !== undefined && !taken.has(previous) && (await isPortFree(previous))) {
      taken.add(previous);
      return previous;
    }
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  const ports: Ports = {
    apiserver: await pick(opts.port, saved.apiserver),
    etcd: await pick(opts.etcdPort, saved.etcd),
    etcdPeer: await pick(undefined, saved.etcdPeer),
  };
  await writeFile(path.join(dir, 'ports.json'), JSON.stringify(ports, null, 2) + '\n');
  return ports;
}

// ---------------------------------------------------------------------------------------------
// PKI (openssl CLI; generated once per dir)

interface Pki {
  caCrt: string;
  servingCrt: string;
  servingKey: string;
  adminCrt: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileP('openssl', args, { cwd });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
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
  const days = '3650';
  await writeFile(
    f('openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = unused',
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
      'subjectKeyIdentifier = hash',
      '[serving]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local',
      'authorityKeyIdentifier = keyid',
      '[client]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = clientAuth',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(
    ['req', '-x509', '-config', 'openssl.cnf', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', days,
      '-subj', '/CN=herald-local-ca', '-extensions', 'ca'],
    pkiDir,
  );
  const issue = async (base: string, subj: string, ext: string): Promise<void> => {
    await openssl(['req', '-new', '-config', 'openssl.cnf', ...ec, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subj], pkiDir);
    await openssl(
      ['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', days,
        '-extfile', 'openssl.cnf', '-extensions', ext, '-out', `${base}.crt`],
      pkiDir,
    );
    await rm(f(`${base}.csr`), { force: true });
  };
  await issue('apiserver', '/CN=kube-apiserver', 'serving');
  await issue('admin', '/O=system:masters/CN=herald-admin', 'client');
  // Service-account token signing key (RS256, the most widely supported JWT algorithm).
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], pkiDir);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], pkiDir);
  return pki;
}

// ---------------------------------------------------------------------------------------------
// kubeconfigs

function b64file(p: string): string {
  return readFileSync(p).toString('base64');
}

function kubeconfigYaml(server: string, caCrt: string, userName: string, user: Record<string, string>): string {
  const userLines = Object.entries(user).map(([k, v]) => `    ${k}: ${v}`);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: herald-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64file(caCrt)}`,
    'users:',
    `- name: ${userName}`,
    '  user:',
    ...userLines,
    'contexts:',
    `- name: herald-local`,
    '  context:',
    '    cluster: herald-local',
    `    user: ${userName}`,
    'current-context: herald-local',
    '',
  ].join('\n');
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

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  died: Promise<unknown>,
  onDeath: () => Promise<string>,
): Promise<void> {
  let dead = false;
  void died.then(() => (dead = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (dead) throw new Error(`${what}: process exited during startup\n${await onDeath()}`);
    try {
      if (await check()) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms\n${await onDeath()}`);
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
  const ports = await choosePorts(dir, opts);
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const auditLogPath = path.join(dir, 'audit.log');
  const auditPolicyPath = path.join(dir, 'audit-policy.yaml');
  await writeFile(auditPolicyPath, AUDIT_POLICY);

  const ca = await readFile(pki.caCrt);
  const adminCert = await readFile(pki.adminCrt);
  const adminKey = await readFile(pki.adminKey);

  const procs: Proc[] = [];
  let watchdog: ChildProcess | undefined;
  const stopAll = async (): Promise<void> => {
    // apiserver first (it depends on etcd), then etcd.
    for (const p of [...procs].reverse()) await stopProc(p);
    if (watchdog?.pid !== undefined && watchdog.exitCode === null) {
      try {
        process.kill(watchdog.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };

  try {
    // etcd ------------------------------------------------------------------
    const etcdUrl = `http://127.0.0.1:${ports.etcd}`;
    const peerUrl = `http://127.0.0.1:${ports.etcdPeer}`;
    const etcd = startProc(
      'etcd',
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
      path.join(dir, 'logs', 'etcd.log'),
    );
    procs.push(etcd);
    watchdog = spawnWatchdog([etcd.child.pid ?? 0]);
    await waitFor(
      'etcd',
      async () => {
        const r = await request(`${etcdUrl}/health`, { timeoutMs: 2000 });
        return r.status === 200 && /"health":\s*"true"/.test(r.body);
      },
      30_000,
      etcd.exited,
      () => tail(etcd.logPath),
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
    const apiserver = startProc('kube-apiserver', apiserverBin, args, path.join(dir, 'logs', 'kube-apiserver.log'));
    procs.push(apiserver);
    watchdog.kill('SIGKILL');
    watchdog = spawnWatchdog(procs.map((p) => p.child.pid ?? 0));
    await waitFor(
      'kube-apiserver',
      async () => {
        const r = await request(`${server}/readyz`, { ca, cert: adminCert, key: adminKey, timeoutMs: 5000 });
        return r.status === 200 && r.body.trim() === 'ok';
      },
      90_000,
      Promise.race([apiserver.exited, etcd.exited]),
      async () => `--- kube-apiserver log:\n${await tail(apiserver.logPath)}\n--- etcd log:\n${await tail(etcd.logPath)}`,
    );
  } catch (e) {
    await stopAll();
    throw e;
  }

  const adminKubeconfig = path.join(dir, 'kubeconfigs', 'admin.kubeconfig');
  await writeFile(
    adminKubeconfig,
    kubeconfigYaml(server, pki.caCrt, 'herald-admin', {
      'client-certificate-data': b64file(pki.adminCrt),
      'client-key-data': b64file(pki.adminKey),
    }),
    { mode: 0o600 },
  );

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
      const file = path.join(dir, 'kubeconfigs', `sa-${namespace}-${name}.kubeconfig`);
      await writeFile(
        file,
        kubeconfigYaml(server, pki.caCrt, `system:serviceaccount:${namespace}:${name}`, { token }),
        { mode: 0o600 },
      );
      return file;
    },
  };
}
