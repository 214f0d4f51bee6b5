/**
 * Herald inside one cluster: the operator's CRD and RBAC (its own files), the operator
 * (two replicas, leader election), the api (Deployment, Service, Ingress), the migration
 * Job that must finish before workers roll, workers in two colors (blue, green) scaled by
 * KEDA on pg-boss queue depth, and Pod disruption budgets. In a standby region the workers
 * stay at zero with scaling paused until `failover.activeRegion` names that region.
 */
import { createHash } from 'node:crypto';
import * as k8s from '@pulumi/kubernetes';
import type * as k8sInput from '@pulumi/kubernetes/types/input.js';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { Cluster } from './cluster.js';
import { DATABASE_CA_CONFIGMAP, DATABASE_CA_FILE, DATABASE_CA_MOUNT, databaseCaBundle } from './database.js';
import { command } from './image-layout.js';
import { INGRESS_CLASS, type Ingress } from './ingress.js';
import { createManifests, type OperatorManifests } from './operator-manifests.js';
import type { RegionContext } from './region.js';
import type { SecretKey } from './config.js';
import { CONSUMER_CREDENTIALS, PROVIDER_CREDENTIAL_FILES, consumerSecret, externalSecretFor, type Consumer, type SecretDelivery } from './secrets.js';

export const NAMESPACE = 'herald';
export const KEDA_CHART_VERSION = '2.17.2';
export const WORKER_COLORS = ['blue', 'green'] as const;
export type WorkerColor = (typeof WORKER_COLORS)[number];
export const PORTS = { api: 8080, worker: 8081, operator: 8082, simulator: 8090 } as const;
export const QUEUE_DEPTH_QUERY =
  "SELECT count(*) FROM pgboss.job WHERE name='herald-deliver' AND state IN ('created','retry')";
export const SECRET_MOUNT = '/var/run/secrets/herald';
export const SIMULATOR_SERVICE = 'herald-provider-simulator';
/** Pods in Herald's namespaces must satisfy the restricted Pod Security Standard (the API server refuses others). */
export const POD_SECURITY_LABELS = {
  'pod-security.kubernetes.io/enforce': 'restricted',
  'pod-security.kubernetes.io/enforce-version': 'latest',
  'pod-security.kubernetes.io/warn': 'restricted',
  'pod-security.kubernetes.io/audit': 'restricted',
} as const;
/**
 * What the public load balancer routes to the api: the tenant API, the signed provider
 * webhooks, and Route 53's health check (which reaches /readyz through the ALB and reads
 * only ready / not ready). /admin, /metrics and the rest answer in-cluster only.
 */
export const PUBLIC_PATHS = [
  { path: '/v1', pathType: 'Prefix' },
  { path: '/webhooks', pathType: 'Prefix' },
  { path: '/readyz', pathType: 'Exact' },
] as const;

type Resources = k8sInput.core.v1.ResourceRequirements;
export const RESOURCES = {
  api: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  worker: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  operator: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
  migrate: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  // the simulator answers for every provider at once in a load test: at 500m its probes time out under a 1,500-recipient send on the local node
  simulator: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
  k6: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } },
} satisfies Record<string, Resources>;

/** registry/repository:tag, or registry/repository@sha256:... when the "tag" is a digest. */
/** Fields of a worker color's Deployment that the Release controller (image, version) and KEDA (replicas) own. */
export const WORKER_OPERATOR_FIELDS = ['spec.replicas', 'spec.template.spec.containers[0].image', 'spec.template.metadata.annotations'];
/** Fields of a worker color's ScaledObject that the Release controller owns. */
export const SCALER_OPERATOR_FIELDS = ['spec.minReplicaCount', 'spec.maxReplicaCount'];

export function image(images: StackConfig['images'], repository: string, tag: string): string {
  return `${images.registry ? `${images.registry.replace(/\/$/, '')}/` : ''}${repository}${tag.startsWith('sha256:') ? '@' : ':'}${tag}`;
}

export const restrictedSecurityContext: k8sInput.core.v1.SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 1000,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

const secretEnv = (name: string, secret: string, key: string): k8sInput.core.v1.EnvVar => ({
  name,
  valueFrom: { secretKeyRef: { name: secret, key } },
});

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  port?: number;
  env?: k8sInput.core.v1.EnvVar[];
  resources: Resources;
  /** Mount these provider credential files of the consumer's own Secret. */
  credentials?: { consumer: Consumer; files: readonly SecretKey[] };
  /** true: /healthz + /readyz on the http port; or explicit paths. */
  probes?: boolean | { liveness: string; readiness: string };
  /** Mount the database's CA bundle (its DATABASE_URL names it: sslmode=verify-full). */
  databaseCa?: boolean;
  /** Further read-only volumes: mount path -> volume source. */
  extraVolumes?: { name: string; mountPath: string; source: Omit<k8sInput.core.v1.Volume, 'name'> }[];
}

/** A pod spec with Herald's defaults: restricted security context, /tmp, limits, probes. */
export function podSpec(c: ContainerSpec, extra: Partial<k8sInput.core.v1.PodSpec> = {}): k8sInput.core.v1.PodSpec {
  const mounts: k8sInput.core.v1.VolumeMount[] = [{ name: 'tmp', mountPath: '/tmp' }];
  const volumes: k8sInput.core.v1.Volume[] = [{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }];
  if (c.databaseCa) {
    mounts.push({ name: 'database-ca', mountPath: DATABASE_CA_MOUNT, readOnly: true });
    volumes.push({ name: 'database-ca', configMap: { name: DATABASE_CA_CONFIGMAP } });
  }
  if (c.credentials && c.credentials.files.length > 0) {
    const items = c.credentials.files.map((key) => ({ key: PROVIDER_CREDENTIAL_FILES[key], path: PROVIDER_CREDENTIAL_FILES[key] }));
    mounts.push({ name: 'provider-credentials', mountPath: SECRET_MOUNT, readOnly: true });
    volumes.push({ name: 'provider-credentials', secret: { secretName: consumerSecret(c.credentials.consumer), items, defaultMode: 0o440 } });
  }
  for (const v of c.extraVolumes ?? []) {
    mounts.push({ name: v.name, mountPath: v.mountPath, readOnly: true });
    volumes.push({ name: v.name, ...v.source });
  }
  const probe = (path: string, failureThreshold: number): k8sInput.core.v1.Probe => ({
    httpGet: { path, port: 'http' },
    periodSeconds: 10,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const probes = c.probes === true ? { liveness: '/healthz', readiness: '/readyz' } : c.probes || undefined;
  return {
    securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
    // Service links would put HERALD_API_PORT=tcp://... (from the herald-api Service) into
    // every pod of the namespace, and the config reads HERALD_API_PORT as a port number.
    enableServiceLinks: false,
    ...extra,
    containers: [
      {
        name: c.name,
        image: c.image,
        command: c.command,
        ports: c.port ? [{ name: 'http', containerPort: c.port }] : undefined,
        env: [{ name: 'HOME', value: '/tmp' }, ...(c.env ?? [])],
        resources: c.resources,
        securityContext: restrictedSecurityContext,
        volumeMounts: mounts,
        livenessProbe: probes ? probe(probes.liveness, 3) : undefined,
        readinessProbe: probes ? probe(probes.readiness, 2) : undefined,
      },
    ],
    volumes,
  };
}

export interface WorkloadsArgs {
  ctx: RegionContext;
  cluster: Cluster;
  operator: OperatorManifests;
  secretDelivery: SecretDelivery;
  ingress: Ingress;
  images: StackConfig['images'];
  api: StackConfig['api'];
  workers: StackConfig['workers'];
  syntheticTenant: string;
  /** Load testing on: the provider simulator runs and the synthetic tenant's sends go to it. */
  simulator: boolean;
}

export class Workloads extends pulumi.ComponentResource {
  readonly namespace: k8s.core.v1.Namespace;
  /** Herald's own namespaces here (the api's and the operator's). */
  readonly namespaces: k8s.core.v1.Namespace[];
  /** DNS name of the api's load balancer (from the Ingress status). */
  readonly apiLoadBalancerHostname: pulumi.Output<string>;
  readonly apiServiceUrl = `http://herald-api.${NAMESPACE}.svc.cluster.local`;

  constructor(name: string, args: WorkloadsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Workloads', name, {}, opts);
    const { ctx, cluster, images } = args;
    const k = (extra?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions => ({ parent: this, provider: cluster.k8s, ...extra });
    const labels = (component: string, extra: Record<string, string> = {}) => ({
      'app.kubernetes.io/name': 'herald',
      'app.kubernetes.io/component': component,
      'app.kubernetes.io/managed-by': 'pulumi',
      ...extra,
    });

    // --- namespaces, operator CRD + RBAC (the operator's files) ----------------------
    const namespaceLabels = { ...labels('namespace'), ...POD_SECURITY_LABELS };
    this.namespace = new k8s.core.v1.Namespace(ctx.name('ns'), { metadata: { name: NAMESPACE, labels: namespaceLabels } }, k());
    const namespaces = [this.namespace];
    const operatorNamespaceDeclared = args.operator.manifests.some((m) => m.kind === 'Namespace' && m.metadata.name === args.operator.namespace);
    if (args.operator.namespace !== NAMESPACE && !operatorNamespaceDeclared) {
      namespaces.push(
        new k8s.core.v1.Namespace(ctx.name('operator-ns'), { metadata: { name: args.operator.namespace, labels: namespaceLabels } }, k()),
      );
    }
    this.namespaces = namespaces;
    const operatorObjects = createManifests(ctx.name('operator'), args.operator.manifests, k({ dependsOn: namespaces }));

    const secretOpts = k({ dependsOn: [...namespaces, ...operatorObjects] });
    const consumerNamespace: Record<Consumer, string> = { api: NAMESPACE, worker: NAMESPACE, migrate: NAMESPACE, keda: NAMESPACE, operator: args.operator.namespace };
    const externalSecrets = (Object.keys(consumerNamespace) as Consumer[]).map((c) => externalSecretFor(ctx, args.secretDelivery, c, consumerNamespace[c], secretOpts));
    // the CA bundle every DATABASE_URL verifies the database's certificate against
    const databaseCa = [...new Set([NAMESPACE, args.operator.namespace])].map(
      (ns) =>
        new k8s.core.v1.ConfigMap(
          ctx.name(`database-ca-${ns}`),
          { metadata: { name: DATABASE_CA_CONFIGMAP, namespace: ns, labels: labels('database-ca') }, data: { [DATABASE_CA_FILE]: databaseCaBundle() } },
          k({ dependsOn: namespaces }),
        ),
    );
    const before = [...namespaces, ...externalSecrets, ...databaseCa, ...args.ingress.ready];

    // --- common environment -----------------------------------------------------------
    const baseEnv = (consumer: Consumer): k8sInput.core.v1.EnvVar[] => [
      secretEnv('DATABASE_URL', consumerSecret(consumer), 'DATABASE_URL'),
      { name: 'HERALD_STACK', value: ctx.stack },
      { name: 'HERALD_REGION', value: ctx.region },
      // Through RDS Proxy, named prepared statements would pin every client session to one server connection.
      { name: 'HERALD_DB_PREPARED_STATEMENTS', value: 'false' },
    ];
    const credentialEnv: Record<SecretKey, string> = {
      telnyxApiKey: 'TELNYX_API_KEY_FILE',
      telnyxPublicKey: 'TELNYX_PUBLIC_KEY_FILE',
      fcmServiceAccount: 'FCM_SERVICE_ACCOUNT_FILE',
      adminToken: 'HERALD_ADMIN_TOKEN_FILE',
    };
    // a consumer's credential files, mounted, and the *_FILE variables naming them
    const credentials = (consumer: Consumer) => {
      const files = CONSUMER_CREDENTIALS[consumer];
      return {
        mount: { consumer, files },
        env: files.map((key) => ({ name: credentialEnv[key], value: `${SECRET_MOUNT}/${PROVIDER_CREDENTIAL_FILES[key]}` })),
      };
    };
    const providerEnv: k8sInput.core.v1.EnvVar[] = [
      // the synthetic (load-test) tenant never reaches a real provider
      ...(args.simulator
        ? [
            { name: 'HERALD_SIMULATED_TENANTS', value: args.syntheticTenant },
            { name: 'HERALD_SIMULATOR_URL', value: `http://${SIMULATOR_SERVICE}.${NAMESPACE}.svc.cluster.local` },
          ]
        : []),
    ];
    const apiCredentials = credentials('api');
    const workerCredentials = credentials('worker');

    // --- operator -----------------------------------------------------------------------
    const operatorLabels = labels('operator');
    new k8s.apps.v1.Deployment(
      ctx.name('operator'),
      {
        metadata: { name: 'herald-operator', namespace: args.operator.namespace, labels: operatorLabels },
        spec: {
          replicas: 2,
          selector: { matchLabels: operatorLabels },
          template: {
            metadata: { labels: operatorLabels },
            spec: podSpec(
              {
                name: 'operator',
                image: image(images, 'herald/operator', images.operatorTag),
                command: command('operator'),
                port: PORTS.operator,
                probes: true,
                databaseCa: true,
                resources: RESOURCES.operator,
                env: [
                  ...baseEnv('operator'),
                  { name: 'HERALD_OPERATOR_PORT', value: String(PORTS.operator) },
                  // leader election: one Lease in the operator's namespace, identity = pod name
                  { name: 'HERALD_LEASE_NAMESPACE', value: args.operator.namespace },
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
              },
              { serviceAccountName: args.operator.serviceAccountName, topologySpreadConstraints: spread(operatorLabels) },
            ),
          },
        },
      },
      k({ dependsOn: [...before, ...operatorObjects] }),
    );
    disruptionBudget(ctx, 'operator', args.operator.namespace, operatorLabels, { minAvailable: 1 }, k({ dependsOn: namespaces }));

    // --- api -----------------------------------------------------------------------------
    const apiLabels = labels('api');
    new k8s.apps.v1.Deployment(
      ctx.name('api'),
      {
        metadata: { name: 'herald-api', namespace: NAMESPACE, labels: apiLabels },
        spec: {
          replicas: args.api.replicas,
          selector: { matchLabels: apiLabels },
          template: {
            metadata: { labels: apiLabels },
            spec: podSpec(
              {
                name: 'api',
                image: image(images, 'herald/api', images.apiTag),
                command: command('api'),
                port: PORTS.api,
                probes: true,
                databaseCa: true,
                credentials: apiCredentials.mount,
                resources: RESOURCES.api,
                env: [...baseEnv('api'), ...apiCredentials.env, ...providerEnv, { name: 'HERALD_API_PORT', value: String(PORTS.api) }],
              },
              { automountServiceAccountToken: false, topologySpreadConstraints: spread(apiLabels) },
            ),
          },
        },
      },
      k({ dependsOn: before }),
    );
    const apiService = new k8s.core.v1.Service(
      ctx.name('api'),
      {
        metadata: { name: 'herald-api', namespace: NAMESPACE, labels: apiLabels },
        spec: { type: 'ClusterIP', selector: apiLabels, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
      },
      k({ dependsOn: before }),
    );
    disruptionBudget(ctx, 'api', NAMESPACE, apiLabels, { minAvailable: 1 }, k({ dependsOn: namespaces }));
    const ingress = new k8s.networking.v1.Ingress(
      ctx.name('api'),
      {
        metadata: {
          name: 'herald-api',
          namespace: NAMESPACE,
          labels: apiLabels,
          annotations: {
            'alb.ingress.kubernetes.io/scheme': 'internet-facing',
            'alb.ingress.kubernetes.io/target-type': 'ip',
            'alb.ingress.kubernetes.io/listen-ports': '[{"HTTPS":443}]',
            'alb.ingress.kubernetes.io/certificate-arn': args.ingress.certificateArn,
            'alb.ingress.kubernetes.io/ssl-policy': 'ELBSecurityPolicy-TLS13-1-2-2021-06',
            'alb.ingress.kubernetes.io/healthcheck-path': '/readyz',
          },
        },
        spec: {
          ingressClassName: INGRESS_CLASS,
          tls: [{ hosts: args.ingress.hostnames }],
          rules: args.ingress.hostnames.map((host) => ({
            host,
            http: { paths: PUBLIC_PATHS.map((p) => ({ ...p, backend: { service: { name: 'herald-api', port: { name: 'http' } } } })) },
          })),
        },
      },
      k({ dependsOn: [...before, apiService] }),
    );
    // The Ingress's status, read as possibly absent: the load balancer controller fills it in later.
    this.apiLoadBalancerHostname = ingress.status.apply((s: { loadBalancer?: { ingress?: { hostname?: string }[] } } | undefined) => {
      const host = s?.loadBalancer?.ingress?.[0]?.hostname;
      if (!host) throw new Error(`${ctx.name('api')}: the Ingress has no load balancer hostname`);
      return host;
    });

    // --- migrations (writer region only), then workers ----------------------------------
    const workerDeps: pulumi.Resource[] = [...before];
    if (ctx.isActive) {
      const tagHash = createHash('sha256').update(images.apiTag).digest('hex').slice(0, 10);
      const migrateLabels = labels('migrate');
      workerDeps.push(
        new k8s.batch.v1.Job(
          ctx.name('migrate'),
          {
            metadata: { name: `herald-migrate-${tagHash}`, namespace: NAMESPACE, labels: migrateLabels },
            spec: {
              backoffLimit: 2,
              activeDeadlineSeconds: 900,
              template: {
                metadata: { labels: migrateLabels },
                spec: podSpec(
                  {
                    name: 'migrate',
                    image: image(images, 'herald/api', images.apiTag),
                    command: command('migrate'),
                    databaseCa: true,
                    resources: RESOURCES.migrate,
                    env: baseEnv('migrate'),
                  },
                  { restartPolicy: 'Never', automountServiceAccountToken: false },
                ),
              },
            },
          },
          // Pulumi waits for the Job to complete (activeDeadlineSeconds is 15 min)
          k({ dependsOn: before, customTimeouts: { create: '20m', update: '20m' } }),
        ),
      );
    }

    const keda = new k8s.helm.v3.Release(
      ctx.name('keda'),
      {
        name: 'keda',
        chart: 'keda',
        version: KEDA_CHART_VERSION,
        repositoryOpts: { repo: 'https://kedacore.github.io/charts' },
        namespace: 'keda',
        createNamespace: true,
        atomic: true,
        values: {
          resources: {
            operator: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
            metricServer: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } },
            webhooks: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
          },
        },
      },
      k(),
    );
    const triggerAuth = new k8s.apiextensions.CustomResource(
      ctx.name('keda-database'),
      {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'TriggerAuthentication',
        metadata: { name: 'herald-database', namespace: NAMESPACE },
        spec: { secretTargetRef: [{ parameter: 'connection', name: consumerSecret('keda'), key: 'DATABASE_URL' }] },
      },
      k({ dependsOn: [keda, ...before] }),
    );

    for (const color of WORKER_COLORS) {
      const tag = color === 'blue' ? images.workerBlueTag : images.workerGreenTag;
      const workerLabels = labels('worker', { 'herald.dev/lane': color });
      const deployment = new k8s.apps.v1.Deployment(
        ctx.name(`worker-${color}`),
        {
          metadata: { name: `herald-worker-${color}`, namespace: NAMESPACE, labels: workerLabels },
          spec: {
            // active: KEDA owns the replica count; standby: held at zero
            replicas: ctx.isActive ? undefined : 0,
            selector: { matchLabels: workerLabels },
            strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' } },
            template: {
              metadata: { labels: workerLabels },
              spec: podSpec(
                {
                  name: 'worker',
                  image: image(images, 'herald/worker', tag),
                  command: command('worker'),
                  port: PORTS.worker,
                  probes: true,
                  databaseCa: true,
                  credentials: workerCredentials.mount,
                  resources: RESOURCES.worker,
                  env: [...baseEnv('worker'), ...workerCredentials.env, ...providerEnv, { name: 'HERALD_LANE', value: color }, { name: 'HERALD_WORKER_PORT', value: String(PORTS.worker) }],
                },
                { automountServiceAccountToken: false, terminationGracePeriodSeconds: 60, topologySpreadConstraints: spread(workerLabels) },
              ),
            },
          },
        },
        // One writer per field: the Release controller sets a color's image and version
        // annotation, KEDA its replicas; `pulumi up` must not put them back.
        k({ dependsOn: workerDeps, ignoreChanges: WORKER_OPERATOR_FIELDS }),
      );
      disruptionBudget(ctx, `worker-${color}`, NAMESPACE, workerLabels, { maxUnavailable: 1 }, k({ dependsOn: namespaces }));
      new k8s.apiextensions.CustomResource(
        ctx.name(`worker-${color}-scaler`),
        {
          apiVersion: 'keda.sh/v1alpha1',
          kind: 'ScaledObject',
          metadata: {
            name: `herald-worker-${color}`,
            namespace: NAMESPACE,
            labels: workerLabels,
            // standby region: scaling paused at zero until failover makes this region active
            annotations: ctx.isActive ? {} : { 'autoscaling.keda.sh/paused-replicas': '0' },
          },
          spec: {
            scaleTargetRef: { name: `herald-worker-${color}` },
            minReplicaCount: args.workers.minReplicas,
            maxReplicaCount: args.workers.maxReplicas,
            pollingInterval: 15,
            cooldownPeriod: 300,
            triggers: [
              {
                type: 'postgresql',
                metadata: { query: QUEUE_DEPTH_QUERY, targetQueryValue: String(args.workers.queueDepthPerReplica), activationTargetQueryValue: '0' },
                authenticationRef: { name: 'herald-database' },
              },
            ],
          },
        },
        // The Release controller sets a color's min/max (0 for an idle color; paused replicas
        // are its annotation, which Pulumi sets only in a standby region).
        k({ dependsOn: [keda, triggerAuth, deployment], ignoreChanges: SCALER_OPERATOR_FIELDS }),
      );
    }
    this.registerOutputs({ apiLoadBalancerHostname: this.apiLoadBalancerHostname });
  }
}

function disruptionBudget(
  ctx: RegionContext,
  component: string,
  namespace: string,
  selector: Record<string, string>,
  budget: { minAvailable?: number; maxUnavailable?: number },
  opts: pulumi.CustomResourceOptions,
): k8s.policy.v1.PodDisruptionBudget {
  return new k8s.policy.v1.PodDisruptionBudget(
    ctx.name(`${component}-pdb`),
    { metadata: { name: `herald-${component}`, namespace }, spec: { ...budget, selector: { matchLabels: selector } } },
    opts,
  );
}

function spread(labels: Record<string, string>): k8sInput.core.v1.TopologySpreadConstraint[] {
  return [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: labels } }];
}
