/**
 * Herald's alerts as Prometheus alerting rules: the ones ../shared/REQUIREMENTS.md asks
 * for that Prometheus can see (queue depth, SMS failures, errors, circuits, the pool,
 * memory and CPU, a failed scheduled k6 run, an aborted Release), plus a service down and
 * no operator leader. Each names its runbook (runbooks/<file>.md). AWS facts (replica lag,
 * backup age, RDS CPU) are CloudWatch alarms in platform/alerting.ts, not here.
 *
 * Read by the Pulumi program (a PrometheusRule), by `promtool test rules`
 * (alerts.promtool.yaml) and by the metric-drift test.
 */
import { dump } from 'js-yaml';
import { K6_CRONJOB as LOADTEST_CRONJOB, loadLoadTestRbac } from '../loadtesting.js';

const LOADTEST_NAMESPACE = loadLoadTestRbac().namespace;

/** A runbook of runbooks/ (the file name, without .md). */
export type Runbook =
  | 'deploy-and-rollback'
  | 'provider-outage'
  | 'queue-backlog'
  | 'duplicate-messages'
  | 'time-zone-mistakes'
  | 'service-down'
  | 'database-restore'
  | 'region-failover'
  | 'token-cleanup'
  | 'incident-severities';

/** critical pages the on-call person at any hour; warning is for working hours (runbooks/incident-severities.md). */
export type Severity = 'critical' | 'warning';

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  severity: Severity;
  summary: string;
  description: string;
  runbook: Runbook;
  /** The heading of the runbook's section for this alert, when it is not the whole file. */
  section?: string;
}

/** The pods Herald's PodMonitors scrape, by their job label (prometheus-stack.ts sets it). */
export const HERALD_JOBS = ['herald-api', 'herald-worker', 'herald-operator'] as const;
const jobs = `job=~"${HERALD_JOBS.join('|')}"`;

export const ALERTS: AlertRule[] = [
  {
    alert: 'HeraldQueueBacklog',
    expr: 'max by (queue) (herald_queue_depth) > 1000',
    for: '10m',
    severity: 'warning',
    summary: 'Queue {{ $labels.queue }} holds {{ $value }} jobs',
    description: 'More than 1,000 jobs have waited in {{ $labels.queue }} for 10 minutes: workers are not keeping up, or they are not claiming.',
    runbook: 'queue-backlog',
  },
  {
    alert: 'HeraldSmsSendFailures',
    // A send that ended retryable or permanent, over every SMS send, across all workers.
    expr:
      'sum(rate(herald_messages_sent_total{channel="sms",outcome=~"retryable|permanent"}[5m]))' +
      ' / sum(rate(herald_messages_sent_total{channel="sms"}[5m])) > 0.02',
    for: '5m',
    severity: 'critical',
    summary: '{{ $value | humanizePercentage }} of SMS sends fail',
    description: 'More than 2% of SMS sends have failed over 5 minutes (the provider refuses or errs).',
    runbook: 'provider-outage',
  },
  {
    alert: 'HeraldHttpErrors',
    expr:
      'sum by (service) (rate(herald_http_requests_total{status=~"5.."}[5m]))' +
      ' / sum by (service) (rate(herald_http_requests_total[5m])) > 0.01',
    for: '5m',
    severity: 'critical',
    summary: '{{ $value | humanizePercentage }} of {{ $labels.service }} requests fail with 5xx',
    description: 'More than 1% of HTTP requests to {{ $labels.service }} answered 5xx over 5 minutes.',
    runbook: 'service-down',
    section: 'HTTP errors',
  },
  {
    alert: 'HeraldCircuitOpen',
    expr: 'max by (provider) (herald_circuit_breaker_state) == 2',
    for: '1m',
    severity: 'critical',
    summary: 'The circuit to {{ $labels.provider }} is open',
    description: 'A worker stopped calling {{ $labels.provider }} after repeated failures; its messages wait in the queue until the circuit closes.',
    runbook: 'provider-outage',
  },
  {
    alert: 'HeraldDbPoolExhausted',
    expr: 'max by (pod, pool) (herald_db_pool_connections{state="waiting"}) > 0',
    for: '2m',
    severity: 'critical',
    summary: 'Pool {{ $labels.pool }} of {{ $labels.pod }} has queries waiting for a connection',
    description: 'Every connection of the pool has been busy with callers waiting for 2 minutes.',
    runbook: 'service-down',
    section: 'Connection pool exhausted',
  },
  {
    alert: 'HeraldContainerMemoryHigh',
    expr:
      'max by (namespace, pod, container) (container_memory_working_set_bytes{namespace=~"herald.*",container!=""})' +
      ' / max by (namespace, pod, container) (kube_pod_container_resource_limits{namespace=~"herald.*",resource="memory"}) > 0.9',
    for: '5m',
    severity: 'warning',
    summary: '{{ $labels.pod }}/{{ $labels.container }} uses {{ $value | humanizePercentage }} of its memory limit',
    description: 'Over 90% of the memory limit for 5 minutes: the next spike is an OOM kill.',
    runbook: 'service-down',
    section: 'Memory or CPU over 90 percent',
  },
  {
    alert: 'HeraldContainerCpuHigh',
    expr:
      'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{namespace=~"herald.*",container!=""}[5m]))' +
      ' / max by (namespace, pod, container) (kube_pod_container_resource_limits{namespace=~"herald.*",resource="cpu"}) > 0.9',
    for: '10m',
    severity: 'warning',
    summary: '{{ $labels.pod }}/{{ $labels.container }} uses {{ $value | humanizePercentage }} of its CPU limit',
    description: 'Over 90% of the CPU limit for 10 minutes: it is being throttled.',
    runbook: 'service-down',
    section: 'Memory or CPU over 90 percent',
  },
  {
    alert: 'HeraldServiceDown',
    expr: `up{${jobs}} == 0`,
    for: '2m',
    severity: 'critical',
    summary: '{{ $labels.job }} pod {{ $labels.pod }} does not answer /metrics',
    description: 'Prometheus has not scraped {{ $labels.pod }} for 2 minutes.',
    runbook: 'service-down',
  },
  {
    alert: 'HeraldOperatorNoLeader',
    expr: 'max(herald_operator_is_leader) < 1 or absent(herald_operator_is_leader)',
    for: '5m',
    severity: 'critical',
    summary: 'No operator replica holds the Lease',
    description: 'No Broadcast is planned and no Release moves while no operator leads.',
    runbook: 'service-down',
    section: 'Operator without a leader',
  },
  {
    alert: 'HeraldPossibleDuplicates',
    expr: 'sum by (channel) (increase(herald_possible_duplicates_total[15m])) > 0',
    for: '0m',
    severity: 'warning',
    summary: '{{ $value | printf "%.0f" }} {{ $labels.channel }} messages may have been sent twice in 15 minutes',
    description: 'Rows were sent again after an unknown outcome (a worker died in flight, or an answer was lost).',
    runbook: 'duplicate-messages',
  },
  {
    alert: 'HeraldLoadTestFailed',
    // A Job of the k6 CronJob that failed (a threshold, exit 99, fails it at once).
    expr:
      `max by (namespace, job_name) (kube_job_status_failed{namespace="${LOADTEST_NAMESPACE}"} > 0)` +
      ` and on (namespace, job_name) kube_job_owner{namespace="${LOADTEST_NAMESPACE}",owner_kind="CronJob",owner_name="${LOADTEST_CRONJOB}"}`,
    for: '0m',
    severity: 'warning',
    summary: 'The scheduled k6 run {{ $labels.job_name }} failed',
    description: 'A k6 threshold (p95, p99 or errors) failed against this region, or k6 could not run.',
    runbook: 'deploy-and-rollback',
    section: 'A scheduled load test failed',
  },
  {
    alert: 'HeraldReleaseAborted',
    expr: 'max by (release, phase) (herald_release_phase{phase=~"Aborted|Degraded"}) == 1',
    for: '0m',
    severity: 'critical',
    summary: 'Release {{ $labels.release }} is {{ $labels.phase }}',
    description: 'The rollout stopped and gave its work back to the stable color; the new version needs a look before another try.',
    runbook: 'deploy-and-rollback',
    section: 'A Release aborted',
  },
];

/** A runbook's GitHub-style anchor for a heading (lower case, spaces to dashes, punctuation dropped). */
export function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
}

/** Where an alert's runbook is, relative to the repository (what `runbook_url` appends to its base). */
export function runbookPath(a: AlertRule): string {
  return `runbooks/${a.runbook}.md${a.section ? `#${anchor(a.section)}` : ''}`;
}

export interface RuleGroups {
  groups: { name: string; rules: Record<string, unknown>[] }[];
}

/**
 * The rules in Prometheus' rule-file form (also a PrometheusRule's spec). runbookBase is
 * where the repository's files are browsed (e.g. a forge's blob URL of main): with it,
 * runbook_url links the runbook; the runbook annotation is its repository path either way.
 */
export function ruleGroups(runbookBase?: string, alerts: AlertRule[] = ALERTS): RuleGroups {
  return {
    groups: [
      {
        name: 'herald',
        rules: alerts.map((a) => ({
          alert: a.alert,
          expr: a.expr,
          for: a.for,
          labels: { severity: a.severity, team: 'herald' },
          annotations: {
            summary: a.summary,
            description: a.description,
            runbook: runbookPath(a),
            ...(runbookBase ? { runbook_url: `${runbookBase.replace(/\/$/, '')}/${runbookPath(a)}` } : {}),
          },
        })),
      },
    ],
  };
}

export function ruleFileYaml(runbookBase?: string, alerts: AlertRule[] = ALERTS): string {
  return dump(ruleGroups(runbookBase, alerts), { lineWidth: -1, noRefs: true });
}
