// k6 smoke test of a running Herald platform: the paths a tenant really uses, end to end.
//
// Each iteration registers contacts and devices through the api (tagged for this
// iteration alone), creates an SMS and a push Broadcast to that tag through the
// Kubernetes API, waits for both to complete with every recipient sent, then deletes
// them. Thresholds are on errors and completion only: no latency thresholds (two
// shared cores make latency a measurement, not a gate). A failed threshold exits 99.
//
// Environment (the local runner, loadtests/run.ts, sets all of it):
//   HERALD_API_URL                  the api, e.g. http://127.0.0.1:8080
//   HERALD_KUBE_API                 the Kubernetes API server, e.g. https://127.0.0.1:6443
//   HERALD_KUBE_TOKEN[_FILE]        a bearer token allowed to manage Broadcasts in HERALD_NAMESPACE
//                                   (default file: the pod's service-account token)
//                                   The API server's CA comes from SSL_CERT_FILE (Go's TLS roots).
//   HERALD_ADMIN_TOKEN[_FILE]       creates the tenant, its sending number and an API key; or
//   HERALD_API_KEY[_FILE]           an API key of an existing tenant with a sending number
//   HERALD_TENANT                   default k6-synthetic
//   HERALD_NAMESPACE                default herald-loadtest
//   HERALD_SMOKE_ITERATIONS         default 4 (2 VUs)
//   HERALD_SMOKE_IMPOSSIBLE_THRESHOLD=1   add a threshold no run can meet (proves exit 99)
import http from 'k6/http';
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { ADMIN_TOKEN, API, GIVEN_API_KEY, KUBE, KUBE_TOKEN, NS, TENANT } from './herald-env.js';

const ITERATIONS = Number(__ENV.HERALD_SMOKE_ITERATIONS || 4);
const CONTACTS_PER_ITERATION = 5;
const DEVICES_PER_ITERATION = 3;
const COMPLETE_WITHIN_S = Number(__ENV.HERALD_SMOKE_COMPLETE_WITHIN_S || 90);
// The synthetic tenant's own number (toll-free range, never a real customer's).
const SENDING_NUMBER = __ENV.HERALD_SENDING_NUMBER || '+18885550199';

const completed = new Rate('broadcast_completed');
const applyToComplete = new Trend('broadcast_apply_to_complete', true);
const recipientsSent = new Counter('recipients_sent');
const registered = new Counter('registrations');

const thresholds = {
  http_req_failed: ['rate<0.01'],
  checks: ['rate==1'],
  broadcast_completed: ['rate==1'],
};
if (__ENV.HERALD_SMOKE_IMPOSSIBLE_THRESHOLD === '1') {
  // No smoke run sends a billion messages: this threshold always fails, so k6 exits 99.
  thresholds.recipients_sent = ['count>1000000000'];
}

export const options = {
  scenarios: {
    smoke: { executor: 'shared-iterations', vus: Math.min(2, ITERATIONS), iterations: ITERATIONS, maxDuration: '5m' },
  },
  thresholds,
  setupTimeout: '60s',
  teardownTimeout: '60s',
  summaryTrendStats: ['min', 'med', 'p(95)', 'max'],
};

const kubeHeaders = { Authorization: `Bearer ${KUBE_TOKEN}`, 'Content-Type': 'application/json' };
const broadcastsPath = `${KUBE}/apis/herald.dev/v1alpha1/namespaces/${NS}/broadcasts`;
const json = (r) => {
  try {
    return r.json();
  } catch (e) {
    return null;
  }
};

export function setup() {
  if (!KUBE_TOKEN) fail('no Kubernetes credential: set HERALD_KUBE_TOKEN or HERALD_KUBE_TOKEN_FILE');
  let apiKey = GIVEN_API_KEY;
  let keyId;
  if (!apiKey) {
    if (!ADMIN_TOKEN) fail('set HERALD_API_KEY (a key of the tenant) or HERALD_ADMIN_TOKEN (to create one)');
    const admin = { headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' } };
    const ok409 = { ...admin, responseCallback: http.expectedStatuses(201, 409) };
    const t = http.post(`${API}/admin/tenants`, JSON.stringify({ id: TENANT, name: 'k6 synthetic load', plan: 'synthetic', sms_per_second: 1000, push_per_second: 1000 }), ok409);
    check(t, { 'tenant exists': (r) => r.status === 201 || r.status === 409 });
    http.post(`${API}/admin/tenants/${TENANT}/sending-numbers`, JSON.stringify({ phone_number: SENDING_NUMBER, kind: 'toll_free', per_second: 1000 }), ok409);
    const numbers = json(http.get(`${API}/admin/tenants/${TENANT}/sending-numbers`, admin));
    if (!numbers || !numbers.items || numbers.items.length === 0) fail(`tenant ${TENANT} has no sending number (is ${SENDING_NUMBER} another tenant's?)`);
    const k = http.post(`${API}/admin/tenants/${TENANT}/api-keys`, '{}', admin);
    if (k.status !== 201) fail(`could not create an API key for ${TENANT}: ${k.status} ${k.body}`);
    apiKey = k.json('key');
    keyId = k.json('id');
  }
  // Distinct phone numbers per run: the simulator's always-delivered range +1206 2000000..9999999.
  const base = Math.floor(Math.random() * 7000) * 1000;
  return { apiKey, keyId, base, runId: `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}` };
}

function phone(data, n) {
  return `+1206${2000000 + data.base + n}`;
}

function createBroadcast(name, spec) {
  const body = { apiVersion: 'herald.dev/v1alpha1', kind: 'Broadcast', metadata: { name, namespace: NS, labels: { 'herald.dev/load-test': 'smoke' } }, spec };
  const r = http.post(broadcastsPath, JSON.stringify(body), { headers: kubeHeaders, tags: { name: 'create broadcast' } });
  check(r, { 'broadcast created': (x) => x.status === 201 });
  return r.status === 201;
}

/** Polls until the Broadcast is Completed (or Failed) or the deadline passes; returns its status. */
function waitComplete(name, startedMs) {
  const deadline = Date.now() + COMPLETE_WITHIN_S * 1000;
  while (Date.now() < deadline) {
    const r = http.get(`${broadcastsPath}/${name}`, { headers: kubeHeaders, tags: { name: 'get broadcast' } });
    const status = (json(r) || {}).status || {};
    if (status.phase === 'Completed' || status.phase === 'Failed') {
      applyToComplete.add(Date.now() - startedMs);
      return status;
    }
    sleep(0.5);
  }
  return null;
}

export default function (data) {
  const iter = exec.scenario.iterationInTest;
  const tag = `k6-${data.runId}-${iter}`;
  const api = { headers: { Authorization: `Bearer ${data.apiKey}`, 'Content-Type': 'application/json' } };

  // Contacts (with a time zone each) and devices, through the api.
  const zones = ['America/Chicago', 'America/New_York', 'Europe/London', 'Australia/Sydney', 'America/Los_Angeles'];
  const contacts = [];
  for (let i = 0; i < CONTACTS_PER_ITERATION; i++) {
    contacts.push({ phone: phone(data, iter * 10 + i), name: `k6 ${iter}/${i}`, time_zone: zones[i % zones.length], tags: [tag] });
  }
  const c = http.post(`${API}/v1/contacts`, JSON.stringify(contacts), { ...api, tags: { name: 'register contacts' } });
  const report = json(c) || {};
  check(c, { 'contacts registered': (r) => r.status === 200 && report.failed === 0 && report.created + report.updated === CONTACTS_PER_ITERATION });
  registered.add(CONTACTS_PER_ITERATION, { kind: 'contact' });
  for (let i = 0; i < DEVICES_PER_ITERATION; i++) {
    const token = `k6ok-${data.runId}-${iter}-${i}:APA91bHeraldK6SyntheticDeviceToken`;
    const d = http.post(`${API}/v1/device-tokens`, JSON.stringify({ token, platform: 'android', tags: [tag], contact_phone: contacts[i].phone }), {
      ...api,
      tags: { name: 'register device' },
    });
    check(d, { 'device registered': (r) => r.status === 201 || r.status === 200 });
    registered.add(1, { kind: 'device' });
  }

  // One SMS and one push Broadcast to exactly those, through the Kubernetes API.
  const sms = `smoke-${data.runId}-${iter}-sms`;
  const push = `smoke-${data.runId}-${iter}-push`;
  const started = Date.now();
  const created = [
    createBroadcast(sms, { tenant: TENANT, channel: 'sms', message: { text: `k6 smoke ${iter}. Reply STOP to opt out.` }, audience: { segment: { tags: [tag] } } }),
    createBroadcast(push, { tenant: TENANT, channel: 'push', message: { title: 'k6 smoke', text: `push ${iter}` }, audience: { segment: { tags: [tag] } } }),
  ];
  const expected = [CONTACTS_PER_ITERATION, DEVICES_PER_ITERATION];
  [sms, push].forEach((name, i) => {
    const st = created[i] ? waitComplete(name, started) : null;
    const counts = (st && st.counts) || {};
    const done = !!st && st.phase === 'Completed' && counts.sent === expected[i] && (counts.failed || 0) === 0;
    completed.add(done, { channel: i === 0 ? 'sms' : 'push' });
    check(st, { [`${i === 0 ? 'sms' : 'push'} broadcast completed, every recipient sent`]: () => done });
    if (done) recipientsSent.add(counts.sent);
    if (created[i]) {
      const del = http.del(`${broadcastsPath}/${name}`, null, { headers: kubeHeaders, tags: { name: 'delete broadcast' } });
      check(del, { 'broadcast deleted': (r) => r.status === 200 || r.status === 202 });
    }
  });
}

export function teardown(data) {
  if (data && data.keyId && ADMIN_TOKEN) {
    http.post(`${API}/admin/tenants/${TENANT}/api-keys/${data.keyId}/revoke`, '{}', {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    });
  }
}
