/**
 * Monitoring of one cluster: a pinned kube-prometheus-stack Helm release (Prometheus,
 * Alertmanager, Grafana, kube-state-metrics, the kubelet's cAdvisor scrape) in namespace
 * `monitoring` (the one Herald's NetworkPolicies let scrape), and Herald's own objects for
 * it: a PodMonitor per component (job label herald-api / herald-worker / herald-operator,
 * what the rules select on), the PrometheusRule of alerts.ts, and each dashboard of
 * dashboards.ts as a ConfigMap the chart's Grafana sidecar loads.
 *
 * Prometheus selects every PodMonitor and PrometheusRule in the cluster (the chart's
 * default selects only its own release's), so Herald's objects need no chart label.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { Cluster } from '../cluster.js';
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
  /** Herald's namespaces exist before their PodMonitors. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
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

