/**
 * Scheduled load test in one cluster: an in-cluster provider simulator (so the synthetic
 * tenant's sends never reach Telnyx or FCM), the load-test namespace, ServiceAccount and
 * Role from loadtests/k8s/loadtest-rbac.yaml (the file itself, parsed, not copied), the k6
 * script from loadtests/capacity.js (with the module it imports) as a ConfigMap, and a k6 CronJob in that namespace:
 * as that ServiceAccount (projected token + the API server's CA) it creates, lists and
 * deletes Broadcasts through the Kubernetes API, and with the synthetic tenant's api key
 * (Secret from External Secrets) it registers contacts through the api's Service.
 * A failed k6 threshold exits 99; with backoffLimit 0 and a pod failure policy the Job
 * fails at once. Suspended in standby regions.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { Cluster } from './cluster.js';
import { command } from './image-layout.js';
import { createManifests, loadManifestFiles, REPO_ROOT, type Manifest } from './operator-manifests.js';
import type { RegionContext } from './region.js';
import { TENANT_LABEL } from '../lib/tenancy/namespace.js';
import { LOADTEST_API_KEY_SECRET, LOADTEST_API_KEY_SECRET_KEY, loadTestApiKeySecret, type SecretDelivery } from './secrets.js';
import { image, NAMESPACE, podSpec, PORTS, RESOURCES, SIMULATOR_SERVICE } from './workloads.js';

export const K6_THRESHOLD_FAILED_EXIT_CODE = 99;
/** The k6 CronJob (its failed Jobs raise HeraldLoadTestFailed, platform/monitoring/alerts.ts). */
export const K6_CRONJOB = 'herald-k6-capacity';
export const LOADTEST_RBAC_FILE = 'loadtests/k8s/loadtest-rbac.yaml';
/** In-cluster address of the Kubernetes API (capacity.js: HERALD_KUBE_API). */
export const KUBE_API_URL = 'https://kubernetes.default.svc';
/** Where the k6 pod's projected service-account token, CA and namespace are mounted. */
export const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Longer than the Job's activeDeadlineSeconds: k6 reads the token once, at start. */
export const K6_TOKEN_EXPIRATION_SECONDS = 7200;
const K6_ACTIVE_DEADLINE_SECONDS = 3600;

export interface LoadTestRbac {
  manifests: Manifest[];
  /** The load-test namespace (the file's Namespace); everything else in the file lives in it. */
  namespace: string;
  /** The tenant the namespace is bound to (label herald.dev/tenant): the only one k6 may send as. */
  tenant: string;
  serviceAccountName: string;
}

/**
 * Reads loadtests/k8s/loadtest-rbac.yaml: one Namespace, a ServiceAccount in it, and only
 * namespaced RBAC (Role, RoleBinding) in it. Anything else is refused, not deployed.
 */
export function loadLoadTestRbac(root: string = REPO_ROOT): LoadTestRbac {
  const manifests = loadManifestFiles([LOADTEST_RBAC_FILE], root);
  const namespaces = manifests.filter((m) => m.kind === 'Namespace');
  if (namespaces.length !== 1) throw new Error(`${LOADTEST_RBAC_FILE}: needs exactly one Namespace, found ${namespaces.length}`);
  const namespace = namespaces[0]!.metadata.name;
  for (const m of manifests) {
    if (m.kind === 'Namespace') continue;
    if (!['ServiceAccount', 'Role', 'RoleBinding'].includes(m.kind)) {
      throw new Error(`${LOADTEST_RBAC_FILE}: ${m.kind} ${m.metadata.name} is not allowed (only Namespace, ServiceAccount, Role, RoleBinding)`);
    }
    if (m.metadata.namespace !== namespace) {
      throw new Error(`${LOADTEST_RBAC_FILE}: ${m.kind} ${m.metadata.name} must be in namespace ${namespace}`);
    }
  }
  const tenant = (namespaces[0]!.metadata.labels as Record<string, string> | undefined)?.[TENANT_LABEL];
  if (!tenant) throw new Error(`${LOADTEST_RBAC_FILE}: the Namespace needs the label ${TENANT_LABEL} (the synthetic tenant it may send as)`);
  const accounts = manifests.filter((m) => m.kind === 'ServiceAccount');
  if (accounts.length !== 1) throw new Error(`${LOADTEST_RBAC_FILE}: needs exactly one ServiceAccount, found ${accounts.length}`);
  return { manifests, namespace, tenant, serviceAccountName: accounts[0]!.metadata.name };
}

/**
 * The k6 script and every module it imports, directly or through another, by file name:
 * the ConfigMap's files (mounted together at /scripts). Imports must name files next to
 * the script (`./herald-env.js`); a missing file or one a ConfigMap cannot carry
 * (`../x.js`, `./lib/x.js`) is a clear error here, not a failed CronJob later.
 */
export function readLoadTestScripts(scriptPath: string, root: string = REPO_ROOT): Record<string, string> {
  const full = path.resolve(root, scriptPath);
  if (!existsSync(full)) {
    throw new Error(`herald:loadTest.scriptPath: k6 script ${scriptPath} not found (looked at ${full}); the k6 CronJob deploys it as a ConfigMap`);
  }
  const folder = path.dirname(full);
  const files: Record<string, string> = {};
  const add = (name: string, from: string) => {
    if (name in files) return;
    const file = path.join(folder, name);
    if (!existsSync(file)) throw new Error(`herald:loadTest.scriptPath: ${from} imports ./${name}, which is not next to it`);
    const text = readFileSync(file, 'utf8');
    files[name] = text;
    // import … from './x.js', import './x.js', with either quote; k6's own modules (k6/http) are not relative.
    for (const [, spec] of text.matchAll(/\b(?:from|import)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const m = /^\.\/([\w.-]+\.js)$/.exec(spec!);
      if (!m) throw new Error(`herald:loadTest.scriptPath: ${name} imports ${spec}; a k6 ConfigMap carries only modules next to the script (./name.js)`);
      add(m[1]!, name);
    }
  };
  add(path.basename(full), scriptPath);
  return files;
}

export interface LoadTestingArgs {
  ctx: RegionContext;
  cluster: Cluster;
  namespace: k8s.core.v1.Namespace;
  images: StackConfig['images'];
  loadTest: StackConfig['loadTest'];
  apiServiceUrl: string;
  secretDelivery: SecretDelivery;
}

export class LoadTesting extends pulumi.ComponentResource {
  /** The load-test namespace (loadtests/k8s/loadtest-rbac.yaml). */
  readonly namespace: string;
  readonly namespaces: pulumi.Resource[];

  constructor(name: string, args: LoadTestingArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:LoadTesting', name, {}, opts);
    const { ctx, cluster, images, loadTest } = args;
    const scriptFiles = readLoadTestScripts(loadTest.scriptPath);
    const rbac = loadLoadTestRbac();
    if (rbac.tenant !== loadTest.tenant) {
      throw new Error(`herald:loadTest.tenant is ${loadTest.tenant} but ${LOADTEST_RBAC_FILE} binds namespace ${rbac.namespace} to tenant ${rbac.tenant}: k6's Broadcasts would be refused`);
    }
    const k = (extra?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions => ({
      parent: this,
      provider: cluster.k8s,
      dependsOn: [args.namespace],
      ...extra,
    });
    const simLabels = { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': 'provider-simulator' };
    new k8s.apps.v1.Deployment(
      ctx.name('simulator'),
      {
        metadata: { name: SIMULATOR_SERVICE, namespace: NAMESPACE, labels: simLabels },
        spec: {
          replicas: 1,
          selector: { matchLabels: simLabels },
          template: {
            metadata: { labels: simLabels },
            spec: podSpec(
              {
                name: 'simulator',
                image: image(images, 'herald/simulator', images.simulatorTag),
                command: command('simulator'),
                port: PORTS.simulator,
                probes: { liveness: '/_sim/health', readiness: '/_sim/health' },
                resources: RESOURCES.simulator,
                env: [
                  { name: 'HERALD_SIMULATOR_PORT', value: String(PORTS.simulator) },
                  { name: 'HERALD_SIMULATOR_HOST', value: '0.0.0.0' },
                  // only what a provider answers, plus health and the public key / CA the workers fetch: nobody resets, reconfigures or aims it here
                  { name: 'HERALD_SIMULATOR_ADMIN_ROUTES', value: 'off' },
                ],
              },
              { automountServiceAccountToken: false },
            ),
          },
        },
      },
      k(),
    );
    new k8s.core.v1.Service(
      ctx.name('simulator'),
      {
        metadata: { name: SIMULATOR_SERVICE, namespace: NAMESPACE, labels: simLabels },
        spec: {
          type: 'ClusterIP',
          selector: simLabels,
          ports: [
            { name: 'http', port: 80, targetPort: 'http' }, // Telnyx API + /_sim admin
            { name: 'fcm', port: 443, targetPort: PORTS.simulator + 1 }, // FCM (TLS), HTTP port + 1
          ],
        },
      },
      k(),
    );
    // --- the load-test namespace, ServiceAccount and Role (loadtests/k8s/loadtest-rbac.yaml) ---
    const prefix = ctx.name('loadtest-rbac');
    const loadTestNamespace = createManifests(prefix, rbac.manifests.filter((m) => m.kind === 'Namespace'), k({ dependsOn: [] }));
    this.namespace = rbac.namespace;
    this.namespaces = loadTestNamespace;
    const identity = createManifests(prefix, rbac.manifests.filter((m) => m.kind !== 'Namespace'), k({ dependsOn: loadTestNamespace }));
    const apiKey = loadTestApiKeySecret(ctx, args.secretDelivery, rbac.namespace, k({ dependsOn: loadTestNamespace }));
    const scripts = new k8s.core.v1.ConfigMap(
      ctx.name('k6-scripts'),
      { metadata: { name: 'herald-k6-scripts', namespace: rbac.namespace }, data: scriptFiles },
      k({ dependsOn: loadTestNamespace }),
    );
    const k6Labels = { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': 'load-test' };
    const pod = podSpec(
      {
        name: 'k6',
        // k6 mirrored into the configured registry (e.g. an ECR pull-through cache), not pulled from Docker Hub
        image: image(images, 'grafana/k6', images.k6Tag),
        command: ['k6', 'run', '--no-usage-report', `/scripts/${path.basename(loadTest.scriptPath)}`],
        resources: RESOURCES.k6,
        env: [
          { name: 'HERALD_TENANT', value: loadTest.tenant },
          { name: 'HERALD_API_URL', value: args.apiServiceUrl },
          { name: 'HERALD_REGION', value: ctx.region },
          { name: 'HERALD_NAMESPACE', value: rbac.namespace },
          { name: 'HERALD_KUBE_API', value: KUBE_API_URL },
          { name: 'HERALD_KUBE_TOKEN_FILE', value: `${SERVICE_ACCOUNT_MOUNT}/token` },
          // k6 (Go) takes its TLS roots from SSL_CERT_FILE: the API server's CA
          { name: 'SSL_CERT_FILE', value: `${SERVICE_ACCOUNT_MOUNT}/ca.crt` },
          { name: 'HERALD_API_KEY', valueFrom: { secretKeyRef: { name: LOADTEST_API_KEY_SECRET, key: LOADTEST_API_KEY_SECRET_KEY } } },
        ],
        extraVolumes: [
          { name: 'scripts', mountPath: '/scripts', source: { configMap: { name: 'herald-k6-scripts' } } },
          {
            // the ServiceAccount's token, projected explicitly (automount stays off)
            name: 'kube-api-access',
            mountPath: SERVICE_ACCOUNT_MOUNT,
            source: {
              projected: {
                sources: [
                  { serviceAccountToken: { path: 'token', expirationSeconds: K6_TOKEN_EXPIRATION_SECONDS } },
                  { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                  { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
                ],
              },
            },
          },
        ],
      },
      { restartPolicy: 'Never', serviceAccountName: rbac.serviceAccountName, automountServiceAccountToken: false },
    );
    new k8s.batch.v1.CronJob(
      ctx.name('k6'),
      {
        metadata: { name: K6_CRONJOB, namespace: rbac.namespace, labels: k6Labels },
        spec: {
          schedule: loadTest.schedule,
          timeZone: 'Etc/UTC',
          concurrencyPolicy: 'Forbid',
          suspend: !ctx.isActive,
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 5,
          jobTemplate: {
            spec: {
              backoffLimit: 0,
              activeDeadlineSeconds: K6_ACTIVE_DEADLINE_SECONDS,
              podFailurePolicy: {
                rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [K6_THRESHOLD_FAILED_EXIT_CODE] } }],
              },
              template: { metadata: { labels: k6Labels }, spec: pod },
            },
          },
        },
      },
      k({ dependsOn: [...loadTestNamespace, ...identity, apiKey, scripts] }),
    );
    this.registerOutputs({});
  }
}
