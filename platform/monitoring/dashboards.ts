/**
 * Herald's Grafana dashboards (delivery, queue, providers, tenants, rollouts, operator),
 * built with Grafana's own @grafana/grafana-foundation-sdk and deployed as ConfigMaps the
 * stack's Grafana sidecar loads (prometheus-stack.ts). The metric-drift test reads every
 * panel's query: a panel naming a metric nobody exports fails it.
 *
 * Herald's metrics carry no tenant label (one series per tenant would grow with every
 * organization), except the API's 429 count; other per-tenant figures come from the
 * tenants' namespaces (their Broadcast ResourceQuota, kube-state-metrics).
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
const R = '[$__rate_interval]';

type Query = [expr: string, legend: string];

function targets(queries: Query[]) {
  return queries.map(([expr, legend], i) => new prometheus.DataqueryBuilder().expr(expr).legendFormat(legend).refId(String.fromCharCode(65 + i)));
}

function graph(title: string, unit: string, queries: Query[], description?: string): timeseries.PanelBuilder {
  const p = new timeseries.PanelBuilder().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12);
  if (description) p.description(description);
  for (const t of targets(queries)) p.withTarget(t);
  return p;
}

function single(title: string, unit: string, query: Query, description?: string): stat.PanelBuilder {
  const p = new stat.PanelBuilder().title(title).unit(unit).datasource(DATASOURCE).height(4).span(6)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']));
  if (description) p.description(description);
  for (const t of targets([query])) p.withTarget(t);
  return p;
}

function board(uid: string, title: string, rows: [string, (timeseries.PanelBuilder | stat.PanelBuilder)[]][]): dashboard.Dashboard {
  const b = new dashboard.DashboardBuilder(title)
    .uid(uid)
    .tags(['herald'])
    .refresh('30s')
    .time({ from: 'now-3h', to: 'now' })
    .timezone('utc')
    .withVariable(new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'));
  // Grafana keys panel state (links, edits) on ids unique within the dashboard.
  let id = 0;
  for (const [row, panels] of rows) {
    b.withRow(new dashboard.RowBuilder(row).id(++id));
    for (const p of panels) b.withPanel(p.id(++id));
  }
  // As JSON (what the ConfigMap holds and Grafana reads): the built object also carries functions.
  return JSON.parse(JSON.stringify(b.build())) as dashboard.Dashboard;
}

const p95 = (histogram: string, by: string) => `histogram_quantile(0.95, sum by (le, ${by}) (rate(${histogram}_bucket${R})))`;

export function dashboards(): Record<string, dashboard.Dashboard> {
  return {
    'herald-delivery': board('herald-delivery', 'Herald / Delivery', [
      [
        'Now',
        [
          single('Sent per second', 'reqps', ['sum(rate(herald_messages_sent_total{outcome="accepted"}' + R + '))', 'sent']),
          single('SMS failure ratio (5m)', 'percentunit', [
            'sum(rate(herald_messages_sent_total{channel="sms",outcome=~"retryable|permanent"}[5m])) / sum(rate(herald_messages_sent_total{channel="sms"}[5m]))',
            'failed',
          ], 'HeraldSmsSendFailures fires over 2 %.'),
          single('Possible duplicates (1h)', 'short', ['sum(increase(herald_possible_duplicates_total[1h]))', 'flagged']),
          single('Dead letters (1h)', 'short', ['sum(increase(herald_delivery_dead_letters_total[1h]))', 'dead']),
        ],
      ],
      [
        'Sends',
        [
          graph('Sends by channel and outcome', 'reqps', [[`sum by (channel, outcome) (rate(herald_messages_sent_total${R}))`, '{{channel}} {{outcome}}']]),
          graph('Failed deliveries by reason', 'reqps', [[`sum by (channel, reason) (rate(herald_messages_failed_total${R}))`, '{{channel}} {{reason}}']]),
          graph('Due to provider acceptance, p95', 's', [[p95('herald_delivery_duration_seconds', 'channel'), '{{channel}}']], 'Push: 99 % within 60 s is the service level.'),
          graph('Retries, skips, expiries, deferrals', 'reqps', [
            [`sum by (reason) (rate(herald_delivery_retries_total${R}))`, 'retry {{reason}}'],
            [`sum by (reason) (rate(herald_deliveries_skipped_total${R}))`, 'skipped {{reason}}'],
            [`sum by (channel) (rate(herald_deliveries_expired_total${R}))`, 'expired {{channel}}'],
            [`sum by (reason) (rate(herald_deliveries_deferred_total${R}))`, 'deferred {{reason}}'],
          ]),
        ],
      ],
    ]),
    'herald-queue': board('herald-queue', 'Herald / Queue', [
      [
        'Queue',
        [
          graph('Queue depth', 'short', [['max by (queue) (herald_queue_depth)', '{{queue}}']], 'HeraldQueueBacklog fires over 1,000 for 10 minutes; KEDA scales the workers on it.'),
          graph('Jobs enqueued, processed, failed', 'ops', [
            [`sum by (queue) (rate(herald_queue_enqueued_total${R}))`, 'enqueued {{queue}}'],
            [`sum by (queue) (rate(herald_queue_processed_total${R}))`, 'processed {{queue}}'],
            [`sum by (queue) (rate(herald_queue_failed_total${R}))`, 'failed {{queue}}'],
          ]),
        ],
      ],
      [
        'Database',
        [
          graph('Pool connections by state', 'short', [['sum by (pool, state) (herald_db_pool_connections)', '{{pool}} {{state}}']], 'HeraldDbPoolExhausted fires when callers wait for 2 minutes.'),
          graph('Query duration p95', 's', [[p95('herald_db_query_duration_seconds', 'query'), '{{query}}']]),
        ],
      ],
      [
        'Workers',
        [
          graph('Available worker replicas', 'short', [['sum by (deployment) (kube_deployment_status_replicas_available{namespace="herald",deployment=~"herald-worker-.*"})', '{{deployment}}']]),
          graph('Worker restarts (1h)', 'short', [['sum by (pod) (increase(kube_pod_container_status_restarts_total{namespace="herald",container="worker"}[1h]))', '{{pod}}']]),
        ],
      ],
    ]),
    'herald-providers': board('herald-providers', 'Herald / Providers', [
      [
        'Circuits',
        [
          graph('Circuit state (0 closed, 1 half-open, 2 open)', 'short', [['max by (provider) (herald_circuit_breaker_state)', '{{provider}}']], 'HeraldCircuitOpen fires at 2 for a minute.'),
          graph('Breaker failures and successes', 'ops', [
            [`sum by (provider) (rate(herald_circuit_breaker_failures_total${R}))`, 'failures {{provider}}'],
            [`sum by (provider) (rate(herald_circuit_breaker_successes_total${R}))`, 'successes {{provider}}'],
          ]),
        ],
      ],
      [
        'Calls',
        [
          graph('Sends by provider and outcome', 'reqps', [[`sum by (provider, outcome) (rate(herald_messages_sent_total${R}))`, '{{provider}} {{outcome}}']]),
          graph('Provider call latency p50 / p95 / p99', 's', [
            [`histogram_quantile(0.5, sum by (le, provider) (rate(herald_send_duration_seconds_bucket${R})))`, 'p50 {{provider}}'],
            [p95('herald_send_duration_seconds', 'provider'), 'p95 {{provider}}'],
            [`histogram_quantile(0.99, sum by (le, provider) (rate(herald_send_duration_seconds_bucket${R})))`, 'p99 {{provider}}'],
          ]),
        ],
      ],
      [
        'Receipts',
        [
          graph('Webhook events by type and result', 'ops', [[`sum by (provider, type, result) (rate(herald_webhook_events_total${R}))`, '{{provider}} {{type}} {{result}}']]),
          graph('Receipts written per statement, p95', 'short', [[`histogram_quantile(0.95, sum by (le) (rate(herald_webhook_receipts_per_statement_bucket${R})))`, 'p95']]),
        ],
      ],
    ]),
    'herald-tenants': board('herald-tenants', 'Herald / Tenants', [
      [
        'Broadcast quota per tenant namespace',
        [
          graph('Broadcasts used / allowed', 'short', [
            ['sum by (namespace) (kube_resourcequota{resource="count/broadcasts.herald.dev",type="used"})', 'used {{namespace}}'],
            ['sum by (namespace) (kube_resourcequota{resource="count/broadcasts.herald.dev",type="hard"})', 'hard {{namespace}}'],
          ], 'Each tenant is a namespace with a Broadcast quota.'),
        ],
      ],
      [
        'API',
        [
          graph('Requests by route and status', 'reqps', [[`sum by (route, status) (rate(herald_http_requests_total{service="api"}${R}))`, '{{route}} {{status}}']]),
          graph('Requests refused over the plan (429), per tenant', 'reqps', [[`sum by (tenant) (rate(herald_api_rate_limited_total${R}))`, '{{tenant}}']], 'Per-organization limits: a tenant over its plan is answered 429.'),
          graph('429 answers by route', 'reqps', [[`sum by (route) (rate(herald_http_requests_total{service="api",status="429"}${R}))`, '{{route}}']]),
          graph('Request duration p95 / p99 by route', 's', [
            [p95('herald_http_request_duration_seconds', 'route'), 'p95 {{route}}'],
            [`histogram_quantile(0.99, sum by (le, route) (rate(herald_http_request_duration_seconds_bucket{service="api"}${R})))`, 'p99 {{route}}'],
          ], 'Targets: p95 under 500 ms now, p99 under 1 s.'),
          graph('5xx ratio by service', 'percentunit', [[`sum by (service) (rate(herald_http_requests_total{status=~"5.."}[5m])) / sum by (service) (rate(herald_http_requests_total[5m]))`, '{{service}}']], 'HeraldHttpErrors fires over 1 %.'),
        ],
      ],
    ]),
    'herald-rollouts': board('herald-rollouts', 'Herald / Rollouts', [
      [
        'Release',
        [
          graph('Release phase', 'short', [['max by (release, phase) (herald_release_phase) == 1', '{{release}} {{phase}}']], 'HeraldReleaseAborted fires on Aborted or Degraded.'),
          graph('Worker replicas available per color', 'short', [['sum by (deployment) (kube_deployment_status_replicas_available{namespace="herald",deployment=~"herald-worker-.*"})', '{{deployment}}']]),
          graph('Possible duplicates', 'short', [[`sum by (channel) (increase(herald_possible_duplicates_total[15m]))`, '{{channel}}']]),
          graph('Failed k6 Jobs', 'short', [['sum by (job_name) (kube_job_status_failed{namespace="herald-loadtest"})', '{{job_name}}']], 'HeraldLoadTestFailed fires on a failed Job of the k6 CronJob.'),
        ],
      ],
    ]),
    'herald-operator': board('herald-operator', 'Herald / Operator', [
      [
        'Leadership and reconciles',
        [
          single('Leader', 'short', ['max(herald_operator_is_leader)', 'leader'], 'HeraldOperatorNoLeader fires at 0 for 5 minutes.'),
          single('Work queue depth', 'short', ['max(herald_operator_workqueue_depth)', 'depth']),
          graph('Reconciles by result', 'ops', [[`sum by (result) (rate(herald_operator_reconcile_total${R}))`, '{{result}}']]),
          graph('Reconcile duration p95', 's', [[`histogram_quantile(0.95, sum by (le) (rate(herald_operator_reconcile_duration_seconds_bucket${R})))`, 'p95']]),
        ],
      ],
      [
        'API server',
        [
          graph('Watch events', 'ops', [[`sum by (event) (rate(herald_operator_watch_events_total${R}))`, '{{event}}']]),
          graph('Status writes by result', 'ops', [[`sum by (result) (rate(herald_operator_status_writes_total${R}))`, '{{result}}']]),
          graph('Events recorded', 'ops', [[`sum by (type, reason) (rate(herald_operator_events_total${R}))`, '{{type}} {{reason}}']]),
          graph('Occurrences planned', 'ops', [[`sum(rate(herald_operator_occurrences_planned_total${R}))`, 'planned']]),
        ],
      ],
    ]),
  };
}

/** Every query of every panel, for the metric-drift test. */
export function panelQueries(boards: Record<string, dashboard.Dashboard> = dashboards()): { source: string; expr: string }[] {
  const out: { source: string; expr: string }[] = [];
  for (const [name, d] of Object.entries(boards)) {
    for (const panel of d.panels ?? []) {
      for (const t of ('targets' in panel ? (panel.targets ?? []) : []) as { expr?: string }[]) {
        if (t.expr) out.push({ source: `dashboard ${name} panel "${(panel as { title?: string }).title}"`, expr: t.expr });
      }
    }
  }
  return out;
}
