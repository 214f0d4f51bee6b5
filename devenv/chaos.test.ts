/**
 * The chaos scenarios of devenv/chaos.ts, small, under one local platform (every service
 * a process, the embedded PostgreSQL, the real API server): each fault during a send,
 * counted from the simulator's own record against the audience. Lost 0 and uncounted
 * duplicates 0 in every one; the services ride the faults out.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chaosJson, prepareChaos, runScenario, type ChaosContext } from './chaos.js';
import { startLocalPlatform, type LocalPlatform, type ServiceName } from './local-platform.js';
import { isAlive } from './processes.js';
import { waitFor } from './poll.js';

let dataDir: string;
let platform: LocalPlatform;
let ctx: ChaosContext;
const exits: { service: ServiceName; code: number | null; signal: string | null }[] = [];
const platformLines: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-chaos-'));
  platform = await startLocalPlatform({
    dataDir,
    ports: 'free',
    logLevel: 'warn',
    env: { worker: { HERALD_ACCOUNT_SMS_PER_SECOND: '100000', HERALD_WORKER_LEASE_SECONDS: '10' } },
    onUnexpectedExit: (service, code, signal) => exits.push({ service, code, signal }),
    onLog: (service, line) => {
      if (service === 'platform') platformLines.push(line);
    },
  });
  ctx = await prepareChaos(platform);
}, 300_000);

afterAll(async () => {
  await ctx?.pool.end();
  await platform?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

const ready = async (service: 'api' | 'worker' | 'operator'): Promise<number> => {
  const res = await fetch(`http://127.0.0.1:${platform.ports[service]}/readyz`, { signal: AbortSignal.timeout(5_000) });
  await res.body?.cancel();
  return res.status;
};
const SERVICES = ['api', 'worker', 'operator'] as const;

describe('chaos, small', () => {
  it('PostgreSQL stopped mid-send and started again: no service exits, each is not ready while it is gone and ready after; the broadcast completes, nothing lost', async () => {
    const pids = { ...platform.pids };
    const notReady: string[] = [];
    const r = await runScenario(ctx, 'postgres-restart', {
      recipients: 2_000,
      faultMs: 5_000,
      baseLatencyMs: 50,
      timeoutMs: 240_000,
      duringFault: async () => {
        for (const s of SERVICES) {
          await waitFor(`${s} reporting not ready`, async () => (await ready(s)) === 503, { timeoutMs: 30_000 });
          notReady.push(s);
        }
      },
    });
    for (const s of SERVICES) await waitFor(`${s} ready again`, async () => (await ready(s)) === 200, { timeoutMs: 60_000 });
    process.stdout.write(chaosJson(r) + '\n');
    expect(notReady).toEqual([...SERVICES]);
    expect(exits).toEqual([]);
    for (const s of Object.keys(pids) as ServiceName[]) {
      expect(platform.pids[s]).toBe(pids[s]);
      expect(isAlive(pids[s])).toBe(true);
    }
    expect(r).toMatchObject({ completed: true, recipients: 2_000, lost: 0, duplicates_uncounted: 0 });
    expect(r.rows).toEqual({ sent: 2_000 });
  }, 400_000);

  it('kill -9 of the worker mid-broadcast, twice: the platform stays up, the worker is restarted with a new pid, the broadcast completes, nothing lost, every duplicate counted', async () => {
    const before = platform.services();
    exits.length = 0;
    const r = await runScenario(ctx, 'worker-kill', { recipients: 3_000, faultMs: 0, kills: 2, killEveryMs: 5_000, baseLatencyMs: 50, timeoutMs: 240_000 });
    process.stdout.write(chaosJson(r) + '\n');
    expect(r.killed.length).toBeGreaterThanOrEqual(1);
    expect(exits.map((e) => [e.service, e.signal])).toEqual(r.killed.map(() => ['worker', 'SIGKILL']));
    const after = platform.services();
    expect(after.worker.restarts - before.worker.restarts).toBe(r.killed.length);
    expect(r.killed).not.toContain(after.worker.pid);
    for (const s of ['simulator', 'api', 'operator'] as const) expect(after[s]).toEqual(before[s]);
    expect(platformLines.some((l) => /worker exited unexpectedly \(code null, signal SIGKILL\); restarting in/.test(l))).toBe(true);
    expect(r).toMatchObject({ completed: true, recipients: 3_000, lost: 0, duplicates_uncounted: 0 });
    expect(r.rows).toEqual({ sent: 3_000 });
  }, 400_000);

  it('operator-kill: the operator killed -9 four times mid-send, each time it is back: reported crash-looping and retried, the rest keeps running, the broadcast completes, nothing lost', async () => {
    const before = platform.services();
    exits.length = 0;
    // At least three quick exits in a row (the first is not quick if it had been up a
    // while: the backoff starts afresh).
    const r = await runScenario(ctx, 'operator-kill', { recipients: 1_500, faultMs: 0, kills: 4, baseLatencyMs: 50, timeoutMs: 240_000 });
    process.stdout.write(chaosJson(r) + '\n');
    expect(exits.map((e) => [e.service, e.signal])).toEqual(r.killed.map(() => ['operator', 'SIGKILL']));
    const looping = platformLines.filter((l) => l.startsWith('operator is crash-looping'));
    expect(looping.length).toBeGreaterThanOrEqual(1);
    expect(looping.at(-1)).toMatch(/^operator is crash-looping \(code null, signal SIGKILL; restart \d+, next in (4|8) s\); the rest keeps running/);
    const after = platform.services();
    expect(after.operator).toMatchObject({ running: true });
    expect(after.operator.restarts - before.operator.restarts).toBe(4);
    for (const s of ['simulator', 'api', 'worker'] as const) expect(after[s]).toEqual(before[s]);
    // It completed, so the operator led again (the killed leader's Lease expired).
    expect(r).toMatchObject({ completed: true, recipients: 1_500, lost: 0, duplicates_uncounted: 0 });
    expect(r.rows).toEqual({ sent: 1_500 });
  }, 400_000);

  for (const scenario of ['provider-503', 'provider-latency-x10'] as const) {
    it(`${scenario} for 5 s mid-send: the broadcast completes, nothing lost, no uncounted duplicate`, async () => {
      exits.length = 0;
      const r = await runScenario(ctx, scenario, { recipients: 1_500, faultMs: 5_000, baseLatencyMs: 20, timeoutMs: 240_000 });
      process.stdout.write(chaosJson(r) + '\n');
      expect(r).toMatchObject({ completed: true, recipients: 1_500, lost: 0, duplicates_uncounted: 0 });
      expect(r.rows).toEqual({ sent: 1_500 });
      expect(exits).toEqual([]);
    }, 400_000);
  }
});
