/**
 * Herald on the local node: the Kubernetes half of the Pulumi program (rendered under
 * Pulumi's mocks for the staging stack, the active region's objects, as
 * platform/dry-run.test.ts renders them) made local:
 *   - no AWS: each ExternalSecret becomes the plain Secret it would have written (same
 *     name, namespace and keys), and the ClusterSecretStore goes;
 *   - images `local/herald/<target>:<tag>` built here (devenv/node/herald-images.ts);
 *   - the host's embedded PostgreSQL (listening on the node's bridge address) as the database;
 *   - no provider credentials: every send goes to the simulator pod, whose signing key
 *     and FCM certificate come from a Secret so the api knows its public key;
 *   - no Ingress controller, no KEDA here (their objects go; workers run 1 replica);
 *   - CPU requests divided by LOCAL_CPU_REQUEST_DIVISOR so every pod fits on two cores
 *     (requests only place pods; the limits, which the load tests check, are kept).
 * Applied in the program's order: everything but the workers, the migration Job complete,
 * then the workers (Pulumi's dependsOn).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createPool, startDatabase, type DatabaseServer } from '../../lib/db/postgres.js';
import { applyTenantNamespaces } from '../tenant-namespaces.js';
import { DEMO_TENANTS, seedDemo } from '../seed-demo.js';
import type { Manifest } from '../../platform/operator-manifests.js';
import { renderKubernetesManifests } from '../../platform/testing/mocked-run.js';
import { createSigningKey, signingKeySeed } from '../../services/simulator/webhooks.js';
import { generateFcmCertificate } from '../../services/simulator/simulator.js';
import type { Cluster } from './cluster.js';
import { buildHeraldImages, LOCAL_REGISTRY } from './herald-images.js';
import { BRIDGE_ADDRESS, POD_CIDR } from './runtime.js';

export const LOCAL_CPU_REQUEST_DIVISOR = 5;
const STACK = 'staging';
// Kinds whose controllers the node does not run: External Secrets (its Secrets are written
// here instead), KEDA, an ingress controller, and the Prometheus operator (PodMonitor,
// PrometheusRule: platform/monitoring, applied in a cluster with kube-prometheus-stack).
const DROPPED_KINDS = new Set(['ExternalSecret', 'ClusterSecretStore', 'SecretStore', 'ScaledObject', 'TriggerAuthentication', 'Ingress', 'PodMonitor', 'ServiceMonitor', 'PrometheusRule']);
const SIMULATOR_KEYS_SECRET = 'herald-simulator-keys';
const API_URL = 'http://herald-api.herald.svc.cluster.local';
const WEBHOOK_URL = `${API_URL}/webhooks/telnyx`;
const SIMULATOR_URL = 'http://herald-provider-simulator.herald.svc.cluster.local';

type Obj = Record<string, any>;

export interface LocalValues {
  tag: string;
  /** As pods reach it (the bridge address). */
  databaseUrl: string;
  adminToken: string;
  simulatorSeed: string;
  simulatorPublicKey: string;
  fcmTls: { key: string; cert: string };
  loadTestApiKey: string;
}

function cpuMillis(v: string): number {
  return v.endsWith('m') ? Number(v.slice(0, -1)) : Number(v) * 1000;
}

function podSpecs(m: Obj): Obj[] {
  if (m.kind === 'Deployment' || m.kind === 'Job') return [m.spec.template.spec];
  if (m.kind === 'CronJob') return [m.spec.jobTemplate.spec.template.spec];
  return [];
}

function setEnv(container: Obj, name: string, value: string): void {
  container.env = [...(container.env ?? []).filter((e: Obj) => e.name !== name), { name, value }];
}

/** The staging program's objects for the active region, made local (see the module comment). */
export function localizeManifests(rendered: Manifest[], v: LocalValues): Manifest[] {
  const out: Obj[] = [];
  const secrets = new Map<string, Obj>();
  for (const original of rendered as Obj[]) {
    const m = structuredClone(original);
    if (m.kind === 'ExternalSecret') {
      const keys: string[] = m.spec.target?.template?.data ? Object.keys(m.spec.target.template.data) : m.spec.data.map((d: Obj) => d.secretKey);
      const name = m.spec.target?.name ?? m.metadata.name;
      const data: Record<string, string> = {};
      for (const k of keys) data[k] = secretValue(name, k, v);
      secrets.set(`${m.metadata.namespace}/${name}`, { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: m.metadata.namespace }, type: 'Opaque', stringData: data });
      continue;
    }
    if (DROPPED_KINDS.has(m.kind)) continue;
    for (const spec of podSpecs(m)) {
      for (const c of spec.containers as Obj[]) {
        c.image = localImage(c.image, v.tag);
        const cpu = c.resources?.requests?.cpu;
        if (cpu) c.resources.requests.cpu = `${Math.max(10, Math.round(cpuMillis(cpu) / LOCAL_CPU_REQUEST_DIVISOR))}m`;
        const component = m.spec?.template?.metadata?.labels?.['app.kubernetes.io/component'] ?? '';
        if (component === 'worker') setEnv(c, 'HERALD_WEBHOOK_URL', WEBHOOK_URL);
        if (component === 'api') setEnv(c, 'TELNYX_BASE_URL', `${SIMULATOR_URL}/v2`);
        if (component === 'provider-simulator') {
          setEnv(c, 'HERALD_SIMULATOR_WEBHOOK_URL', WEBHOOK_URL);
          // A cluster's simulator serves no admin routes; on this node the tests are its
          // operator, and count what it received through them.
          setEnv(c, 'HERALD_SIMULATOR_ADMIN_ROUTES', 'on');
          c.volumeMounts = [...(c.volumeMounts ?? []), { name: 'simulator-keys', mountPath: '/tmp/herald/simulator', readOnly: true }];
          spec.volumes = [...(spec.volumes ?? []), { name: 'simulator-keys', secret: { secretName: SIMULATOR_KEYS_SECRET, defaultMode: 0o440 } }];
        }
      }
    }
    out.push(m);
  }
  const namespaces = out.filter((m) => m.kind === 'Namespace');
  const rest = out.filter((m) => m.kind !== 'Namespace');
  const simulatorKeys = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: SIMULATOR_KEYS_SECRET, namespace: 'herald' },
    type: 'Opaque',
    stringData: { 'webhook-signing.seed': v.simulatorSeed, 'fcm-tls.key': v.fcmTls.key, 'fcm-tls.crt': v.fcmTls.cert },
  };
  return [...namespaces, ...secrets.values(), simulatorKeys, ...rest] as Manifest[];
}

function localImage(image: string, tag: string): string {
  const herald = /(?:^|\/)herald\/([\w-]+):/.exec(image);
  if (herald) return `${LOCAL_REGISTRY}/herald/${herald[1]}:${tag}`;
  if (/(^|\/)grafana\/k6:/.test(image)) return `${LOCAL_REGISTRY}/herald/k6:${tag}`;
  throw new Error(`localize: no local image for ${image}`);
}

function secretValue(secret: string, key: string, v: LocalValues): string {
  const values: Record<string, string> = {
    DATABASE_URL: v.databaseUrl,
    // no provider credentials: the api and workers send through the simulator
    'telnyx-api-key': '',
    'fcm-service-account.json': '',
    'telnyx-public-key': v.simulatorPublicKey,
    'herald-admin-token': v.adminToken,
    'api-key': v.loadTestApiKey,
  };
  const value = values[key];
  if (value === undefined) throw new Error(`localize: no local value for key ${key} of Secret ${secret}`);
  return value;
}

export interface HeraldOnNode {
  manifests: Manifest[];
  values: LocalValues;
  database: DatabaseServer;
  /** The database as the host reaches it. */
  hostDatabaseUrl: string;
  /** Applies the manifests (again), optionally with another image tag. */
  apply(manifests: Manifest[]): Promise<void>;
  stop(): Promise<void>;
}

async function loadOrCreate(file: string, make: () => Promise<string> | string): Promise<string> {
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const v = await make();
  await writeFile(file, v + '\n', { mode: 0o600 });
  return v;
}

/** Local values kept in dir across runs (tokens, the simulator's keys). */
async function localValues(dir: string, tag: string, databaseUrl: string): Promise<LocalValues> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const seed = await loadOrCreate(path.join(dir, 'simulator-webhook-signing.seed'), () => signingKeySeed(createSigningKey()));
  const tlsFile = path.join(dir, 'simulator-fcm-tls.json');
  const tls = JSON.parse(await loadOrCreate(tlsFile, async () => JSON.stringify(await generateFcmCertificate()))) as { key: string; cert: string };
  return {
    tag,
    databaseUrl,
    adminToken: await loadOrCreate(path.join(dir, 'admin-token'), () => randomBytes(24).toString('base64url')),
    simulatorSeed: seed,
    simulatorPublicKey: createSigningKey(seed).publicKey,
    fcmTls: tls,
    loadTestApiKey: await loadOrCreate(path.join(dir, 'loadtest-api-key'), () => ''),
  };
}

export async function renderLocalManifests(values: LocalValues): Promise<Manifest[]> {
  const byRegion = await renderKubernetesManifests(STACK);
  // The active (writer) region is the one with the migration Job.
  const active = [...byRegion.values()].find((list) => list.some((m) => m.kind === 'Job'));
  if (!active) throw new Error(`the ${STACK} stack renders no region with a migration Job`);
  return localizeManifests(active, values);
}

export async function kubectlApply(cluster: Cluster, manifests: Manifest[]): Promise<void> {
  await cluster.node.kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=herald-local', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }));
}

/** Waits for Deployments (all given) to finish their rollout. */
export async function waitRolledOut(cluster: Cluster, deployments: Manifest[], timeout = '300s'): Promise<void> {
  for (const d of deployments) {
    await cluster.node.kubectl(['-n', d.metadata.namespace!, 'rollout', 'status', `deployment/${d.metadata.name}`, `--timeout=${timeout}`]).catch(async (e: Error) => {
      const pods = await cluster.node.kubectl(['-n', d.metadata.namespace!, 'get', 'pods', '-o', 'wide']).catch(() => '');
      throw new Error(`${e.message}\n${pods}`);
    });
  }
}

const isWorker = (m: Manifest) => m.kind === 'Deployment' && /^herald-worker-/.test(m.metadata.name);

export async function deployHerald(
  cluster: Cluster,
  o: { dir: string; repo: string; tag?: string; log?: (line: string) => void; /** Seed the demo tenants after the migration (default true, as npm start). */ seed?: boolean },
): Promise<HeraldOnNode> {
  const log = o.log ?? (() => undefined);
  const tag = o.tag ?? 'dev';
  log(`images (tag ${tag})`);
  const built = await buildHeraldImages({ repo: o.repo, dir: path.join(o.dir, 'images'), tag, log });
  await cluster.node.importImages(built.layout);

  log(`PostgreSQL (embedded, on ${BRIDGE_ADDRESS} for the pods)`);
  const portFile = path.join(o.dir, 'postgres-port');
  const { freePort } = await import('../ports.js');
  const port = Number(await loadOrCreate(portFile, async () => String(await freePort())));
  const database = await startDatabase({ dataDir: o.dir, port, listen: { addresses: [BRIDGE_ADDRESS], allow: [POD_CIDR] } });
  const podDatabaseUrl = database.url.replace('127.0.0.1', BRIDGE_ADDRESS);
  const values = await localValues(path.join(o.dir, 'secrets'), tag, podDatabaseUrl);
  const manifests = await renderLocalManifests(values);

  let seeded = false;
  const apply = async (list: Manifest[]): Promise<void> => {
    const first = list.filter((m) => !isWorker(m));
    await kubectlApply(cluster, first);
    const job = list.find((m) => m.kind === 'Job');
    if (job) {
      log(`migration Job ${job.metadata.name}`);
      await cluster.node
        .kubectl(['-n', job.metadata.namespace!, 'wait', '--for=condition=Complete', `job/${job.metadata.name}`, '--timeout=300s'])
        .catch(async (e: Error) => {
          const logs = await cluster.node.kubectl(['-n', job.metadata.namespace!, 'logs', `job/${job.metadata.name}`]).catch(() => '');
          throw new Error(`${e.message}\n${logs}`);
        });
      if (o.seed !== false && !seeded) {
        const pool = createPool(database.url, 2, 'seed-demo');
        try {
          await seedDemo(pool);
        } finally {
          await pool.end();
        }
        seeded = true;
        // as npm start: each demo tenant's namespace, bound to it (examples/ name them)
        await applyTenantNamespaces(cluster.node.kubectl, DEMO_TENANTS.map((t) => ({ id: t.id, urgent: t.id === 'northfield-university' })));
      }
    }
    await kubectlApply(cluster, list.filter(isWorker));
    log('waiting for every Deployment to be Ready');
    await waitRolledOut(cluster, list.filter((m) => m.kind === 'Deployment'));
  };
  try {
    await apply(manifests);
  } catch (e) {
    await database.stop();
    throw e;
  }
  return { manifests, values, database, hostDatabaseUrl: database.url, apply, stop: () => database.stop() };
}
