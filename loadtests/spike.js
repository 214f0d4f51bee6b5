// k6 spike test (loopback only: npm run loadtest:spike): a quiet baseline, a sudden burst of
// Broadcasts, then quiet again. Bounded: about HERALD_SPIKE_BASE_S + HERALD_SPIKE_S +
// HERALD_SPIKE_RECOVERY_S seconds of load, then at most HERALD_SPIKE_COMPLETE_WITHIN_S to finish.
// Passes (exit 0) when nothing was dropped or failed and every Broadcast of every phase
// completed with every recipient sent; the recovery phase must also hold its p95 (the burst
// drained, latency back to normal). Summaries: JSON and JUnit XML (HERALD_K6_SUMMARY_DIR).
//
//   HERALD_SPIKE_BASE_RATE (1/s), HERALD_SPIKE_RATE (10/s), HERALD_SPIKE_BASE_S (10),
//   HERALD_SPIKE_S (10), HERALD_SPIKE_RECOVERY_S (20), HERALD_SPIKE_COMPLETE_WITHIN_S (120),
//   HERALD_SPIKE_RECOVERY_P95_S (15), HERALD_LOAD_RECIPIENTS (20)
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
const BASE = num('HERALD_SPIKE_BASE_RATE', 1);
const STEPS = [
  { name: 'baseline', rate: BASE, seconds: num('HERALD_SPIKE_BASE_S', 10) },
  { name: 'spike', rate: num('HERALD_SPIKE_RATE', 10), seconds: num('HERALD_SPIKE_S', 10) },
  { name: 'recovery', rate: BASE, seconds: num('HERALD_SPIKE_RECOVERY_S', 20) },
];
const COMPLETE_WITHIN_S = num('HERALD_SPIKE_COMPLETE_WITHIN_S', 120);
const RECOVERY_P95_S = num('HERALD_SPIKE_RECOVERY_P95_S', 15);

declareStepMetrics(STEPS.length);
const { scenarios, loadSeconds } = stepScenarios(STEPS, COMPLETE_WITHIN_S);
const thresholds = loadThresholds(STEPS, { failOnDropped: true });
thresholds['step_2_apply_to_complete'] = [`p(95)<=${RECOVERY_P95_S * 1000}`];

export const options = { scenarios, thresholds, setupTimeout: '120s', teardownTimeout: '120s', summaryTrendStats: ['min', 'med', 'p(95)', 'max'] };

export function setup() {
  requireLoopback('spike');
  return setupLoad('spike');
}
export const create = createBroadcast;
export const watch = (data) => watchLoad(data, loadSeconds, COMPLETE_WITHIN_S);
export const teardown = teardownLoad;

export function handleSummary(data) {
  // spike and baseline may queue (a spike is meant to); only recovery is held to its p95
  const steps = stepFigures(data, STEPS, Infinity).map((s) => (s.name === 'recovery' ? { ...s, holds: s.holds && s.apply_to_complete_p95_ms <= RECOVERY_P95_S * 1000 } : s));
  const thresholdsFailed = failedThresholds(data);
  const result = { test: 'herald-spike', tenant: TENANT, channel: CHANNEL, recipients_per_broadcast: RECIPIENTS, thresholds_failed: thresholdsFailed, steps };
  const out = summaryFiles('herald-spike', result, data, steps);
  const lines = [
    '',
    `Herald spike (${CHANNEL}, ${RECIPIENTS} recipients per Broadcast; recovery p95 bound ${RECOVERY_P95_S}s):`,
    ...stepTable(steps),
    thresholdsFailed.length ? `  THRESHOLDS FAILED: ${thresholdsFailed.join(', ')} (exit 99)` : '  thresholds: all passed',
    `  summary: ${out.json} (JSON), ${out.junit} (JUnit)`,
    '',
  ];
  return { stdout: lines.join('\n'), ...out.files };
}
