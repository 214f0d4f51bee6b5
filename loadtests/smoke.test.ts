/**
 * k6 (the binary built by `npm run tools`) against the local platform: the smoke
 * script creates Broadcasts through the Kubernetes API with the load-test
 * ServiceAccount's token and registers contacts and devices through the api, and
 * passes its error and completion thresholds (exit 0); the same script with one
 * threshold no run can meet exits 99, the code that fails a pipeline or a k6 Job.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../devenv/test-database.js';
import { startLocalPlatform, type LocalPlatform } from '../devenv/local-platform.js';
import { K6_THRESHOLD_FAILED, k6EnvFor, LOADTESTS, runK6 } from './k6-runner.js';

let db: TestDatabase;
let dataDir: string;
let platform: LocalPlatform;
let env: Record<string, string>;
const smoke = path.join(LOADTESTS, 'smoke.js');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-k6-smoke-'));
  platform = await startLocalPlatform({ dataDir, databaseUrl: db.url, ports: 'free', seed: false });
  env = await k6EnvFor(platform);
}, 240_000);

afterAll(async () => {
  await platform?.stop();
  await db?.drop();
  if (dataDir && !process.env.HERALD_KEEP_E2E_DIR) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

describe('k6 smoke against the local platform', () => {
  it('registers contacts and devices through the api, creates Broadcasts through the Kubernetes API, all complete: exit 0', async () => {
    const r = await runK6(smoke, env);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/broadcast_completed[\s\S]*✓ 'rate==1'/);
    // What k6 did is really there: the synthetic tenant's contacts and devices, sent to.
    const contacts = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts WHERE tenant_id = 'k6-synthetic' AND array_to_string(tags, ',') LIKE 'k6-%'`);
    expect(contacts.rows[0]!.n).toBe(4 * 5);
    const sent = await db.pool.query<{ channel: string; n: number }>(
      `SELECT channel, count(*)::int AS n FROM deliveries WHERE tenant_id = 'k6-synthetic' AND status IN ('sent', 'delivered') GROUP BY 1 ORDER BY 1`,
    );
    expect(sent.rows).toEqual([{ channel: 'push', n: 4 * 3 }, { channel: 'sms', n: 4 * 5 }]);
    // The Broadcasts were created in the load-test namespace, by its ServiceAccount, and deleted after.
    // (deleted: gone once the operator's finalizer has cancelled what was left, i.e. nothing)
    await expect
      .poll(async () => (await platform.kubectl(['get', 'broadcasts', '-n', 'herald-loadtest', '-o', 'name'])).stdout.trim(), { timeout: 60_000, interval: 500 })
      .toBe('');
  }, 240_000);

  it('a threshold that fails makes k6 exit 99', async () => {
    const r = await runK6(smoke, { ...env, HERALD_SMOKE_IMPOSSIBLE_THRESHOLD: '1', HERALD_SMOKE_ITERATIONS: '1' });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(K6_THRESHOLD_FAILED);
    expect(r.stdout).toMatch(/recipients_sent[\s\S]*✗ 'count>1000000000'/);
    // Only that one failed: the run itself was healthy.
    expect(r.stdout).toMatch(/broadcast_completed[\s\S]*✓ 'rate==1'/);
  }, 240_000);
});
