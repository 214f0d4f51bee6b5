/**
 * The series Herald's rules and dashboards read that Herald does not export: a pinned,
 * named list, so the metric-drift test can tell a typo from a cluster metric. Each comes
 * with the exporter of the pinned Prometheus stack (platform/monitoring/prometheus-stack.ts)
 * that provides it; a name outside this list and outside Herald's own /metrics fails the test.
 */

/** kube-state-metrics (the chart's subchart, v2 series names). */
export const KUBE_STATE_METRICS_SERIES = [
  'kube_pod_container_resource_limits',
  'kube_pod_container_status_restarts_total',
  'kube_deployment_spec_replicas',
  'kube_deployment_status_replicas_available',
  'kube_job_status_failed',
  'kube_job_owner',
  'kube_resourcequota',
] as const;

/** cAdvisor, as the kubelet serves it on /metrics/cadvisor (the stack's kubelet ServiceMonitor). */
export const CADVISOR_SERIES = ['container_memory_working_set_bytes', 'container_cpu_usage_seconds_total'] as const;

/** Prometheus' own synthetic series for every scrape. */
export const PROMETHEUS_SERIES = ['up'] as const;

export const EXTERNAL_SERIES: ReadonlySet<string> = new Set<string>([...KUBE_STATE_METRICS_SERIES, ...CADVISOR_SERIES, ...PROMETHEUS_SERIES]);
