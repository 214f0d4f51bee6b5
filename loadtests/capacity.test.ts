/**
 * capacity.js as a gate, against the local platform: a step's throughput is what the
 * platform recorded (deliveries the database marks sent), a step where k6 dropped
 * iterations does not hold even though every Broadcast it did create completed, and the
 * JSON and JUnit summaries say so. spike.js and soak.js refuse a platform that is not on
 * loopback.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../devenv/test-database.js';
import { startLocalPlatform, type LocalPlatform } from '../devenv/local-platform.js';
import { k6EnvFor, LOADTESTS, runK6 } from './k6-runner.js';

let db: TestDatabase;
let dataDir: string;
let platform: LocalPlatform;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-k6-capacity-'));
  platform = await startLocalPlatform({ dataDir, databaseUrl: db.url, ports: 'free', seed: false, env: { worker: { HERALD_ACCOUNT_SMS_PER_SECOND: '100000' } } });
  env = { ...(await k6EnvFor(platform)), HERALD_K6_SUMMARY_DIR: dataDir };
}, 240_000);

afterAll(async () => {
  await platform?.stop();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

interface Step {
  name: string;
  offered: number;
  created: number;
  dropped: number;
  completed: number;
  deliveries_sent: number;
  measured_deliveries_per_second: number;
  holds: boolean;
}

describe('k6 capacity as a gate', () => {
  it('measures deliveries per second from the platform, and holds a step only when nothing was dropped', async () => {
    // step 0: 1 Broadcast/s for 4 s (k6 keeps up); step 1: 500/s for 4 s with one VU (it cannot)
    const r = await runK6(path.join(LOADTESTS, 'capacity.js'), {
      ...env,
      HERALD_CAPACITY_STEPS: '1,500',
      HERALD_CAPACITY_STEP_SECONDS: '4',
      HERALD_CAPACITY_RECIPIENTS: '3',
      HERALD_CAPACITY_COMPLETE_WITHIN_S: '150',
      HERALD_CAPACITY_HOLD_P95_S: '600', // only drops can fail the flood step
      HERALD_LOAD_MAX_VUS: '1',
    });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const summary = JSON.parse(await readFile(path.join(dataDir, 'herald-capacity-summary.json'), 'utf8')) as {
      steps: Step[];
      sustained_broadcasts_per_second: number;
      sustained_deliveries_per_second_measured: number;
      recipients_sent: number;
    };
    const [slow, flood] = summary.steps as [Step, Step];
    expect(slow).toMatchObject({ offered: 4, dropped: 0, completed: slow.created, deliveries_sent: slow.created * 3, holds: true });
    expect(slow.created).toBeGreaterThanOrEqual(4);
    expect(flood.dropped).toBeGreaterThan(0);
    expect(flood.completed).toBe(flood.created);
    expect(flood.holds).toBe(false);
    expect(summary.sustained_broadcasts_per_second).toBe(1);

    // The deliveries counted are the database's: every one of the run's sent rows, none more.
    const rows = await db.pool.query<{ n: number; first: Date; last: Date }>(
      `SELECT count(*)::int AS n FROM deliveries WHERE tenant_id = 'k6-synthetic' AND status IN ('sent', 'delivered') AND sent_at IS NOT NULL`,
    );
    expect(slow.deliveries_sent + flood.deliveries_sent).toBe(rows.rows[0]!.n);
    expect(summary.recipients_sent).toBe(rows.rows[0]!.n);
    // 3 deliveries a Broadcast, one Broadcast a second: from the first create to the last send
    // the platform cannot have done more than 3 a second over the step's (created - 1) seconds
    expect(slow.measured_deliveries_per_second).toBeGreaterThan(0);
    expect(slow.measured_deliveries_per_second).toBeLessThanOrEqual((slow.created * 3) / (slow.created - 1));
    expect(summary.sustained_deliveries_per_second_measured).toBe(slow.measured_deliveries_per_second);

    const junit = await readFile(path.join(dataDir, 'herald-capacity-junit.xml'), 'utf8');
    expect(junit).toMatch(/<testsuite name="herald-capacity" tests="\d+" failures="1">/);
    expect(junit).toContain('name="step 1/s (1/s for 4s)');
    expect(junit).toMatch(/name="step 500\/s \(500\/s for 4s\)[^"]*"><failure message="did not hold: created \d+\/2000, dropped [1-9]/);
    expect(r.stdout).toContain('sustained: 1 Broadcasts/s');
  }, 400_000);

  it('spike and soak refuse a platform that is not on loopback', async () => {
    for (const script of ['spike.js', 'soak.js']) {
      const r = await runK6(path.join(LOADTESTS, script), { ...env, HERALD_API_URL: 'http://10.0.0.1:8080' });
      expect(r.code, script).not.toBe(0);
      expect(`${r.stdout}${r.stderr}`, script).toContain('runs against a loopback platform only');
    }
  }, 120_000);
});
