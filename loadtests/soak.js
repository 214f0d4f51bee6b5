// k6 soak test (loopback only: npm run loadtest:soak): a steady Broadcast rate held for a
// bounded time (HERALD_SOAK_SECONDS, default 300, at most 3600), in equal windows, so a
// platform that slows down as it runs (a leak, a growing table scan, a queue that does not
// drain) shows as a later window whose measured delivery rate or p95 falls behind the
// first. Passes (exit 0) when nothing was dropped or failed, every Broadcast completed with
// every recipient sent, and every window held its p95 (HERALD_SOAK_P95_S).
// Summaries: JSON and JUnit XML (HERALD_K6_SUMMARY_DIR).
//
//   HERALD_SOAK_RATE (2/s), HERALD_SOAK_SECONDS (300), HERALD_SOAK_WINDOWS (5),
//   HERALD_SOAK_P95_S (15), HERALD_SOAK_COMPLETE_WITHIN_S (120), HERALD_LOAD_RECIPIENTS (20)
import { fail } from 'k6';
import { TENANT } from './herald-env.js';
import {
  CHANNEL,
  RECIPIENTS,
  createBroadcast,
  declareStepMetrics,
  failedThresholds,
  loadThresholds,
  requireLoopback,
  setupLoad,
  stepFigures,
  stepScenarios,
  stepTable,
  summaryFiles,
  teardownLoad,
  watchLoad,
} from './broadcast-load.js';

const num = (k, d) => Number(__ENV[k] || d);
const SECONDS = num('HERALD_SOAK_SECONDS', 300);
if (!(SECONDS > 0 && SECONDS <= 3600)) fail(`HERALD_SOAK_SECONDS: ${SECONDS} is not between 1 and 3600 (a soak here is bounded)`);
const WINDOWS = Math.max(1, Math.min(20, num('HERALD_SOAK_WINDOWS', 5)));
const RATE = num('HERALD_SOAK_RATE', 2);
const P95_S = num('HERALD_SOAK_P95_S', 15);
const COMPLETE_WITHIN_S = num('HERALD_SOAK_COMPLETE_WITHIN_S', 120);
const STEPS = Array.from({ length: WINDOWS }, (_, i) => ({ name: `w${i + 1}`, rate: RATE, seconds: Math.max(1, Math.round(SECONDS / WINDOWS)) }));

declareStepMetrics(STEPS.length);
const { scenarios, loadSeconds } = stepScenarios(STEPS, COMPLETE_WITHIN_S);
const thresholds = loadThresholds(STEPS, { failOnDropped: true });
STEPS.forEach((_, i) => {
  thresholds[`step_${i}_apply_to_complete`] = [`p(95)<=${P95_S * 1000}`];
});

export const options = { scenarios, thresholds, setupTimeout: '120s', teardownTimeout: '120s', summaryTrendStats: ['min', 'med', 'p(95)', 'max'] };

export function setup() {
  requireLoopback('soak');
  return setupLoad('soak');
}
export const create = createBroadcast;
export const watch = (data) => watchLoad(data, loadSeconds, COMPLETE_WITHIN_S);
export const teardown = teardownLoad;

export function handleSummary(data) {
  const steps = stepFigures(data, STEPS, P95_S);
  const first = steps[0] ? steps[0].measured_deliveries_per_second : 0;
  const last = steps.length ? steps[steps.length - 1].measured_deliveries_per_second : 0;
  const thresholdsFailed = failedThresholds(data);
  const result = {
    test: 'herald-soak',
    tenant: TENANT,
    channel: CHANNEL,
    recipients_per_broadcast: RECIPIENTS,
    rate: RATE,
    seconds: SECONDS,
    measured_deliveries_per_second_first_window: first,
    measured_deliveries_per_second_last_window: last,
    thresholds_failed: thresholdsFailed,
    steps,
  };
  const out = summaryFiles('herald-soak', result, data, steps);
  const lines = [
    '',
    `Herald soak (${CHANNEL}, ${RATE} Broadcasts/s of ${RECIPIENTS} recipients for ${SECONDS}s in ${WINDOWS} windows; p95 bound ${P95_S}s):`,
    ...stepTable(steps),
    `  measured deliveries/s: first window ${first}, last window ${last}`,
    thresholdsFailed.length ? `  THRESHOLDS FAILED: ${thresholdsFailed.join(', ')} (exit 99)` : '  thresholds: all passed',
    `  summary: ${out.json} (JSON), ${out.junit} (JUnit)`,
    '',
  ];
  return { stdout: lines.join('\n'), ...out.files };
}
