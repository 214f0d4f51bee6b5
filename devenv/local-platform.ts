/**
 * The whole Herald platform on this machine, as `npm start` runs it and as the
 * end-to-end tests, the k6 runs and the operator benchmark start it:
 *
 *   PostgreSQL (embedded under <dataDir>/postgres, or DATABASE_URL) — migrated, demo data seeded
 *   kube-apiserver + etcd (<dataDir>/control-plane) with the Broadcast CRD and the operator's RBAC
 *   provider simulator   services/simulator/main.ts   receipts → the api's /webhooks/telnyx
 *   api                  services/api/main.ts         admin token in <dataDir>/admin-token
 *   worker (lane blue)   services/worker/main.ts      sends through the simulator
 *   operator             operator/main.ts             with its own ServiceAccount token
 *
 * Each service is a child process (`node --import tsx <file>`, so a signal reaches the
 * real process), started in that order once the one before is healthy, and stopped in
 * the reverse order. Nothing is deleted on stop: the next start over the same data
 * directory finds the Broadcasts (etcd) and the deliveries (PostgreSQL) it left.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createPool, startDatabase, type DatabaseServer } from '../lib/db/postgres.js';
import { migrate } from '../lib/db/migrate.js';
import { startBoss } from '../lib/queue.js';
import { startControlPlane, toolPath, type ControlPlane } from './control-plane.js';
import { seedDemo, type SeedReport } from './seed-demo.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export type ServiceName = 'simulator' | 'api' | 'worker' | 'operator';
const SERVICES: readonly ServiceName[] = ['simulator', 'api', 'worker', 'operator'];

/** The ports `npm start` prefers (the same the Kubernetes workloads use); a busy one is replaced by a free one. */
export const DEFAULT_PORTS = { api: 8080, worker: 8081, operator: 8082, simulator: 8090, simulatorFcm: 8091, postgres: 54329 } as const;
export type Ports = { -readonly [K in keyof typeof DEFAULT_PORTS]: number };

export const OPERATOR_SA = { namespace: 'herald-system', name: 'herald-operator' } as const;

export interface LocalPlatformOptions {
  /** Everything the platform keeps: postgres/, control-plane/, simulator/, logs/, admin-token. */
  dataDir: string;
  /** Use this PostgreSQL instead of an embedded server under dataDir. */
  databaseUrl?: string;
  /** 'preferred': DEFAULT_PORTS where free (npm start); 'free' (default): any free ports (tests). */
  ports?: 'preferred' | 'free';
  /** Where each service's log goes (raw JSON lines, appended); false: nowhere. Default <dataDir>/logs. */
  logDir?: string | false;
  /** Each log line, as it comes (start.ts prints them prefixed). */
  onLog?: (service: ServiceName | 'platform', line: string) => void;
  /** LOG_LEVEL of the services (default info). */
  logLevel?: string;
  /** Seed the demo tenants (default true). */
  seed?: boolean;
  /** Extra environment per service (e.g. HERALD_ACCOUNT_SMS_PER_SECOND for the worker). */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  /**
   * How each service is run (default: `node --import tsx <file>` in the repository). The
   * built-image tests run the image's entrypoints from a built tree (devenv/image-tree.ts).
   */
  command?: (service: ServiceName, file: string) => { argv: string[]; cwd: string };
  /** A service exited while the platform was running (not during stop). */
  onUnexpectedExit?: (service: ServiceName, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LocalPlatform {
  dataDir: string;
  /** system:masters kubeconfig (what a person exports as KUBECONFIG). */
  kubeconfig: string;
  /** The operator's ServiceAccount token kubeconfig. */
  operatorKubeconfig: string;
  /** https://127.0.0.1:<port> */
  kubeServer: string;
  /** The control plane's CA certificate (PEM file). */
  kubeCaFile: string;
  kubectlPath: string;
  apiUrl: string;
  simulatorUrl: string;
  adminToken: string;
  adminTokenFile: string;
  databaseUrl: string;
  ports: Ports;
  pids: Record<ServiceName, number>;
  seeded?: SeedReport;
  controlPlane: ControlPlane;
  /** kubectl with the admin kubeconfig. */
  kubectl(args: string[], input?: string): Promise<RunResult>;
  /** Stop every service in reverse order, then the control plane and the database. Data stays. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Ports

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function choosePorts(mode: 'preferred' | 'free'): Promise<Ports> {
  const taken = new Set<number>();
  const pick = async (preferred: number): Promise<number> => {
    if (mode === 'preferred' && !taken.has(preferred) && (await isPortFree(preferred))) {
      taken.add(preferred);
      return preferred;
    }
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  const out = {} as Ports;
  for (const k of Object.keys(DEFAULT_PORTS) as (keyof Ports)[]) out[k] = await pick(DEFAULT_PORTS[k]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface Service {
  name: ServiceName;
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines it printed, for an error message. */
  tail(): string;
  stopping: boolean;
}

const sourceCommand = (_: ServiceName, file: string) => ({ argv: [process.execPath, '--import', 'tsx', path.join(REPO, file)], cwd: REPO });

function spawnService(
  name: ServiceName,
  how: { argv: string[]; cwd: string },
  env: Record<string, string>,
  sinks: { file?: WriteStream; onLog?: LocalPlatformOptions['onLog'] },
  onUnexpectedExit?: LocalPlatformOptions['onUnexpectedExit'],
): Service {
  const [cmd, ...args] = how.argv;
  if (!cmd) throw new Error(`${name}: empty command`);
  const child = spawn(cmd, args, {
    cwd: how.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${how.argv.join(' ')})`);
  const last: string[] = [];
  const onLine = (line: string) => {
    last.push(line);
    if (last.length > 40) last.shift();
    sinks.file?.write(line + '\n');
    sinks.onLog?.(name, line);
  };
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
  const svc: Service = {
    name,
    child,
    pid: child.pid,
    tail: () => last.join('\n'),
    stopping: false,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (!svc.stopping) onUnexpectedExit?.(name, code, signal);
        resolve({ code, signal });
      });
    }),
  };
  return svc;
}

async function stopService(s: Service, graceMs: number): Promise<void> {
  s.stopping = true;
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), graceMs);
  await s.exited;
  clearTimeout(timer);
}

/**
 * A detached shell that outlives this process only to clean up after it: if this
 * process disappears without stopping the platform (SIGKILL, a crashed test runner),
 * it sends each line's signal to each pid listed in `pidFile` ("SIGNAL PID"), then
 * SIGKILLs what is left. It exits by itself when the file is removed (a clean stop).
 */
function spawnWatchdog(pidFile: string): ChildProcess {
  const script = [
    'parent=$1; file=$2',
    'while kill -0 "$parent" 2>/dev/null; do [ -f "$file" ] || exit 0; sleep 1; done',
    '[ -f "$file" ] || exit 0',
    'while read sig pid; do kill -"$sig" "$pid" 2>/dev/null; done < "$file"',
    'sleep 10',
    'while read sig pid; do kill -KILL "$pid" 2>/dev/null; done < "$file"',
    'rm -f "$file"',
  ].join('\n');
  const w = spawn('sh', ['-c', script, 'herald-local-watchdog', String(process.pid), pidFile], { detached: true, stdio: 'ignore' });
  w.unref();
  return w;
}

// ---------------------------------------------------------------------------------------------
// Health

async function waitHealthy(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; service?: Service },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = '';
  for (;;) {
    const s = opts.service;
    if (s && (s.child.exitCode !== null || s.child.signalCode !== null)) {
      throw new Error(`${what} exited during startup (code ${s.child.exitCode}, signal ${s.child.signalCode}):\n${s.tail()}`);
    }
    try {
      if (await check()) return;
    } catch (e) {
      lastError = (e as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} not healthy after ${opts.timeoutMs} ms${lastError ? ` (${lastError})` : ''}${s ? `:\n${s.tail()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function httpOk(url: string, body?: (json: unknown) => boolean): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  if (!res.ok) {
    await res.body?.cancel();
    return false;
  }
  if (!body) {
    await res.body?.cancel();
    return true;
  }
  return body(await res.json());
}

// ---------------------------------------------------------------------------------------------

export function kubectlPath(): string {
  return toolPath('kubectl');
}

export function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(kubectlPath(), ['--kubeconfig', kubeconfig, ...args], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

const TOKEN_TTL = '24h';
const TOKEN_REFRESH_MS = 6 * 3600_000;

/**
 * The operator's kubeconfig: its ServiceAccount's token, read from a file that is
 * replaced with a fresh token every 6 hours (tokens last 24), the way a pod's projected
 * token is rotated; @kubernetes/client-node re-reads a tokenFile every minute, so an
 * `npm start` left running for days keeps a working operator.
 */
async function operatorCredentials(cp: ControlPlane, kubectl: (args: string[]) => Promise<RunResult>): Promise<string> {
  const dir = path.join(cp.dir, 'kubeconfigs');
  const tokenFile = path.join(dir, `sa-${OPERATOR_SA.namespace}-${OPERATOR_SA.name}.token`);
  const r = await kubectl(['create', 'token', OPERATOR_SA.name, '-n', OPERATOR_SA.namespace, `--duration=${TOKEN_TTL}`]);
  if (r.code !== 0) throw new Error(`kubectl create token ${OPERATOR_SA.name}: ${r.stderr}`);
  await writeFile(`${tokenFile}.tmp`, r.stdout.trim(), { mode: 0o600 });
  await rename(`${tokenFile}.tmp`, tokenFile);
  const file = path.join(dir, `sa-${OPERATOR_SA.namespace}-${OPERATOR_SA.name}.kubeconfig`);
  const user = `system:serviceaccount:${OPERATOR_SA.namespace}:${OPERATOR_SA.name}`;
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: herald-local',
      '  cluster:',
      `    server: ${cp.server}`,
      `    certificate-authority: ${path.join(cp.dir, 'pki', 'ca.crt')}`,
      'users:',
      `- name: ${user}`,
      '  user:',
      '    auth-provider:',
      '      name: tokenFile',
      '      config:',
      `        tokenFile: ${tokenFile}`,
      'contexts:',
      '- name: herald-local',
      '  context:',
      '    cluster: herald-local',
      `    user: ${user}`,
      'current-context: herald-local',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return file;
}

async function loadOrCreateAdminToken(file: string): Promise<string> {
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t) return t;
  }
  const token = `herald-admin-${randomBytes(24).toString('base64url')}`;
  await writeFile(file, token + '\n', { mode: 0o600 });
  return token;
}

export async function startLocalPlatform(o: LocalPlatformOptions): Promise<LocalPlatform> {
  const dataDir = path.resolve(o.dataDir);
  await mkdir(dataDir, { recursive: true });
  const logDir = o.logDir === false ? undefined : path.resolve(o.logDir ?? path.join(dataDir, 'logs'));
  if (logDir) await mkdir(logDir, { recursive: true });
  const say = (line: string) => o.onLog?.('platform', line);
  const ports = await choosePorts(o.ports ?? 'free');

  const runDir = path.join(dataDir, 'run');
  await mkdir(runDir, { recursive: true });
  // One platform per data directory: PostgreSQL and etcd each lock theirs.
  const ownerFile = path.join(runDir, 'platform.pid');
  const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8').trim()) : 0;
  if (owner > 0 && owner !== process.pid && isAlive(owner)) {
    throw new Error(`a Herald platform is already running from ${dataDir} (pid ${owner}); stop it first (Ctrl-C in its terminal, or kill ${owner})`);
  }
  await writeFile(ownerFile, `${process.pid}\n`);
  const pidFile = path.join(runDir, `children-${process.pid}.pids`);
  const pidLines: string[] = [];
  const notePid = async (signal: string, pid: number) => {
    pidLines.push(`${signal} ${pid}`);
    await writeFile(pidFile, pidLines.join('\n') + '\n');
  };
  await writeFile(pidFile, '');
  spawnWatchdog(pidFile);

  const services: Service[] = [];
  const files: WriteStream[] = [];
  let database: DatabaseServer | undefined;
  let cp: ControlPlane | undefined;
  let stopped: Promise<void> | undefined;
  let tokenRefresh: NodeJS.Timeout | undefined;

  const stopAll = async (): Promise<void> => {
    clearInterval(tokenRefresh);
    // Reverse order: operator, worker, api, simulator; then the API server, then PostgreSQL.
    const grace: Record<ServiceName, number> = { operator: 15_000, worker: 20_000, api: 15_000, simulator: 5_000 };
    for (const s of [...services].reverse()) {
      say(`stopping ${s.name} (pid ${s.pid})`);
      await stopService(s, grace[s.name]);
    }
    if (cp) {
      say('stopping kube-apiserver and etcd');
      await cp.stop();
    }
    if (database?.embedded) {
      say('stopping PostgreSQL');
      await database.stop().catch((e: Error) => say(`PostgreSQL stop: ${e.message}`));
    }
    for (const f of files) f.end();
    await rm(pidFile, { force: true });
    await rm(ownerFile, { force: true });
  };

  try {
    // PostgreSQL ---------------------------------------------------------------------------
    say(o.databaseUrl ? 'PostgreSQL: using the given server' : `PostgreSQL: embedded, data in ${path.join(dataDir, 'postgres')}`);
    database = await startDatabase({ databaseUrl: o.databaseUrl, dataDir, port: ports.postgres });
    if (database.embedded) {
      const pm = path.join(dataDir, 'postgres', 'postmaster.pid');
      const pgPid = Number(readFileSync(pm, 'utf8').split('\n')[0]);
      if (pgPid > 0) await notePid('INT', pgPid); // fast shutdown if this process dies
    }
    const pool = createPool(database.url, 2, 'local-platform');
    let seeded: SeedReport | undefined;
    try {
      await migrate(pool);
      // pg-boss's schema once, here, rather than by three services racing for it.
      const boss = await startBoss(database.url, { supervise: false, schedule: false });
      await boss.stop({ graceful: false });
      if (o.seed !== false) seeded = await seedDemo(pool);
    } finally {
      await pool.end();
    }
    const databaseUrl = database.url;

    // Control plane ------------------------------------------------------------------------
    say('kube-apiserver and etcd: starting');
    cp = await startControlPlane({ dir: path.join(dataDir, 'control-plane') });
    const kubectl = (args: string[], input?: string) => runKubectl(cp!.adminKubeconfig, args, input);
    const must = async (args: string[], input?: string) => {
      const r = await kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr || r.stdout}`);
      return r;
    };
    await must(['apply', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${OPERATOR_SA.namespace}\n`);
    await must(['apply', '-f', path.join(REPO, 'operator/config/crd/broadcasts.herald.dev.yaml')]);
    await must(['apply', '-f', path.join(REPO, 'operator/config/rbac')]);
    await must(['wait', '--for=condition=Established', '--timeout=60s', 'crd/broadcasts.herald.dev']);
    // Established is not served yet: the new resource's storage answers 429 for a moment.
    await waitHealthy('Broadcast storage', async () => (await kubectl(['get', 'broadcasts', '-A', '--request-timeout=5s'])).code === 0, { timeoutMs: 60_000 });
    const operatorKubeconfig = await operatorCredentials(cp, kubectl);
    tokenRefresh = setInterval(() => {
      operatorCredentials(cp!, kubectl).catch((e: Error) => say(`refreshing the operator's token failed: ${e.message}`));
    }, TOKEN_REFRESH_MS);
    tokenRefresh.unref();
    say(`kube-apiserver: ${cp.server} (CRD and operator RBAC applied)`);

    // Services -----------------------------------------------------------------------------
    const adminTokenFile = path.join(dataDir, 'admin-token');
    const adminToken = await loadOrCreateAdminToken(adminTokenFile);
    const apiUrl = `http://127.0.0.1:${ports.api}`;
    const simulatorUrl = `http://127.0.0.1:${ports.simulator}`;
    const webhookUrl = `${apiUrl}/webhooks/telnyx`;
    const common: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      LOG_LEVEL: o.logLevel ?? 'info',
      DATABASE_URL: databaseUrl,
      HERALD_DATA_DIR: dataDir,
    };
    const start = async (name: ServiceName, file: string, env: Record<string, string>): Promise<Service> => {
      const logFile = logDir ? createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' }) : undefined;
      if (logFile) files.push(logFile);
      const s = spawnService(name, (o.command ?? sourceCommand)(name, file), { ...common, ...env, ...o.env?.[name] }, { file: logFile, onLog: o.onLog }, o.onUnexpectedExit);
      services.push(s);
      await notePid('TERM', s.pid);
      return s;
    };

    const sim = await start('simulator', 'services/simulator/main.ts', {
      HERALD_SIMULATOR_HOST: '127.0.0.1',
      HERALD_SIMULATOR_PORT: String(ports.simulator),
      HERALD_SIMULATOR_FCM_PORT: String(ports.simulatorFcm),
      // Inbound messages (STOP, HELP) go to the api; receipts go where each send asks (the same URL).
      HERALD_SIMULATOR_WEBHOOK_URL: webhookUrl,
    });
    await waitHealthy('simulator', () => httpOk(`${simulatorUrl}/_sim/health`), { timeoutMs: 60_000, service: sim });
    const simInfo = (await (await fetch(`${simulatorUrl}/_sim/info`)).json()) as { publicKey: string };

    const api = await start('api', 'services/api/main.ts', {
      HERALD_API_PORT: String(ports.api),
      HERALD_ADMIN_TOKEN_FILE: adminTokenFile,
      // Receipts and inbound STOPs are signed by the simulator's key; HELP replies go out through it.
      TELNYX_PUBLIC_KEY: simInfo.publicKey,
      TELNYX_BASE_URL: `${simulatorUrl}/v2`,
      HERALD_SHUTDOWN_GRACE_MS: '5000',
    });
    await waitHealthy('api', () => httpOk(`${apiUrl}/readyz`), { timeoutMs: 60_000, service: api });

    const worker = await start('worker', 'services/worker/main.ts', {
      HERALD_WORKER_PORT: String(ports.worker),
      HERALD_LANE: 'blue',
      HERALD_SIMULATOR_URL: simulatorUrl,
      HERALD_WEBHOOK_URL: webhookUrl,
      HERALD_SHUTDOWN_GRACE_MS: '10000',
    });
    await waitHealthy('worker', () => httpOk(`http://127.0.0.1:${ports.worker}/readyz`), { timeoutMs: 60_000, service: worker });

    const operator = await start('operator', 'operator/main.ts', {
      KUBECONFIG: operatorKubeconfig,
      HERALD_OPERATOR_PORT: String(ports.operator),
      // Resync (30 s) and status refresh (5 s) as deployed: delivered counts from receipts
      // that arrive after a Broadcast completed show up at the next resync.
    });
    const operatorUrl = `http://127.0.0.1:${ports.operator}`;
    await waitHealthy('operator', () => httpOk(`${operatorUrl}/readyz`), { timeoutMs: 60_000, service: operator });
    // A previous operator that did not release its Lease (killed) holds it until it expires (15 s).
    await waitHealthy('operator leadership', () => httpOk(`${operatorUrl}/leader`, (j) => (j as { leader?: boolean }).leader === true), {
      timeoutMs: 60_000,
      service: operator,
    });
    say('all services healthy');

    const pids = Object.fromEntries(services.map((s) => [s.name, s.pid])) as Record<ServiceName, number>;
    for (const n of SERVICES) if (!pids[n]) throw new Error(`internal: ${n} not started`);
    return {
      dataDir,
      kubeconfig: cp.adminKubeconfig,
      operatorKubeconfig,
      kubeServer: cp.server,
      kubeCaFile: path.join(cp.dir, 'pki', 'ca.crt'),
      kubectlPath: kubectlPath(),
      apiUrl,
      simulatorUrl,
      adminToken,
      adminTokenFile,
      databaseUrl,
      ports,
      pids,
      seeded,
      controlPlane: cp,
      kubectl,
      stop: () => (stopped ??= stopAll()),
    };
  } catch (err) {
    await stopAll().catch(() => {});
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Log lines for people: pino JSON → "HH:MM:SS LEVEL message key=value ..."

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

export function formatLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const t = typeof j.time === 'number' ? new Date(j.time).toISOString().slice(11, 23) : '';
  const level = LEVELS[j.level as number] ?? String(j.level ?? '');
  const rest = Object.entries(j)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${t} ${level.padEnd(5)} ${String(j.msg ?? '')}${rest ? `  ${rest.length > 400 ? rest.slice(0, 400) + '…' : rest}` : ''}`;
}

/** Read the admin token file (for scripts that talk to a running platform). */
export async function readAdminToken(dataDir: string): Promise<string> {
  return (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
}
