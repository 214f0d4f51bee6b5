// Broadcast load in steps, shared by capacity.js, spike.js and soak.js: each step creates
// Broadcasts through the Kubernetes API at a constant arrival rate, every one to the same
// segment of RECIPIENTS contacts registered through the api in setup. One watcher lists the
// run's Broadcasts and records, per step, when each reached Completed; once all are done it
// reads every Broadcast's deliveries back from the api, so a step's throughput is measured
// from the platform (deliveries the database marks sent, over the time from the step's
// first create to its last sent_at), not computed as arrival rate × recipients.
//
// A step holds only when nothing was dropped: k6 created every Broadcast the step offered
// (no dropped iterations), each completed with every recipient sent and none failed, and
// the p95 from create to Completed stayed within the step's bound.
//
// summaries(): k6's figures as JSON and JUnit XML (one test case per step and per
// threshold) for CI.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { ADMIN_TOKEN, API, GIVEN_API_KEY, KUBE, KUBE_TOKEN, NS, TENANT } from './herald-env.js';

export const RECIPIENTS = Number(__ENV.HERALD_LOAD_RECIPIENTS || __ENV.HERALD_CAPACITY_RECIPIENTS || 20);
export const CHANNEL = (__ENV.HERALD_LOAD_CHANNEL || __ENV.HERALD_CAPACITY_CHANNEL) === 'push' ? 'push' : 'sms';
const SENDING_NUMBER = __ENV.HERALD_SENDING_NUMBER || '+18885550199';
const SYNTHETIC_RATE = 100000;
const POLL_S = 1.5;
const PAGE = 500;

/** Steps: [{ name, rate (Broadcasts/s), seconds }]; returns k6 scenarios plus the watcher, and the metrics. */
export function stepScenarios(steps, completeWithinS) {
  const scenarios = {};
  let start = 0;
  steps.forEach((s, i) => {
    scenarios[`step_${i}`] = {
      executor: 'constant-arrival-rate',
      exec: 'create',
      rate: s.rate,
      timeUnit: '1s',
      duration: `${s.seconds}s`,
      startTime: `${start}s`,
      // HERALD_LOAD_MAX_VUS: a test caps k6 itself to force dropped iterations
      // two VUs per arrival a second: a create that waits on a busy API server must not drop the next
      preAllocatedVUs: Math.min(Math.max(2, s.rate * 2), Number(__ENV.HERALD_LOAD_MAX_VUS) || Infinity),
      maxVUs: Number(__ENV.HERALD_LOAD_MAX_VUS) || Math.max(10, s.rate * 4),
      gracefulStop: '10s',
      env: { STEP: String(i) },
      tags: { step: String(i) },
    };
    start += s.seconds;
  });
  scenarios.watch = { executor: 'per-vu-iterations', exec: 'watch', vus: 1, iterations: 1, maxDuration: `${start + completeWithinS + 120}s` };
  return { scenarios, loadSeconds: start };
}

/**
 * Thresholds every Broadcast load run has (errors and completion), plus per step its
 * dropped iterations, so handleSummary sees them (k6 keeps a tagged sub-metric only when a
 * threshold names it). failOnDropped (spike, soak): a dropped iteration fails the run. The
 * capacity search expects its top steps not to hold, so there the bound only exposes the count.
 */
export function loadThresholds(steps, { failOnDropped }) {
  const t = { http_req_failed: ['rate<0.01'], checks: ['rate>0.99'], broadcast_completed: ['rate==1'] };
  steps.forEach((_, i) => {
    t[`dropped_iterations{scenario:step_${i}}`] = [failOnDropped ? 'count==0' : 'count>=0'];
  });
  return t;
}

export const completed = new Rate('broadcast_completed');
const recipientsSent = new Counter('recipients_sent');
const perStep = [];
/** Declared at init for `steps` steps (k6 metrics exist only if created at init). */
export function declareStepMetrics(n) {
  for (let i = 0; i < n; i++) {
    perStep.push({
      created: new Counter(`step_${i}_created`),
      completed: new Counter(`step_${i}_completed`),
      latency: new Trend(`step_${i}_apply_to_complete`, true),
      delivered: new Counter(`step_${i}_deliveries_sent`),
      firstCreate: new Trend(`step_${i}_create_epoch_ms`),
      sentAt: new Trend(`step_${i}_sent_at_epoch_ms`),
    });
  }
}

const kubeHeaders = { Authorization: `Bearer ${KUBE_TOKEN}`, 'Content-Type': 'application/json' };
const broadcastsPath = `${KUBE}/apis/herald.dev/v1alpha1/namespaces/${NS}/broadcasts`;

function adminParams(expected) {
  const p = { headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' } };
  if (expected) p.responseCallback = http.expectedStatuses(...expected);
  return p;
}

/** Spike and soak run against this machine's platform only. */
export function requireLoopback(what) {
  for (const url of [API, KUBE]) {
    const host = url.replace(/^\w+:\/\//, '').replace(/[:/].*$/, '').replace(/^\[|\]$/g, '');
    if (!['127.0.0.1', 'localhost', '::1'].includes(host) && !/^\[?::1\]?/.test(url.replace(/^\w+:\/\//, ''))) {
      fail(`${what} runs against a loopback platform only (npm run loadtest:${what}); ${url} is not loopback`);
    }
  }
}

/** The synthetic tenant with limits out of the way (its plan's API allowance too: k6 registers one device a request), its sending number, and an API key. */
function prepareTenant() {
  if (GIVEN_API_KEY) return { apiKey: GIVEN_API_KEY };
  if (!ADMIN_TOKEN) fail('set HERALD_API_KEY (a key of the tenant) or HERALD_ADMIN_TOKEN (to create one)');
  const t = http.post(
    `${API}/admin/tenants`,
    JSON.stringify({ id: TENANT, name: 'k6 synthetic load', plan: 'synthetic', sms_per_second: SYNTHETIC_RATE, push_per_second: SYNTHETIC_RATE }),
    adminParams([201, 409]),
  );
  if (t.status === 409) {
    const p = http.patch(`${API}/admin/tenants/${TENANT}`, JSON.stringify({ plan: 'synthetic', sms_per_second: SYNTHETIC_RATE, push_per_second: SYNTHETIC_RATE }), adminParams());
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

export function setupLoad(prefix) {
  if (!KUBE_TOKEN) fail('no Kubernetes credential: set HERALD_KUBE_TOKEN or HERALD_KUBE_TOKEN_FILE');
  const probe = http.get(`${broadcastsPath}?limit=1`, { headers: kubeHeaders });
  if (probe.status !== 200) fail(`cannot list Broadcasts in ${NS} at ${KUBE}: ${probe.status} ${probe.body}`);
  const tenant = prepareTenant();
  const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
  const tag = `k6-${prefix}-${runId}`;
  const api = { headers: { Authorization: `Bearer ${tenant.apiKey}`, 'Content-Type': 'application/json' } };
  const base = Math.floor(Math.random() * 7000) * 1000;
  if (CHANNEL === 'sms') {
    const contacts = [];
    for (let i = 0; i < RECIPIENTS; i++) contacts.push({ phone: `+1206${2000000 + base + i}`, tags: [tag], time_zone: 'America/Chicago' });
    const r = http.post(`${API}/v1/contacts`, JSON.stringify(contacts), api);
    if (r.status !== 200 || r.json('failed') !== 0) fail(`registering ${RECIPIENTS} contacts failed: ${r.status} ${r.body}`);
  } else {
    for (let i = 0; i < RECIPIENTS; i++) {
      const r = http.post(`${API}/v1/device-tokens`, JSON.stringify({ token: `k6${prefix}-${runId}-${i}:APA91bHeraldK6Load`, tags: [tag] }), api);
      if (r.status !== 201 && r.status !== 200) fail(`registering a device failed: ${r.status} ${r.body}`);
    }
  }
  return { ...tenant, runId, prefix, tag, startedAt: Date.now() };
}

export function createBroadcast(data) {
  const step = Number(__ENV.STEP);
  const name = `${data.prefix}-${data.runId}-${step}-${exec.scenario.iterationInTest}`;
  const now = Date.now();
  const body = {
    apiVersion: 'herald.dev/v1alpha1',
    kind: 'Broadcast',
    metadata: {
      name,
      namespace: NS,
      labels: { 'herald.dev/load-test': data.prefix, 'herald.dev/run': data.runId, 'herald.dev/step': String(step) },
      annotations: { 'herald.dev/created-ms': String(now) },
    },
    spec: {
      tenant: TENANT,
      channel: CHANNEL,
      message: CHANNEL === 'sms' ? { text: `Load run ${data.runId}. Reply STOP to opt out.` } : { title: 'Load run', text: data.runId },
      audience: { segment: { tags: [data.tag] } },
    },
  };
  const r = http.post(broadcastsPath, JSON.stringify(body), { headers: kubeHeaders, tags: { name: 'create broadcast' } });
  if (check(r, { 'broadcast created': (x) => x.status === 201 })) {
    perStep[step].created.add(1);
    perStep[step].firstCreate.add(now);
  }
}

/** The api's ids of this run's Broadcasts, by name (newest first, until older than the run). */
function broadcastIds(data, api) {
  const ids = {};
  let cursor = '';
  for (;;) {
    const r = http.get(`${API}/v1/broadcasts?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { ...api, tags: { name: 'list tenant broadcasts' } });
    if (r.status !== 200) break;
    const items = r.json('items') || [];
    let older = false;
    for (const b of items) {
      if (b.name.startsWith(`${data.prefix}-${data.runId}-`)) ids[b.name] = b.id;
      if (Date.parse(b.created_at) < data.startedAt - 60000) older = true;
    }
    cursor = r.json('next_cursor');
    if (!cursor || older) break;
  }
  return ids;
}

/** Deliveries the platform marks sent for one Broadcast, with their database-clock sent_at. */
function sentTimes(id, api) {
  const times = [];
  let cursor = '';
  for (;;) {
    const r = http.get(`${API}/v1/broadcasts/${id}/deliveries?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, {
      ...api,
      tags: { name: 'list deliveries' },
    });
    if (r.status !== 200) break;
    for (const d of r.json('items') || []) if ((d.status === 'sent' || d.status === 'delivered') && d.sent_at) times.push(Date.parse(d.sent_at));
    cursor = r.json('next_cursor');
    if (!cursor) break;
  }
  return times;
}

export function watchLoad(data, loadSeconds, completeWithinS) {
  const deadline = data.startedAt + (loadSeconds + completeWithinS) * 1000;
  const loadEnds = data.startedAt + (loadSeconds + 10) * 1000;
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
      const step = Number(bc.metadata.labels['herald.dev/step']);
      const counts = st.counts || {};
      const ok = st.phase === 'Completed' && counts.sent === RECIPIENTS && !counts.failed;
      done[name] = { ok, step };
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
  // Throughput from the platform's own records: every delivery of the run, read back.
  const api = { headers: { Authorization: `Bearer ${data.apiKey}` } };
  const ids = broadcastIds(data, api);
  for (const [name, result] of Object.entries(done)) {
    if (!ids[name]) continue;
    const times = sentTimes(ids[name], api);
    perStep[result.step].delivered.add(times.length);
    for (const t of times) perStep[result.step].sentAt.add(t);
  }
}

export function teardownLoad(data) {
  if (!data) return;
  // Delete this run's Broadcasts (the operator's finalizer cancels anything unsent).
  http.del(`${broadcastsPath}?labelSelector=${encodeURIComponent(`herald.dev/run=${data.runId}`)}`, null, { headers: kubeHeaders, tags: { name: 'delete broadcasts' } });
  if (data.keyId && ADMIN_TOKEN) http.post(`${API}/admin/tenants/${TENANT}/api-keys/${data.keyId}/revoke`, '{}', adminParams());
}

export function metric(data, name, field) {
  const m = data.metrics[name];
  return m && m.values && m.values[field] !== undefined ? m.values[field] : 0;
}

/** Per step: what was offered, created, completed, dropped, latency, and the measured delivery rate. */
export function stepFigures(data, steps, holdP95S) {
  return steps.map((s, i) => {
    const created = metric(data, `step_${i}_created`, 'count');
    const done = metric(data, `step_${i}_completed`, 'count');
    const dropped = metric(data, `dropped_iterations{scenario:step_${i}}`, 'count');
    const p95 = metric(data, `step_${i}_apply_to_complete`, 'p(95)');
    const deliveries = metric(data, `step_${i}_deliveries_sent`, 'count');
    const first = metric(data, `step_${i}_create_epoch_ms`, 'min');
    const last = metric(data, `step_${i}_sent_at_epoch_ms`, 'max');
    const spanS = deliveries > 0 && last > first ? (last - first) / 1000 : 0;
    const offered = s.rate * s.seconds;
    // k6 may start one iteration more than rate × seconds at the step's edge
    const holds = created > 0 && dropped === 0 && created >= offered && done === created && deliveries === created * RECIPIENTS && p95 <= holdP95S * 1000;
    return {
      name: s.name,
      broadcasts_per_second: s.rate,
      seconds: s.seconds,
      offered,
      created,
      dropped,
      completed: done,
      deliveries_sent: deliveries,
      measured_deliveries_per_second: spanS > 0 ? Math.round((deliveries / spanS) * 10) / 10 : 0,
      apply_to_complete_p50_ms: Math.round(metric(data, `step_${i}_apply_to_complete`, 'med')),
      apply_to_complete_p95_ms: Math.round(p95),
      apply_to_complete_max_ms: Math.round(metric(data, `step_${i}_apply_to_complete`, 'max')),
      holds,
    };
  });
}

export function failedThresholds(data) {
  return Object.keys(data.metrics).filter((k) => {
    const t = data.metrics[k].thresholds;
    return t && Object.keys(t).some((x) => !t[x].ok);
  });
}

const xml = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JUnit XML: a test case per threshold and per step (a step that did not hold is a failure). */
export function junit(suite, data, steps) {
  const cases = [];
  for (const [name, m] of Object.entries(data.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds || {})) {
      cases.push(`    <testcase classname="${xml(suite)}.thresholds" name="${xml(`${name}: ${expr}`)}">${t.ok ? '' : `<failure message="${xml(`${name} ${expr} failed`)}"/>`}</testcase>`);
    }
  }
  for (const s of steps) {
    const label = `step ${s.name} (${s.broadcasts_per_second}/s for ${s.seconds}s): ${s.measured_deliveries_per_second} deliveries/s measured`;
    const why = `created ${s.created}/${s.offered}, dropped ${s.dropped}, completed ${s.completed}, deliveries ${s.deliveries_sent}, p95 ${s.apply_to_complete_p95_ms} ms`;
    cases.push(`    <testcase classname="${xml(suite)}.steps" name="${xml(label)}">${s.holds ? '' : `<failure message="${xml(`did not hold: ${why}`)}"/>`}</testcase>`);
  }
  const failures = cases.filter((c) => c.includes('<failure')).length;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n  <testsuite name="${xml(suite)}" tests="${cases.length}" failures="${failures}">\n${cases.join('\n')}\n  </testsuite>\n</testsuites>\n`;
}

/** The summary files: <dir>/<suite>-summary.json and <dir>/<suite>-junit.xml (HERALD_K6_SUMMARY_DIR, default /tmp). */
export function summaryFiles(suite, result, data, steps) {
  const dir = (__ENV.HERALD_K6_SUMMARY_DIR || '/tmp').replace(/\/$/, '');
  const json = __ENV.HERALD_CAPACITY_SUMMARY && suite === 'herald-capacity' ? __ENV.HERALD_CAPACITY_SUMMARY : `${dir}/${suite}-summary.json`;
  const xmlPath = `${dir}/${suite}-junit.xml`;
  return { files: { [json]: JSON.stringify(result, null, 2) + '\n', [xmlPath]: junit(suite, data, steps) }, json, junit: xmlPath };
}

/** The table people read. */
export function stepTable(steps) {
  return [
    '  step      /s  secs  offered  created  dropped  completed  deliveries  measured/s  p50 ms  p95 ms  max ms  holds',
    ...steps.map(
      (s) =>
        `  ${String(s.name).padEnd(8)}${String(s.broadcasts_per_second).padStart(4)}  ${String(s.seconds).padStart(4)}  ${String(s.offered).padStart(7)}  ${String(s.created).padStart(7)}  ${String(s.dropped).padStart(7)}  ${String(s.completed).padStart(9)}  ${String(s.deliveries_sent).padStart(10)}  ${String(s.measured_deliveries_per_second).padStart(10)}  ${String(s.apply_to_complete_p50_ms).padStart(6)}  ${String(s.apply_to_complete_p95_ms).padStart(6)}  ${String(s.apply_to_complete_max_ms).padStart(6)}  ${s.holds ? 'yes' : 'no'}`,
    ),
  ];
}
