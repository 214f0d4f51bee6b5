import client from 'prom-client';

/**
 * Every Prometheus metric Herald exports is declared here, once, so names stay
 * consistent across the worker, api and operator and dashboards can rely on them.
 */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

const counter = (name: string, help: string, labelNames: string[] = []) =>
  new client.Counter({ name, help, labelNames, registers: [registry] });
const gauge = (name: string, help: string, labelNames: string[] = []) =>
  new client.Gauge({ name, help, labelNames, registers: [registry] });
const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
  new client.Histogram({ name, help, labelNames, buckets, registers: [registry] });

export const metrics = {
  messagesSent: counter('herald_messages_sent_total', 'Sends by channel, provider and outcome', ['channel', 'provider', 'outcome']),
  messagesFailed: counter('herald_messages_failed_total', 'Deliveries that ended failed, by channel and reason class', ['channel', 'reason']),
  sendDuration: histogram('herald_send_duration_seconds', 'Provider call latency', ['channel', 'provider'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  deliveryDuration: histogram('herald_delivery_duration_seconds', 'Due instant to provider acceptance', ['channel'], [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600]),
  retries: counter('herald_delivery_retries_total', 'Deliveries scheduled for another attempt', ['channel', 'reason']),
  deadLetters: counter('herald_delivery_dead_letters_total', 'Deliveries that exhausted maxAttempts', ['channel']),
  possibleDuplicates: counter('herald_possible_duplicates_total', 'Rows sent again after an unknown outcome (their worker died in flight, or the answer was lost): the recipient may get it twice', ['channel']),
  tenantSent: counter('herald_tenant_sent_total', 'Messages a provider accepted, by tenant and channel: rate() is the tenant\'s sent/second', ['tenant', 'channel']),
  tenantWaitingRows: gauge('herald_tenant_waiting_rows', 'Rows queued to send now, by tenant (read from PostgreSQL by the stable lane\'s workers)', ['tenant']),
  capacityWaits: counter('herald_capacity_waits_total', 'Claims refused tokens by the fair split of the shared limits (the rest handed back for the wait), by tenant', ['tenant']),
  idleFetches: counter('herald_worker_idle_fetches_total', 'Job fetches that found nothing (an idle worker polls)'),
  skipped: counter('herald_deliveries_skipped_total', 'Deliveries skipped before sending', ['channel', 'reason']),
  expired: counter('herald_deliveries_expired_total', 'Deliveries that could not go out before expireAfter', ['channel']),
  deferred: counter('herald_deliveries_deferred_total', 'Deliveries deferred (quiet hours, suspension)', ['reason']),
  queueDepth: gauge('herald_queue_depth', 'Jobs waiting in a pg-boss queue', ['queue']),
  queueEnqueued: counter('herald_queue_enqueued_total', 'Jobs enqueued', ['queue']),
  queueProcessed: counter('herald_queue_processed_total', 'Jobs processed', ['queue']),
  queueFailed: counter('herald_queue_failed_total', 'Jobs that threw', ['queue']),
  circuitState: gauge('herald_circuit_breaker_state', 'Circuit state per provider: 0 closed, 1 half-open, 2 open', ['provider']),
  circuitFailures: counter('herald_circuit_breaker_failures_total', 'Failures seen by the circuit breaker', ['provider']),
  circuitSuccesses: counter('herald_circuit_breaker_successes_total', 'Successes seen by the circuit breaker', ['provider']),
  dbPoolConnections: gauge('herald_db_pool_connections', 'PostgreSQL pool connections by state', ['pool', 'state']),
  dbQueryDuration: histogram('herald_db_query_duration_seconds', 'Duration of Herald queries', ['query'], [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]),
  httpRequests: counter('herald_http_requests_total', 'HTTP requests', ['service', 'method', 'route', 'status']),
  httpDuration: histogram('herald_http_request_duration_seconds', 'HTTP request duration', ['service', 'method', 'route', 'status'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2]),
  apiRateLimited: counter('herald_api_rate_limited_total', "Tenant API requests refused with 429: over the plan's requests a minute", ['tenant']),
  webhookEvents: counter('herald_webhook_events_total', 'Provider webhook events by type and result', ['provider', 'type', 'result']),
  receiptsPerStatement: histogram('herald_webhook_receipts_per_statement', 'Common receipts written by one statement (grouped under load)', [], [1, 2, 5, 10, 25, 50, 100, 200]),
  reconcileTotal: counter('herald_operator_reconcile_total', 'Reconciles by result', ['result']),
  reconcileDuration: histogram('herald_operator_reconcile_duration_seconds', 'Reconcile duration', [], [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]),
  workqueueDepth: gauge('herald_operator_workqueue_depth', 'Objects waiting in the operator work queue'),
  leader: gauge('herald_operator_is_leader', '1 when this replica holds the Lease'),
  operatorWatchEvents: counter('herald_operator_watch_events_total', 'Informer events (added, updated, deleted, resync, listed, expired, failed)', ['event']),
  operatorStatusWrites: counter('herald_operator_status_writes_total', 'Broadcast status writes by result (written, conflict)', ['result']),
  operatorEvents: counter('herald_operator_events_total', 'Kubernetes Events recorded by type and reason', ['type', 'reason']),
  operatorPlanned: counter('herald_operator_occurrences_planned_total', 'Occurrences planned (created) by the operator'),
  releasePhase: gauge('herald_release_phase', "A Release's phase: 1 for the one it is in, 0 for the others", ['release', 'phase']),
};
