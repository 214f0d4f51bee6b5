/**
 * The local platform running the workers' Release, as `npm run release -- --target local`
 * finds it without a node: devenv/local-platform.ts with the operator reconciling Releases
 * (HERALD_RECONCILE_RELEASES), the KEDA ScaledObject CRD stand-in, both color Deployments
 * and ScaledObjects in herald-system (what the Pulumi program creates in a cluster), and
 * the worker STAND-IN (devenv/worker-standin.ts) turning them into worker processes. The
 * platform's own worker runs in a lane that does not exist, so it claims nothing: the
 * stand-in's workers are the colors'. Used by scripts/release-e2e.test.ts and bench/rollout.ts.
 */
import path from 'node:path';
import { dump } from 'js-yaml';
import type { PgBoss } from 'pg-boss';
import { createPool, type Pool } from '../lib/db/postgres.js';
import { createLogger } from '../lib/logger.js';
import { startBoss } from '../lib/queue.js';
import { planOccurrence } from '../core/delivery/plan.js';
import { seedBroadcast, seedContacts } from '../core/delivery/testing/fixtures.js';
import { KubeClient } from '../operator/kube-client.js';
import type { Release } from '../operator/api/v1alpha1/release.js';
import { mustKubectl, type RunResult } from './kubectl.js';
import { startLocalPlatform, type LocalPlatform, type LocalPlatformOptions } from './local-platform.js';
import { waitFor } from './poll.js';
import { REPO, startProcess } from './processes.js';
import { colorManifests, WorkerStandIn } from './worker-standin.js';

export const RELEASE_NAMESPACE = 'herald-system';
/** The tenant the k6 scripts send as (loadtests/herald-env.js), the one a preview serves. */
export const SYNTHETIC_TENANT = 'k6-synthetic';

export interface ReleasePlatform {
  platform: LocalPlatform;
  pool: Pool;
  boss: PgBoss;
  standIn: WorkerStandIn;
  /** A color's Deployment with this container env (as a changed Secret or config would give it). */
  setColorEnv(color: string, env: Record<string, string>): Promise<void>;
  /** The Release as it is now. */
  release(): Promise<Release>;
  /** A broadcast of `count` new contacts of this tenant, planned now; its id. */
  sendAs(tenant: string, count: number): Promise<string>;
  /** Wait until no row of the broadcast waits or is in flight; its rows by status. */
  settled(broadcastId: string): Promise<Record<string, number>>;
  /**
   * `npm run release -- --target local --version <v>` against this platform (its own
   * kubeconfig, api and data directory), as a child process; its exit code and output.
   */
  runRelease(version: string, o?: { env?: Record<string, string>; timeout?: string; onLine?: (line: string) => void }): Promise<RunResult>;
  stop(): Promise<void>;
}

export interface ReleasePlatformOptions extends Pick<LocalPlatformOptions, 'dataDir' | 'databaseUrl' | 'logLevel'> {
  /** The Release's spec as first applied (without version and image; the API server fills in defaults). */
  release: Record<string, unknown>;
  /** The version blue runs before any release. */
  initialVersion: string;
  /** Environment every stand-in worker gets, under its Deployment's env. */
  workerEnv?: Record<string, string>;
  /** Both colors' Deployment env at first (a color's own configuration; setColorEnv changes it). */
  colorEnv?: Record<string, string>;
}

export async function startReleasePlatform(o: ReleasePlatformOptions): Promise<ReleasePlatform> {
  const platform = await startLocalPlatform({
    dataDir: o.dataDir,
    databaseUrl: o.databaseUrl,
    ports: 'free',
    seed: false,
    logLevel: o.logLevel ?? 'warn',
    // The platform's own worker serves no color: a lane that does not exist claims nothing
    // (it hands back what it fetches). Stopping it is no use: the platform restarts it.
    env: { operator: { HERALD_RECONCILE_RELEASES: 'true' }, worker: { HERALD_LANE: 'no-color' } },
  });
  let standIn: WorkerStandIn | undefined;
  let pool: Pool | undefined;
  let boss: PgBoss | undefined;
  const stop = async () => {
    await standIn?.stop();
    await boss?.stop({ graceful: false }).catch(() => {});
    await pool?.end().catch(() => {});
    await platform.stop();
  };
  try {
    const kubeconfig = platform.kubeconfig;
    await mustKubectl(kubeconfig, ['apply', '-f', path.join(REPO, 'devenv/standin/scaledobjects.keda.sh.yaml')]);
    await mustKubectl(kubeconfig, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/scaledobjects.keda.sh']);
    await mustKubectl(kubeconfig, ['apply', '-f', '-'], [...colorManifests('blue', 1, o.colorEnv), ...colorManifests('green', 0, o.colorEnv)].map((m) => dump(m)).join('---\n'));
    pool = createPool(platform.databaseUrl, 4, 'release-platform');
    boss = await startBoss(platform.databaseUrl, { supervise: false });
    standIn = new WorkerStandIn({
      kube: KubeClient.fromFile(kubeconfig),
      log: createLogger('stand-in', o.logLevel ?? 'warn'),
      logDir: path.join(platform.dataDir, 'logs'),
      intervalMs: 300,
      baseEnv: {
        DATABASE_URL: platform.databaseUrl,
        HERALD_DATA_DIR: platform.dataDir,
        HERALD_SIMULATOR_URL: platform.simulatorUrl,
        TELNYX_BASE_URL: `${platform.simulatorUrl}/v2`,
        HERALD_WEBHOOK_URL: `${platform.apiUrl}/webhooks/telnyx`,
        LOG_LEVEL: o.logLevel ?? 'warn',
        ...o.workerEnv,
      },
    });
    standIn.start();
    const release = async () =>
      JSON.parse((await mustKubectl(kubeconfig, ['get', 'release', 'workers', '-n', RELEASE_NAMESPACE, '-o', 'json'])).stdout) as Release;
    const manifest = {
      apiVersion: 'herald.dev/v1alpha1', kind: 'Release', metadata: { name: 'workers', namespace: RELEASE_NAMESPACE },
      spec: { ...o.release, version: o.initialVersion, image: `docker.io/local/herald-worker:${o.initialVersion}` },
    };
    await mustKubectl(kubeconfig, ['apply', '-f', '-'], dump(manifest));
    await waitFor(`${o.initialVersion} adopted on blue`, async () => {
      const r = await release();
      return r.status?.phase === 'Healthy' && r.status.stableVersion === o.initialVersion;
    }, { timeoutMs: 120_000 });
    await waitFor('a ready blue worker', async () =>
      (await pool!.query(`SELECT 1 FROM workers WHERE lane = 'blue' AND version = $1 AND ready AND stopped_at IS NULL`, [o.initialVersion])).rowCount! > 0, { timeoutMs: 120_000 });
    let offset = 0;
    return {
      platform, pool, boss, standIn, release,
      async sendAs(tenant, count) {
        offset += 100_000;
        const tag = `r${offset}`;
        await seedContacts(pool!, tenant, count, { tags: [tag], offset });
        const b = await seedBroadcast(pool!, { tenantId: tenant, audience: { segment: { tags: [tag] } } });
        await planOccurrence(pool!, boss!, { broadcastId: b.id, key: 'once', scheduledAt: new Date() }, new Date());
        return b.id;
      },
      settled: (broadcastId) =>
        waitFor(`broadcast ${broadcastId} settled`, async () => {
          const { rows } = await pool!.query<{ status: string; n: number }>('SELECT status, count(*)::int n FROM deliveries WHERE broadcast_id = $1 GROUP BY 1', [broadcastId]);
          const c = Object.fromEntries(rows.map((r) => [r.status, r.n]));
          return !c.queued && !c.sending && !c.retry ? c : undefined;
        }, { timeoutMs: 300_000, everyMs: 500 }),
      async setColorEnv(color, env) {
        // The worker is the Deployment's one container; the operator's image and version annotation stay.
        const patch = [{ op: 'add', path: '/spec/template/spec/containers/0/env', value: Object.entries(env).map(([name, value]) => ({ name, value })) }];
        await mustKubectl(kubeconfig, ['patch', 'deployment', `herald-worker-${color}`, '-n', RELEASE_NAMESPACE, '--type', 'json', '-p', JSON.stringify(patch)]);
      },
      async runRelease(version, r = {}) {
        const out: string[] = [];
        const child = startProcess(process.execPath, [
          '--import', 'tsx', path.join(REPO, 'scripts/release.ts'),
          '--target', 'local', '--version', version, '--timeout', r.timeout ?? '10m',
          '--kubeconfig', kubeconfig, '--api-url', platform.apiUrl, '--data-dir', platform.dataDir,
        ], {
          name: `release-${version}`,
          // As CI runs it: plain lines, not a progress line.
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', CI: 'true', ...r.env },
          onLine: (line) => {
            out.push(line);
            r.onLine?.(line);
          },
        });
        const exit = await child.exited;
        return { code: exit.code ?? 1, stdout: out.join('\n'), stderr: '' };
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
