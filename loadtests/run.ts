/**
 * npm run loadtest:smoke | loadtest:capacity | loadtest:spike | loadtest:soak
 *
 *   tsx loadtests/run.ts <smoke|capacity|spike|soak> [--keep] [-- <k6 run options>]
 *
 * Starts a fresh local platform (devenv/local-platform.ts) in a temporary data
 * directory on free loopback ports, runs the k6 script against it, stops the
 * platform and exits with k6's exit code (99: a threshold failed). --keep leaves
 * the data directory (and its logs) in place. capacity, spike and soak write their
 * summaries (JSON and JUnit XML) to .herald/loadtests/. Everything is on loopback.
 *
 * The synthetic tenant is not held back by limits meant for real carriers: the
 * worker's account SMS rate (HERALD_ACCOUNT_SMS_PER_SECOND) is raised to 100,000/s,
 * and capacity.js raises the tenant's and its number's rates. Everything is sent to
 * the provider simulator.
 */
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalPlatform, formatLogLine, REPO } from '../devenv/local-platform.js';
import { k6EnvFor, LOADTESTS, runK6 } from './k6-runner.js';

const { values, positionals } = parseArgs({ options: { keep: { type: 'boolean', default: false } }, allowPositionals: true, strict: false });
const which = positionals[0];
const SCRIPTS = ['smoke', 'capacity', 'spike', 'soak'];
if (!which || !SCRIPTS.includes(which)) {
  console.error(`usage: tsx loadtests/run.ts <${SCRIPTS.join('|')}> [--keep] [-- k6 options]`);
  process.exit(2);
}
const dashdash = process.argv.indexOf('--');
const k6Args = dashdash >= 0 ? process.argv.slice(dashdash + 1) : [];

const dataDir = await mkdtemp(path.join(os.tmpdir(), `herald-loadtest-${which}-`));
console.log(`starting a local platform in ${dataDir} ...`);
const platform = await startLocalPlatform({
  dataDir,
  ports: 'free',
  logLevel: process.env.LOG_LEVEL ?? 'warn',
  onLog: (name, line) => {
    if (name === 'platform' || /"level":(40|50|60)/.test(line)) console.log(`${name.padEnd(9)} | ${formatLogLine(line)}`);
  },
  env: { worker: { HERALD_ACCOUNT_SMS_PER_SECOND: '100000' } },
});

let code: number | null;
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await platform.stop();
  if (!values.keep) await rm(dataDir, { recursive: true, force: true });
  else console.log(`data and logs kept in ${dataDir}`);
};
process.on('SIGINT', () => void stop().then(() => process.exit(130)));
process.on('SIGTERM', () => void stop().then(() => process.exit(143)));

try {
  const env = await k6EnvFor(platform);
  const out = path.join(REPO, '.herald', 'loadtests');
  await mkdir(out, { recursive: true });
  env.HERALD_K6_SUMMARY_DIR = out;
  if (which === 'capacity') env.HERALD_CAPACITY_SUMMARY = path.join(out, 'capacity-summary.json');
  for (const [k, v] of Object.entries(process.env)) if (/^HERALD_(CAPACITY|SMOKE|SPIKE|SOAK|LOAD)_/.test(k)) env[k] = v!;
  const r = await runK6(path.join(LOADTESTS, `${which}.js`), env, { echo: true, args: k6Args });
  code = r.code;
} finally {
  await stop();
}
process.exit(code ?? 1);
