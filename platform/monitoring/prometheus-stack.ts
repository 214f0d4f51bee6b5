/**
 * Monitoring of one cluster: a pinned kube-prometheus-stack Helm release (Prometheus,
 * Alertmanager, Grafana, kube-state-metrics, the kubelet's cAdvisor scrape) in namespace
 * `monitoring` (the one Herald's NetworkPolicies let scrape), and Herald's own objects for
 * it: a PodMonitor per component (job label herald-api / herald-worker / herald-operator,
 * what the rules select on), the PrometheusRule of alerts.ts, and each dashboard of
 * dashboards.ts as a ConfigMap the chart's Grafana sidecar loads. Alertmanager sends every
 * alert to the region's SNS topic with an IAM role of its own (IRSA).
 *
 * Prometheus selects every PodMonitor and PrometheusRule in the cluster (the chart's
 * default selects only its own release's), so Herald's objects need no chart label.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { workloadIdentityRole, type Cluster } from '../cluster.js';
import { MONITORING_NAMESPACE } from '../network-policies.js';
import type { RegionContext } from '../region.js';
import { NAMESPACE } from '../workloads.js';
import { HERALD_JOBS, ruleGroups } from './alerts.js';
import { dashboards } from './dashboards.js';

/** kube-prometheus-stack (prometheus-community). Its kube-state-metrics subchart serves the v2 series external-series.ts lists. */
export const KUBE_PROMETHEUS_STACK_CHART_VERSION = '87.17.0';
export const KUBE_PROMETHEUS_STACK_REPO = 'https://prometheus-community.github.io/helm-charts';
/** The label the chart's Grafana sidecar loads dashboards by (its default). */
export const GRAFANA_DASHBOARD_LABEL = 'grafana_dashboard';

export interface MonitoringArgs {
  ctx: RegionContext;
  cluster: Cluster;
  operatorNamespace: string;
  /** Where runbooks/ is browsed (a forge's URL of the repository's main branch); alerts' runbook_url starts with it. */
  runbookBaseUrl?: string;
  /** The region's SNS alert topic (platform/alerting.ts): Alertmanager publishes every alert there. */
  alertTopicArn: pulumi.Input<string>;
  /** Herald's namespaces exist before their PodMonitors. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export const ALERTMANAGER_SERVICE_ACCOUNT = 'herald-alertmanager';

/**
 * Alertmanager's configuration: every alert to the region's SNS topic (the one the
 * CloudWatch alarms and a failed CI k6 run use), grouped per alert; critical ones repeat
 * every hour until resolved, warnings every 12. Signed with the pod's IRSA role.
 */
export function alertmanagerConfig(topicArn: string, region: string): Record<string, unknown> {
  const sns = (name: string) => ({
    name,
    sns_configs: [
      {
        topic_arn: topicArn,
        sigv4: { region },
        subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})',
        message: '{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.description }}\nRunbook: {{ if .Annotations.runbook_url }}{{ .Annotations.runbook_url }}{{ else }}{{ .Annotations.runbook }}{{ end }}\n\n{{ end }}',
        send_resolved: true,
      },
    ],
  });
  return {
    route: {
      receiver: 'sns-warning',
      group_by: ['alertname', 'severity'],
      group_wait: '30s',
      group_interval: '5m',
      repeat_interval: '12h',
      routes: [{ matchers: ['severity="critical"'], receiver: 'sns-critical', repeat_interval: '1h' }],
    },
    receivers: [sns('sns-critical'), sns('sns-warning')],
  };
}

export class Monitoring extends pulumi.ComponentResource {
  readonly chart: k8s.helm.v3.Release;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super('herald:platform:Monitoring', name, {}, opts);
    const { ctx } = args;
    const k = (extra?: pulumi.CustomResourceOptions): pulumi.CustomResourceOptions => ({ parent: this, provider: args.cluster.k8s, ...extra });

    // The namespace is Pulumi's (not the chart's createNamespace), so the rules and dashboards
    // can depend on it and a dry run of them finds it.
    const namespace = new k8s.core.v1.Namespace(
      ctx.name('monitoring-ns'),
      { metadata: { name: MONITORING_NAMESPACE, labels: { 'app.kubernetes.io/managed-by': 'pulumi' } } },
      k(),
    );
    const alertmanagerRole = workloadIdentityRole(
      'alertmanager',
      {
        ctx,
        cluster: args.cluster,
        namespace: MONITORING_NAMESPACE,
        serviceAccount: ALERTMANAGER_SERVICE_ACCOUNT,
        policy: pulumi.jsonStringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: ['sns:Publish'], Resource: args.alertTopicArn },
            // The topic is encrypted (its own KMS key, platform/alerting.ts): publishing needs its data key, through SNS only.
            { Effect: 'Allow', Action: ['kms:GenerateDataKey*', 'kms:Decrypt'], Resource: '*', Condition: { StringEquals: { 'kms:ViaService': `sns.${ctx.region}.amazonaws.com` } } },
          ],
        }),
      },
      this,
    );
    this.chart = new k8s.helm.v3.Release(
      ctx.name('prometheus-stack'),
      {
        name: 'kube-prometheus-stack',
        chart: 'kube-prometheus-stack',
        version: KUBE_PROMETHEUS_STACK_CHART_VERSION,
        repositoryOpts: { repo: KUBE_PROMETHEUS_STACK_REPO },
        namespace: MONITORING_NAMESPACE,
        atomic: true,
        values: {
          prometheus: {
            prometheusSpec: {
              podMonitorSelectorNilUsesHelmValues: false,
              serviceMonitorSelectorNilUsesHelmValues: false,
              ruleSelectorNilUsesHelmValues: false,
              retention: '15d',
              resources: { requests: { cpu: '500m', memory: '2Gi' }, limits: { cpu: '2', memory: '4Gi' } },
            },
          },
          grafana: {
            sidecar: { dashboards: { enabled: true, label: GRAFANA_DASHBOARD_LABEL, labelValue: '1', searchNamespace: MONITORING_NAMESPACE } },
          },
          kubeStateMetrics: { enabled: true },
          alertmanager: {
            serviceAccount: { create: true, name: ALERTMANAGER_SERVICE_ACCOUNT, annotations: { 'eks.amazonaws.com/role-arn': alertmanagerRole.arn } },
            config: pulumi.output(args.alertTopicArn).apply((arn) => alertmanagerConfig(arn, ctx.region)),
          },
        },
      },
      k({ dependsOn: [namespace] }),
    );
    const afterChart = (more: pulumi.Input<pulumi.Resource>[] = []) => k({ dependsOn: [this.chart, ...more] });

    // One PodMonitor per component: the api, workers and operator have no Service each
    // (only the api does), and the job label is what the alerts select on.
    const components: { job: (typeof HERALD_JOBS)[number]; component: string; namespace: string }[] = [
      { job: 'herald-api', component: 'api', namespace: NAMESPACE },
      { job: 'herald-worker', component: 'worker', namespace: NAMESPACE },
      { job: 'herald-operator', component: 'operator', namespace: args.operatorNamespace },
    ];
    for (const c of components) {
      new k8s.apiextensions.CustomResource(
        ctx.name(`podmonitor-${c.component}`),
        {
          apiVersion: 'monitoring.coreos.com/v1',
          kind: 'PodMonitor',
          metadata: { name: c.job, namespace: c.namespace },
          spec: {
            selector: { matchLabels: { 'app.kubernetes.io/name': 'herald', 'app.kubernetes.io/component': c.component } },
            podMetricsEndpoints: [
              {
                port: 'http',
                path: '/metrics',
                interval: '30s',
                relabelings: [
                  { targetLabel: 'job', replacement: c.job, action: 'replace' },
                  { sourceLabels: ['__meta_kubernetes_pod_label_herald_dev_lane'], targetLabel: 'lane', action: 'replace' },
                ],
              },
            ],
          },
        },
        afterChart(args.dependsOn),
      );
    }

    new k8s.apiextensions.CustomResource(
      ctx.name('alert-rules'),
      {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PrometheusRule',
        metadata: { name: 'herald-alerts', namespace: MONITORING_NAMESPACE, labels: { 'app.kubernetes.io/part-of': 'herald' } },
        spec: ruleGroups(args.runbookBaseUrl),
      },
      afterChart(),
    );

    for (const [uid, board] of Object.entries(dashboards())) {
      new k8s.core.v1.ConfigMap(
        ctx.name(`dashboard-${uid}`),
        {
          metadata: { name: `${uid}-dashboard`, namespace: MONITORING_NAMESPACE, labels: { [GRAFANA_DASHBOARD_LABEL]: '1', 'app.kubernetes.io/part-of': 'herald' } },
          data: { [`${uid}.json`]: JSON.stringify(board) },
        },
        afterChart(),
      );
    }
    this.registerOutputs({});
  }
}

