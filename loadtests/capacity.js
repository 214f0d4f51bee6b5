// k6 capacity test: the sustained Broadcast rate (and delivery rate) a Herald platform holds.
//
// Steps of a constant Broadcast arrival rate (HERALD_CAPACITY_STEPS per second,
// HERALD_CAPACITY_STEP_SECONDS each) through the Kubernetes API, each Broadcast to the same
// segment of HERALD_CAPACITY_RECIPIENTS contacts (broadcast-load.js). A step holds only when
// nothing was dropped (every offered Broadcast created, completed, every recipient sent) and
// the p95 from create to Completed stayed within HERALD_CAPACITY_HOLD_P95_S. Each step's
// throughput is measured from the platform: deliveries the database marks sent, per second
// from the step's first create to its last sent_at. The sustained rate is the measured
// delivery rate of the highest step that held with every step below it.
//
// Thresholds are on errors and completion only: every request answered, every Broadcast
// completed before the deadline. A failed threshold exits 99, which fails the platform's
// scheduled k6 Job and the release gate. Summaries: JSON and JUnit XML (HERALD_K6_SUMMARY_DIR).
//
// Environment (herald-env.js for where and who):
//   HERALD_CAPACITY_STEPS       Broadcasts per second per step, default "1,2,4,8,16"
//   HERALD_CAPACITY_STEP_SECONDS  default 20
//   HERALD_CAPACITY_RECIPIENTS  recipients per Broadcast, default 20
//   HERALD_CAPACITY_CHANNEL     sms (default) or push
//   HERALD_CAPACITY_COMPLETE_WITHIN_S  a Broadcast not Completed this long after the last step counts as not completed (default 120)
//   HERALD_CAPACITY_HOLD_P95_S  default 15
//   HERALD_CAPACITY_SUMMARY     JSON summary path (default $HERALD_K6_SUMMARY_DIR/herald-capacity-summary.json)
import { TENANT } from './herald-env.js';
import {
  CHANNEL,
  RECIPIENTS,
  createBroadcast,
  declareStepMetrics,
  failedThresholds,
  loadThresholds,
  metric,
  setupLoad,
  stepFigures,
  stepScenarios,
  stepTable,
  summaryFiles,
  teardownLoad,
  watchLoad,
} from './broadcast-load.js';

const REGION = __ENV.HERALD_REGION || 'local';
const STEP_S = Number(__ENV.HERALD_CAPACITY_STEP_SECONDS || 20);
const STEPS = (__ENV.HERALD_CAPACITY_STEPS || '1,2,4,8,16')
  .split(',')
  .map(Number)
  .filter((n) => n > 0)
  .map((rate) => ({ name: `${rate}/s`, rate, seconds: STEP_S }));
const COMPLETE_WITHIN_S = Number(__ENV.HERALD_CAPACITY_COMPLETE_WITHIN_S || 120);
const HOLD_P95_S = Number(__ENV.HERALD_CAPACITY_HOLD_P95_S || 15);

declareStepMetrics(STEPS.length);
const { scenarios, loadSeconds } = stepScenarios(STEPS, COMPLETE_WITHIN_S);

export const options = {
  scenarios,
  thresholds: loadThresholds(STEPS, { failOnDropped: false }),
  setupTimeout: '120s',
  teardownTimeout: '120s',
  summaryTrendStats: ['min', 'med', 'p(95)', 'p(99)', 'max'],
};

export const setup = () => setupLoad('cap');
export const create = createBroadcast;
export const watch = (data) => watchLoad(data, loadSeconds, COMPLETE_WITHIN_S);
export const teardown = teardownLoad;

export function handleSummary(data) {
  const steps = stepFigures(data, STEPS, HOLD_P95_S);
  let sustained;
  for (const s of steps) {
    if (!s.holds) break;
    sustained = s;
  }
  const thresholdsFailed = failedThresholds(data);
  const result = {
    test: 'herald-capacity',
    region: REGION,
    tenant: TENANT,
    channel: CHANNEL,
    recipients_per_broadcast: RECIPIENTS,
    step_seconds: STEP_S,
    hold_p95_seconds: HOLD_P95_S,
    sustained_broadcasts_per_second: sustained ? sustained.broadcasts_per_second : 0,
    sustained_deliveries_per_second_measured: sustained ? sustained.measured_deliveries_per_second : 0,
    broadcasts_completed: metric(data, 'broadcast_completed', 'passes'),
    broadcasts_not_completed: metric(data, 'broadcast_completed', 'fails'),
    recipients_sent: metric(data, 'recipients_sent', 'count'),
    http_req_failed_rate: metric(data, 'http_req_failed', 'rate'),
    dropped_iterations: metric(data, 'dropped_iterations', 'count'),
    thresholds_failed: thresholdsFailed,
    steps,
  };
  const out = summaryFiles('herald-capacity', result, data, steps);
  const lines = [
    '',
    `Herald capacity (${CHANNEL}, ${RECIPIENTS} recipients per Broadcast, steps of ${STEP_S}s; a step holds with nothing dropped and p95 create→Completed <= ${HOLD_P95_S}s; measured = deliveries sent per second, from the platform):`,
    ...stepTable(steps),
    `  sustained: ${result.sustained_broadcasts_per_second} Broadcasts/s, ${result.sustained_deliveries_per_second_measured} deliveries/s measured`,
    `  completed ${result.broadcasts_completed}, not completed ${result.broadcasts_not_completed}, http errors ${(result.http_req_failed_rate * 100).toFixed(2)}%, dropped iterations ${result.dropped_iterations}`,
    thresholdsFailed.length ? `  THRESHOLDS FAILED: ${thresholdsFailed.join(', ')} (exit 99)` : '  thresholds: all passed',
    `  summary: ${out.json} (JSON), ${out.junit} (JUnit)`,
    '',
  ];
  return { stdout: lines.join('\n'), ...out.files };
}
