/**
 * Issue 10's platform boundaries that need a config other than the stack files'
 * (the per-stack ones are in testing/stack-assertions.ts, "exposure"): with load testing
 * off, no provider simulator exists and no tenant's sends are routed to one.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { podContainers } from './policy/policies.js';
import { runStack, stackFileConfig, type StackRun } from './testing/mocked-run.js';
import { ofType, T } from './testing/stack-assertions.js';

describe('load testing off (herald:loadTest.enabled false)', () => {
  let run: StackRun;
  beforeAll(async () => {
    const loadTest = JSON.parse(stackFileConfig('staging')['herald:loadTest']!) as Record<string, unknown>;
    run = await runStack('staging', { 'herald:loadTest': { ...loadTest, enabled: false } });
  });

  it('deploys no provider simulator, no k6 CronJob and no load-test namespace', () => {
    const names = run.resources.filter((r) => r.custom && r.type.startsWith('kubernetes:')).map((r) => (r.inputs['metadata'] as { name?: string } | undefined)?.name);
    expect(names).not.toContain('herald-provider-simulator');
    expect(ofType(run, T.cronJob)).toHaveLength(0);
    expect(ofType(run, T.namespace).map((n) => n.inputs['metadata'].name)).not.toContain('herald-loadtest');
    for (const p of ofType(run, T.networkPolicy)) expect(p.inputs['metadata'].name).not.toMatch(/simulator|k6/);
  });

  it('routes no tenant to a simulator: the workers and the api get no simulator address', () => {
    const pods = run.resources.filter((r) => podContainers(r.type, r.inputs));
    expect(pods.length).toBeGreaterThan(4);
    for (const r of pods) {
      for (const c of podContainers(r.type, r.inputs)!) {
        const env = (c.env ?? []).map((e) => e.name);
        expect(env, r.name).not.toContain('HERALD_SIMULATOR_URL');
        expect(env, r.name).not.toContain('HERALD_SIMULATED_TENANTS');
      }
    }
  });
});
