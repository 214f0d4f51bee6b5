/**
 * Scheduled load test in one cluster: an in-cluster provider simulator (so the synthetic
 * tenant's sends never reach Telnyx or FCM), the k6 script from loadtests/capacity.js as a
 * ConfigMap, and a k6 CronJob against the api with the synthetic tenant. A failed k6
 * threshold exits 99; with backoffLimit 0 and a pod failure policy the Job fails at once.
 * Suspended in standby regions.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from './config.js';
import type { Cluster } from './cluster.js';
import { REPO_ROOT } from './operator-manifests.js';
import type { RegionContext } from './region.js';
import { image, NAMESPACE, podSpec, PORTS, RESOURCES, SIMULATOR_SERVICE } from './workloads.js';

export const K6_THRESHOLD_FAILED_EXIT_CODE = 99;

/** Reads the k6 script; a missing file is a clear error, not an empty ConfigMap. */
export function readLoadTestScript(scriptPath: string, root: string = REPO_ROOT): string {
  const full = path.resolve(root, scriptPath);
  if (!existsSync(full)) {
    throw new Error(`herald:loadTest.scriptPath: k6 script ${scriptPath} not found (looked at ${full}); the k6 CronJob deploys it as a ConfigMap`);
  }
  return readFileSync(full, 'utf8');
}

export interface LoadTestingArgs {
  ctx: RegionContext;
  cluster: Cluster;
  namespace: k8s.core.v1.Namespace;
  images: StackConfig['images'];
  loadTest: StackConfig['loadTest'];
  apiServiceUrl: string;
}

export class LoadTesting extends pulumi.ComponentResource {
  constructor(name: string, args: LoadTestingArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:LoadTesting', name, {}, opts);
    const { ctx, cluster, images, loadTest } = args;
    const script = readLoadTestScript(loadTest.scriptPath);
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
                port: PORTS.simulator,
                probes: { liveness: '/_sim/health', readiness: '/_sim/health' },
                resources: RESOURCES.simulator,
                env: [
                  { name: 'HERALD_SIMULATOR_PORT', value: String(PORTS.simulator) },
                  { name: 'HERALD_SIMULATOR_HOST', value: '0.0.0.0' },
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
          selector: simLabels,
          ports: [
            { name: 'http', port: 80, targetPort: 'http' }, // Telnyx API + /_sim admin
            { name: 'fcm', port: 443, targetPort: PORTS.simulator + 1 }, // FCM (TLS), HTTP port + 1
          ],
        },
      },
      k(),
    );
    const scripts = new k8s.core.v1.ConfigMap(
      ctx.name('k6-scripts'),
      { metadata: { name: 'herald-k6-scripts', namespace: NAMESPACE }, data: { 'capacity.js': script } },
      k(),
    );
    const k6Labels = { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': 'load-test' };
    const pod = podSpec(
      {
        name: 'k6',
        image: `grafana/k6:${images.k6Tag}`,
        command: ['k6', 'run', '--no-usage-report', '/scripts/capacity.js'],
        resources: RESOURCES.k6,
        env: [
          { name: 'HERALD_TENANT', value: loadTest.tenant },
          { name: 'HERALD_API_URL', value: args.apiServiceUrl },
          { name: 'HERALD_REGION', value: ctx.region },
        ],
        extraVolumes: [{ name: 'scripts', mountPath: '/scripts', source: { configMap: { name: 'herald-k6-scripts' } } }],
      },
      { restartPolicy: 'Never', automountServiceAccountToken: false },
    );
    new k8s.batch.v1.CronJob(
      ctx.name('k6'),
      {
        metadata: { name: 'herald-k6-capacity', namespace: NAMESPACE, labels: k6Labels },
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
              activeDeadlineSeconds: 3600,
              podFailurePolicy: {
                rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [K6_THRESHOLD_FAILED_EXIT_CODE] } }],
              },
              template: { metadata: { labels: k6Labels }, spec: pod },
            },
          },
        },
      },
      k({ dependsOn: [args.namespace, scripts] }),
    );
    this.registerOutputs({});
  }
}
