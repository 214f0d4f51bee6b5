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
 * the reverse order. A service that exits while the platform runs is restarted with
 * backoff, as a pod would be (devenv/processes.ts RestartAlways, the stand-in for the
 * kubelet's restartPolicy); one that keeps crashing is reported and retried while the
 * rest keeps running. Nothing is deleted on stop: the next start over the same data
 * directory finds the Broadcasts (etcd) and the deliveries (PostgreSQL) it left.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createPool, startDatabase, type DatabaseServer } from '../lib/db/postgres.js';
import { migrate } from '../lib/db/migrate.js';
import { startBoss } from '../lib/queue.js';
import { installHeraldApi, OPERATOR_SA } from './cluster.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { writeKubeconfig } from './kubeconfig.js';
import { kubectlPath, mustKubectl, runKubectl, type RunResult } from './kubectl.js';
import { httpOk, waitFor } from './poll.js';
import { choosePorts } from './ports.js';
import { isAlive, RestartAlways, spawnWatchdog, startProcess, startTs, type ProcessOptions, type RestartOptions } from './processes.js';
import { DEMO_TENANTS, seedDemo, type SeedReport } from './seed-demo.js';
import { tenantNamespaceManifest } from '../lib/tenancy/namespace.js';

export { REPO } from './processes.js';
export { kubectlPath, runKubectl, type RunResult } from './kubectl.js';

export type ServiceName = 'simulator' | 'api' | 'worker' | 'operator';
const SERVICES: readonly ServiceName[] = ['simulator', 'api', 'worker', 'operator'];

/** The ports `npm start` prefers (the same the Kubernetes workloads use); a busy one is replaced by a free one. */
export const DEFAULT_PORTS = { api: 8080, worker: 8081, operator: 8082, simulator: 8090, simulatorFcm: 8091, postgres: 54329 } as const;
export type Ports = { -readonly [K in keyof typeof DEFAULT_PORTS]: number };

export { OPERATOR_SA } from './cluster.js';

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
   * How each service is run (undefined, or no option: `node --import tsx <file>` in the
   * repository). The built-image tests run the image's entrypoints from a built tree
   * (devenv/image-tree.ts); the previous-release test runs the previous commit's api and worker.
   */
  command?: (service: ServiceName, file: string) => { argv: string[]; cwd: string } | undefined;
  /** How a service that exits is restarted (default: RestartAlways's, 1 s doubling to 30 s). */
  restart?: Pick<RestartOptions, 'initialBackoffMs' | 'maxBackoffMs' | 'resetAfterMs'>;
  /** A service exited while the platform was running (not during stop); it is restarted after a backoff. */
  onUnexpectedExit?: (service: ServiceName, code: number | null, signal: NodeJS.Signals | null) => void;
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
  /** Each service's current pid (a restarted service has a new one). */
  readonly pids: Record<ServiceName, number>;
  /** Each service's restarts so far and whether it is crash-looping. */
  services(): Record<ServiceName, { pid: number; running: boolean; restarts: number; crashLooping: boolean }>;
  seeded?: SeedReport;
  controlPlane: ControlPlane;
  /**
   * The embedded PostgreSQL, to take it away and bring it back under running services
   * (a restart or failover as they see it: every connection ends with 57P01, the server
   * returns at the same address). With databaseUrl both throw: that server is not ours.
   */
  database: { stop(): Promise<void>; start(): Promise<void> };
  /** kubectl with the admin kubeconfig. */
  kubectl(args: string[], input?: string): Promise<RunResult>;
  /** Stop every service in reverse order, then the control plane and the database. Data stays. */
  stop(): Promise<void>;
}

function portWishes(mode: 'preferred' | 'free'): Record<keyof Ports, { preferred?: number }> {
  const keys = Object.keys(DEFAULT_PORTS) as (keyof Ports)[];
  return Object.fromEntries(keys.map((k) => [k, mode === 'preferred' ? { preferred: DEFAULT_PORTS[k] } : {}])) as Record<keyof Ports, { preferred?: number }>;
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
  return writeKubeconfig(path.join(dir, `sa-${OPERATOR_SA.namespace}-${OPERATOR_SA.name}.kubeconfig`), cp.server, { file: path.join(cp.dir, 'pki', 'ca.crt') }, {
    name: `system:serviceaccount:${OPERATOR_SA.namespace}:${OPERATOR_SA.name}`,
    credentials: { 'auth-provider': { name: 'tokenFile', config: { tokenFile } } },
  });
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
  const ports = await choosePorts(portWishes(o.ports ?? 'free'));

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

  const services: RestartAlways[] = [];
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
      await s.stop(grace[s.name as ServiceName]);
    }
    if (cp) {
      say('stopping kube-apiserver and etcd');
      await cp.stop();
    }
    if (database?.embedded) {
      say('stopping PostgreSQL');
      await database.stop().catch((e: Error) => say(`PostgreSQL stop: ${e.message}`));
    }
    await rm(pidFile, { force: true });
    await rm(ownerFile, { force: true });
  };

  try {
    // PostgreSQL ---------------------------------------------------------------------------
    say(o.databaseUrl ? 'PostgreSQL: using the given server' : `PostgreSQL: embedded, data in ${path.join(dataDir, 'postgres')}`);
    database = await startDatabase({ databaseUrl: o.databaseUrl, dataDir, port: ports.postgres });
    // Fast shutdown if this process dies.
    const pgPid = database.pid();
    if (pgPid) await notePid('INT', pgPid);
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
    await installHeraldApi(cp.adminKubeconfig);
    // Each demo tenant's namespace, bound to it (examples/ name them); the university may send urgent alerts.
    await mustKubectl(cp.adminKubeconfig, ['apply', '-f', '-'], DEMO_TENANTS.map((t) => tenantNamespaceManifest(t.id, { urgent: t.id === 'northfield-university' })).join('\n---\n'));
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
    const start = async (name: ServiceName, file: string, env: Record<string, string>): Promise<RestartAlways> => {
      const how = o.command?.(name, file);
      const [cmd, ...args] = how?.argv ?? [];
      if (how && !cmd) throw new Error(`${name}: empty command`);
      const s = new RestartAlways(
        (onUnexpectedExit) => {
          const options: ProcessOptions = {
            name,
            env: { ...common, ...env, ...o.env?.[name] },
            logFile: logDir ? path.join(logDir, `${name}.log`) : undefined,
            onLine: o.onLog && ((line: string) => o.onLog!(name, line)),
            onUnexpectedExit,
          };
          return how ? startProcess(cmd!, args, { ...options, cwd: how.cwd }) : startTs(file, options);
        },
        {
          ...o.restart,
          name,
          onStart: (p) => {
            notePid('TERM', p.pid).catch((e: Error) => say(`noting ${name}'s pid for the watchdog: ${e.message}`));
          },
          onExit: ({ exit, restarts, backoffMs, crashLooping, tail }) => {
            o.onUnexpectedExit?.(name, exit.code, exit.signal);
            const how = `code ${exit.code}, signal ${exit.signal}`;
            if (crashLooping) {
              const last = tail.trim() ? tail.split('\n').slice(-5).join('\n  ') : '(none)';
              say(`${name} is crash-looping (${how}; restart ${restarts}, next in ${backoffMs / 1000} s); the rest keeps running. Its last lines:\n  ${last}`);
            } else {
              say(`${name} exited unexpectedly (${how}); restarting in ${backoffMs / 1000} s (restart ${restarts})`);
            }
          },
        },
      );
      services.push(s);
      return s;
    };

    const sim = await start('simulator', 'services/simulator/main.ts', {
      HERALD_SIMULATOR_HOST: '127.0.0.1',
      HERALD_SIMULATOR_PORT: String(ports.simulator),
      HERALD_SIMULATOR_FCM_PORT: String(ports.simulatorFcm),
      // Inbound messages (STOP, HELP) go to the api; receipts go where each send asks (the same URL).
      HERALD_SIMULATOR_WEBHOOK_URL: webhookUrl,
    });
    await waitFor('simulator', () => httpOk(`${simulatorUrl}/_sim/health`), { timeoutMs: 60_000, process: sim });
    const simInfo = (await (await fetch(`${simulatorUrl}/_sim/info`)).json()) as { publicKey: string };

    const api = await start('api', 'services/api/main.ts', {
      HERALD_API_PORT: String(ports.api),
      HERALD_ADMIN_TOKEN_FILE: adminTokenFile,
      // Receipts and inbound STOPs are signed by the simulator's key; HELP replies go out through it.
      TELNYX_PUBLIC_KEY: simInfo.publicKey,
      TELNYX_BASE_URL: `${simulatorUrl}/v2`,
      HERALD_SHUTDOWN_GRACE_MS: '5000',
    });
    await waitFor('api', () => httpOk(`${apiUrl}/readyz`), { timeoutMs: 60_000, process: api });

    const worker = await start('worker', 'services/worker/main.ts', {
      HERALD_WORKER_PORT: String(ports.worker),
      HERALD_LANE: 'blue',
      HERALD_SIMULATOR_URL: simulatorUrl,
      HERALD_WEBHOOK_URL: webhookUrl,
      HERALD_SHUTDOWN_GRACE_MS: '10000',
    });
    await waitFor('worker', () => httpOk(`http://127.0.0.1:${ports.worker}/readyz`), { timeoutMs: 60_000, process: worker });

    const operator = await start('operator', 'operator/main.ts', {
      KUBECONFIG: operatorKubeconfig,
      HERALD_OPERATOR_PORT: String(ports.operator),
      // Resync and status refresh at the operator's defaults (operator/main.ts), which the
      // deployment keeps too: delivered counts from receipts that arrive after a Broadcast
      // completed show up at the next resync.
    });
    const operatorUrl = `http://127.0.0.1:${ports.operator}`;
    await waitFor('operator', () => httpOk(`${operatorUrl}/readyz`), { timeoutMs: 60_000, process: operator });
    // A previous operator that did not release its Lease (killed) holds it until it expires (15 s).
    await waitFor('operator leadership', () => httpOk(`${operatorUrl}/leader`, (j) => (j as { leader?: boolean }).leader === true), {
      timeoutMs: 60_000,
      process: operator,
    });
    say('all services healthy');

    for (const n of SERVICES) if (!services.some((s) => s.name === n)) throw new Error(`internal: ${n} not started`);
    const byName = (n: ServiceName) => services.find((s) => s.name === n)!;
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
      get pids() {
        return Object.fromEntries(SERVICES.map((n) => [n, byName(n).pid])) as Record<ServiceName, number>;
      },
      services: () =>
        Object.fromEntries(SERVICES.map((n) => {
          const s = byName(n);
          return [n, { pid: s.pid, running: s.running(), restarts: s.restarts, crashLooping: s.crashLooping }];
        })) as ReturnType<LocalPlatform['services']>,
      seeded,
      controlPlane: cp,
      database: {
        stop: async () => {
          if (!database?.embedded) throw new Error('the platform runs on DATABASE_URL: it cannot stop that server');
          say('PostgreSQL: stopping (fast shutdown)');
          await database.stop();
        },
        start: async () => {
          if (!database?.embedded) throw new Error('the platform runs on DATABASE_URL: it cannot start that server');
          await database.start();
          const pid = database.pid();
          if (pid) await notePid('INT', pid);
          say('PostgreSQL: started again');
        },
      },
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
  // A child's line is any JSON: an object prints as JSON, not "[object Object]" (a number as String would).
  const text = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
  const level = LEVELS[j.level as number] ?? text(j.level);
  const rest = Object.entries(j)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${t} ${level.padEnd(5)} ${text(j.msg)}${rest ? `  ${rest.length > 400 ? rest.slice(0, 400) + '…' : rest}` : ''}`;
}
