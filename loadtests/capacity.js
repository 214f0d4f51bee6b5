// k6 capacity test: the sustained Broadcast rate (and recipient rate) a Herald platform holds.
//
// Broadcasts are created through the Kubernetes API at a stepped arrival rate
// (HERALD_CAPACITY_STEPS per second, HERALD_CAPACITY_STEP_SECONDS each), every one to
// the same segment of HERALD_CAPACITY_RECIPIENTS contacts registered through the api in
// setup. One watcher lists this run's Broadcasts and records, per step, when each
// reached Completed. A step "holds" when every Broadcast created in it completed with
// every recipient sent, the arrival rate was met (k6 did not drop iterations), and the
// 95th percentile from create to Completed stayed within HERALD_CAPACITY_HOLD_P95_S.
// The sustained rate is the highest step that held with every step below it;
// handleSummary prints the figures and writes them as JSON.
//
// Thresholds are on errors and completion only (no latency thresholds): every request
// answered, every Broadcast completed before the deadline. A failed threshold exits 99,
// which fails the platform's scheduled k6 Job and the release pipeline.
//
// Environment:
//   HERALD_API_URL              the api (in-cluster: its Service URL)
//   HERALD_KUBE_API             the Kubernetes API server (default https://kubernetes.default.svc)
//   HERALD_KUBE_TOKEN[_FILE]    bearer token allowed to create/get/list/delete Broadcasts in
//                               HERALD_NAMESPACE (default file: the pod's service-account token);
//                               the server's CA comes from SSL_CERT_FILE (Go's TLS roots)
//   HERALD_ADMIN_TOKEN[_FILE]   creates/raises the synthetic tenant, its number and an API key; or
//   HERALD_API_KEY[_FILE]       a key of an existing tenant that has a sending number
//   HERALD_TENANT               default k6-synthetic (route it to the provider simulator!)
//   HERALD_NAMESPACE            default herald-loadtest
//   HERALD_CAPACITY_STEPS       broadcasts per second per step, default "1,2,4,8,16"
//   HERALD_CAPACITY_STEP_SECONDS  default 20
//   HERALD_CAPACITY_RECIPIENTS  recipients per Broadcast, default 20
//   HERALD_CAPACITY_CHANNEL     sms (default) or push
//   HERALD_CAPACITY_COMPLETE_WITHIN_S  a Broadcast not Completed this long after the last step counts as not completed (default 120)
//   HERALD_CAPACITY_HOLD_P95_S  default 15
//   HERALD_CAPACITY_SUMMARY     JSON summary path (default /tmp/herald-capacity-summary.json)
import http from 'k6/http';
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { ADMIN_TOKEN, API, GIVEN_API_KEY, KUBE, KUBE_TOKEN, NS, TENANT } from './herald-env.js';

const REGION = __ENV.HERALD_REGION || 'local';
const STEPS = (__ENV.HERALD_CAPACITY_STEPS || '1,2,4,8,16').split(',').map(Number).filter((n) => n > 0);
const STEP_S = Number(__ENV.HERALD_CAPACITY_STEP_SECONDS || 20);
const RECIPIENTS = Number(__ENV.HERALD_CAPACITY_RECIPIENTS || 20);
const CHANNEL = __ENV.HERALD_CAPACITY_CHANNEL === 'push' ? 'push' : 'sms';
const COMPLETE_WITHIN_S = Number(__ENV.HERALD_CAPACITY_COMPLETE_WITHIN_S || 120);
const HOLD_P95_S = Number(__ENV.HERALD_CAPACITY_HOLD_P95_S || 15);
const SUMMARY = __ENV.HERALD_CAPACITY_SUMMARY || '/tmp/herald-capacity-summary.json';
const SENDING_NUMBER = __ENV.HERALD_SENDING_NUMBER || '+18885550199';
const SYNTHETIC_RATE = 100000;
const POLL_S = 1.5;

const completed = new Rate('broadcast_completed');
const recipientsSent = new Counter('recipients_sent');
const perStep = STEPS.map((_, i) => ({
  created: new Counter(`step_${i}_created`),
  completed: new Counter(`step_${i}_completed`),
  latency: new Trend(`step_${i}_apply_to_complete`, true),
}));

const LOAD_SECONDS = STEPS.length * STEP_S;
const scenarios = {};
STEPS.forEach((rate, i) => {
  scenarios[`step_${i}`] = {
    executor: 'constant-arrival-rate',
    exec: 'create',
    rate,
    timeUnit: '1s',
    duration: `${STEP_S}s`,
    startTime: `${i * STEP_S}s`,
    preAllocatedVUs: Math.max(2, rate),
    maxVUs: Math.max(10, rate * 4),
    gracefulStop: '10s',
    env: { STEP: String(i) },
    tags: { step: String(i) },
  };
});
scenarios.watch = {
  executor: 'per-vu-iterations',
  exec: 'watch',
  vus: 1,
  iterations: 1,
  maxDuration: `${LOAD_SECONDS + COMPLETE_WITHIN_S + 30}s`,
};

export const options = {
  scenarios,
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    broadcast_completed: ['rate==1'],
  },
  setupTimeout: '120s',
  teardownTimeout: '120s',
  summaryTrendStats: ['min', 'med', 'p(95)', 'p(99)', 'max'],
};

const kubeHeaders = { Authorization: `Bearer ${KUBE_TOKEN}`, 'Content-Type': 'application/json' };
const broadcastsPath = `${KUBE}/apis/herald.dev/v1alpha1/namespaces/${NS}/broadcasts`;

function adminParams(expected) {
  const p = { headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' } };
  if (expected) p.responseCallback = http.expectedStatuses(...expected);
  return p;
}

/** The synthetic tenant with limits out of the way, its sending number, and an API key. */
function prepareTenant() {
  if (GIVEN_API_KEY) return { apiKey: GIVEN_API_KEY };
  if (!ADMIN_TOKEN) fail('set HERALD_API_KEY (a key of the tenant) or HERALD_ADMIN_TOKEN (to create one)');
  const t = http.post(
    `${API}/admin/tenants`,
    JSON.stringify({ id: TENANT, name: 'k6 synthetic load', sms_per_second: SYNTHETIC_RATE, push_per_second: SYNTHETIC_RATE }),
    adminParams([201, 409]),
  );
  if (t.status === 409) {
    const p = http.patch(`${API}/admin/tenants/${TENANT}`, JSON.stringify({ sms_per_second: SYNTHETIC_RATE, push_per_second: SYNTHETIC_RATE }), adminParams());
    if (p.status !== 200) fail(`could not raise ${TENANT}'s rates: ${p.status} ${p.body}`);
  } else if (t.status !== 201) fail(`could not create tenant ${TENANT}: ${t.status} ${t.body}`);
  const list = http.get(`${API}/admin/tenants/${TENANT}/sending-numbers`, adminParams()).json('items') || [];
  for (const n of list) {
    // A number below the synthetic rate is replaced (a sending number's rate is fixed at registration).
    if (n.per_second < SYNTHETIC_RATE) http.del(`${API}/admin/tenants/${TENANT}/sending-numbers/${n.id}`, null, adminParams());
  }
  if (!list.some((n) => n.per_second >= SYNTHETIC_RATE)) {
    const n = http.post(
      `${API}/admin/tenants/${TENANT}/sending-numbers`,
      JSON.stringify({ phone_number: SENDING_NUMBER, kind: 'toll_free', per_second: SYNTHETIC_RATE }),
      adminParams(),
    );
    if (n.status !== 201) fail(`could not register ${SENDING_NUMBER} for ${TENANT}: ${n.status} ${n.body}`);
  }
  const k = http.post(`${API}/admin/tenants/${TENANT}/api-keys`, '{}', adminParams());
  if (k.status !== 201) fail(`could not create an API key for ${TENANT}: ${k.status} ${k.body}`);
  return { apiKey: k.json('key'), keyId: k.json('id') };
}

export function setup() {
  if (!KUBE_TOKEN) fail('no Kubernetes credential: set HERALD_KUBE_TOKEN or HERALD_KUBE_TOKEN_FILE');
  const probe = http.get(`${broadcastsPath}?limit=1`, { headers: kubeHeaders });
  if (probe.status !== 200) fail(`cannot list Broadcasts in ${NS} at ${KUBE}: ${probe.status} ${probe.body}`);
  const tenant = prepareTenant();
  const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
  const tag = `k6-capacity-${runId}`;
  const api = { headers: { Authorization: `Bearer ${tenant.apiKey}`, 'Content-Type': 'application/json' } };
  const base = Math.floor(Math.random() * 7000) * 1000;
  if (CHANNEL === 'sms') {
    const contacts = [];
    for (let i = 0; i < RECIPIENTS; i++) contacts.push({ phone: `+1206${2000000 + base + i}`, tags: [tag], time_zone: 'America/Chicago' });
    const r = http.post(`${API}/v1/contacts`, JSON.stringify(contacts), api);
    if (r.status !== 200 || r.json('failed') !== 0) fail(`registering ${RECIPIENTS} contacts failed: ${r.status} ${r.body}`);
  } else {
    for (let i = 0; i < RECIPIENTS; i++) {
      const r = http.post(`${API}/v1/device-tokens`, JSON.stringify({ token: `k6cap-${runId}-${i}:APA91bHeraldK6Capacity`, tags: [tag] }), api);
      if (r.status !== 201 && r.status !== 200) fail(`registering a device failed: ${r.status} ${r.body}`);
    }
  }
  return { ...tenant, runId, tag, startedAt: Date.now() };
}

export function create(data) {
  const step = Number(__ENV.STEP);
  const name = `cap-${data.runId}-${step}-${exec.scenario.iterationInTest}`;
  const spec = {
    tenant: TENANT,
    channel: CHANNEL,
    message: CHANNEL === 'sms' ? { text: `Capacity run ${data.runId}. Reply STOP to opt out.` } : { title: 'Capacity run', text: data.runId },
    audience: { segment: { tags: [data.tag] } },
  };
  const body = {
    apiVersion: 'herald.dev/v1alpha1',
    kind: 'Broadcast',
    metadata: {
      name,
      namespace: NS,
      labels: { 'herald.dev/load-test': 'capacity', 'herald.dev/run': data.runId, 'herald.dev/step': String(step) },
      annotations: { 'herald.dev/created-ms': String(Date.now()) },
    },
    spec,
  };
  const r = http.post(broadcastsPath, JSON.stringify(body), { headers: kubeHeaders, tags: { name: 'create broadcast' } });
  if (check(r, { 'broadcast created': (x) => x.status === 201 })) perStep[step].created.add(1);
}

export function watch(data) {
  const deadline = data.startedAt + (LOAD_SECONDS + COMPLETE_WITHIN_S) * 1000;
  const loadEnds = data.startedAt + (LOAD_SECONDS + 10) * 1000;
  const done = {};
  const seen = {};
  for (;;) {
    const r = http.get(`${broadcastsPath}?labelSelector=${encodeURIComponent(`herald.dev/run=${data.runId}`)}&resourceVersion=0`, {
      headers: kubeHeaders,
      tags: { name: 'list broadcasts' },
    });
    const items = r.status === 200 ? r.json('items') || [] : [];
    const now = Date.now();
    let open = 0;
    for (const bc of items) {
      const name = bc.metadata.name;
      seen[name] = bc;
      if (done[name]) continue;
      const st = bc.status || {};
      if (st.phase !== 'Completed' && st.phase !== 'Failed') {
        open++;
        continue;
      }
      done[name] = true;
      const step = Number(bc.metadata.labels['herald.dev/step']);
      const counts = st.counts || {};
      const ok = st.phase === 'Completed' && counts.sent === RECIPIENTS && !counts.failed;
      completed.add(ok, { step: String(step) });
      if (ok) {
        perStep[step].completed.add(1);
        perStep[step].latency.add(now - Number(bc.metadata.annotations['herald.dev/created-ms']));
        recipientsSent.add(counts.sent);
      }
    }
    if ((now > loadEnds && open === 0) || now > deadline) break;
    sleep(POLL_S);
  }
  // What did not complete in time counts against the completion threshold.
  for (const name of Object.keys(seen)) if (!done[name]) completed.add(false, { step: seen[name].metadata.labels['herald.dev/step'] });
}

export function teardown(data) {
  if (!data) return;
  // Delete this run's Broadcasts (the operator's finalizer cancels anything unsent).
  http.del(`${broadcastsPath}?labelSelector=${encodeURIComponent(`herald.dev/run=${data.runId}`)}`, null, { headers: kubeHeaders, tags: { name: 'delete broadcasts' } });
  if (data.keyId && ADMIN_TOKEN) http.post(`${API}/admin/tenants/${TENANT}/api-keys/${data.keyId}/revoke`, '{}', adminParams());
}

function metric(data, name, field) {
  const m = data.metrics[name];
  return m && m.values && m.values[field] !== undefined ? m.values[field] : 0;
}

export function handleSummary(data) {
  const steps = STEPS.map((rate, i) => {
    const created = metric(data, `step_${i}_created`, 'count');
    const done = metric(data, `step_${i}_completed`, 'count');
    const p95 = metric(data, `step_${i}_apply_to_complete`, 'p(95)');
    const offered = rate * STEP_S;
    const holds = created > 0 && done === created && created >= 0.95 * offered && p95 <= HOLD_P95_S * 1000;
    return {
      broadcasts_per_second: rate,
      recipients_per_second: rate * RECIPIENTS,
      offered,
      created,
      completed: done,
      apply_to_complete_p50_ms: Math.round(metric(data, `step_${i}_apply_to_complete`, 'med')),
      apply_to_complete_p95_ms: Math.round(p95),
      apply_to_complete_max_ms: Math.round(metric(data, `step_${i}_apply_to_complete`, 'max')),
      holds,
    };
  });
  let sustained = 0;
  for (const s of steps) {
    if (!s.holds) break;
    sustained = s.broadcasts_per_second;
  }
  const thresholdsFailed = Object.keys(data.metrics).filter((k) => {
    const t = data.metrics[k].thresholds;
    return t && Object.keys(t).some((x) => !t[x].ok);
  });
  const result = {
    test: 'herald-capacity',
    region: REGION,
    tenant: TENANT,
    channel: CHANNEL,
    recipients_per_broadcast: RECIPIENTS,
    step_seconds: STEP_S,
    hold_p95_seconds: HOLD_P95_S,
    sustained_broadcasts_per_second: sustained,
    sustained_recipients_per_second: sustained * RECIPIENTS,
    broadcasts_completed: metric(data, 'broadcast_completed', 'passes'),
    broadcasts_not_completed: metric(data, 'broadcast_completed', 'fails'),
    recipients_sent: metric(data, 'recipients_sent', 'count'),
    http_req_failed_rate: metric(data, 'http_req_failed', 'rate'),
    dropped_iterations: metric(data, 'dropped_iterations', 'count'),
    thresholds_failed: thresholdsFailed,
    steps,
  };
  const lines = [
    '',
    `Herald capacity (${CHANNEL}, ${RECIPIENTS} recipients per Broadcast, steps of ${STEP_S}s, a step holds at p95 create→Completed <= ${HOLD_P95_S}s):`,
    '  step/s  recipients/s  created  completed  p50 ms  p95 ms  max ms  holds',
    ...steps.map(
      (s) =>
        `  ${String(s.broadcasts_per_second).padStart(6)}  ${String(s.recipients_per_second).padStart(12)}  ${String(s.created).padStart(7)}  ${String(s.completed).padStart(9)}  ${String(s.apply_to_complete_p50_ms).padStart(6)}  ${String(s.apply_to_complete_p95_ms).padStart(6)}  ${String(s.apply_to_complete_max_ms).padStart(6)}  ${s.holds ? 'yes' : 'no'}`,
    ),
    `  sustained: ${result.sustained_broadcasts_per_second} broadcasts/s = ${result.sustained_recipients_per_second} recipients/s`,
    `  completed ${result.broadcasts_completed}, not completed ${result.broadcasts_not_completed}, http errors ${(result.http_req_failed_rate * 100).toFixed(2)}%, dropped iterations ${result.dropped_iterations}`,
    thresholdsFailed.length ? `  THRESHOLDS FAILED: ${thresholdsFailed.join(', ')} (exit 99)` : '  thresholds: all passed',
    `  summary JSON: ${SUMMARY}`,
    '',
  ];
  return { stdout: lines.join('\n'), [SUMMARY]: JSON.stringify(result, null, 2) + '\n' };
}
