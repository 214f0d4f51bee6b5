/**
 * npm run release's own decisions, without a cluster: what it accepts on the command line
 * (each refusal names the option), when a Release status is about its write (generation
 * and canary version), and the table it prints. The run against the Release controller is
 * the end-to-end test's (not here).
 */
import { describe, expect, it } from 'vitest';
import { parseOptions, rowOf, table, verdictOf, type ReleaseStatus } from './release.js';

const digest = `123456789012.dkr.ecr.us-east-1.amazonaws.com/herald/worker@sha256:${'0f'.repeat(32)}`;

describe('npm run release', () => {
  it('refuses bad options, naming the option and the reason', () => {
    const refuse = (args: string[]) => {
      try {
        parseOptions(args, {});
        return 'accepted';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(refuse(['--version', 'v1'])).toBe('--target: expected local or stack, got nothing');
    expect(refuse(['--target', 'prod', '--version', 'v1'])).toBe('--target: expected local or stack, got "prod"');
    expect(refuse(['--target', 'local'])).toMatch(/^--version: expected 1-63 letters/);
    expect(refuse(['--target', 'local', '--version', 'a b'])).toMatch(/^--version: .* got "a b"$/);
    expect(refuse(['--target', 'stack', '--version', 'abc', '--image', 'herald/worker:abc', '--kubeconfig', 'k'])).toBe(
      '--image: a stack deploys by digest (<repository>@sha256:<64 hex>), got "herald/worker:abc"',
    );
    expect(refuse(['--target', 'stack', '--version', 'abc', '--image', digest])).toMatch(/^--kubeconfig: /);
    expect(refuse(['--target', 'local', '--version', 'abc', '--timeout', '10'])).toBe('--timeout: expected a duration like 90s, 20m or 1h, got "10"');
    expect(parseOptions(['--target', 'stack', '--version', 'abc', '--image', digest, '--timeout', '45m'], { KUBECONFIG: '/k' })).toMatchObject({
      target: 'stack',
      image: digest,
      timeoutMs: 45 * 60_000,
      kubeconfig: '/k',
    });
    expect(parseOptions(['--target', 'local', '--version', 'abc'], {}).image).toBe('docker.io/local/herald-worker:abc');
  });

  it('counts a status as the verdict on its write only at its generation and canary version', () => {
    const at = (s: ReleaseStatus) => verdictOf(s, 7, 'v2');
    expect(at({ observedGeneration: 6, phase: 'Aborted', canaryVersion: 'v2' })).toBe('pending'); // an older write's verdict
    expect(at({ observedGeneration: 7, phase: 'Aborted', canaryVersion: 'v1' })).toBe('pending'); // about another version
    expect(at({ observedGeneration: 7, phase: 'Aborted', canaryVersion: 'v2' })).toBe('failed');
    expect(at({ observedGeneration: 8, phase: 'Degraded', canaryVersion: 'v2' })).toBe('failed');
    expect(at({ observedGeneration: 7, phase: 'Paused', canaryVersion: 'v2', currentStepName: 'preview', ready: { wanted: 2, ready: 1 } })).toBe('pending');
    expect(at({ observedGeneration: 7, phase: 'Paused', canaryVersion: 'v2', currentStepName: 'preview', ready: { wanted: 2, ready: 2 } })).toBe('preview-ready');
    expect(at({ observedGeneration: 7, phase: 'Healthy', stableVersion: 'v1' })).toBe('pending');
    expect(at({ observedGeneration: 7, phase: 'Healthy', stableVersion: 'v2' })).toBe('healthy');
  });

  it('prints step, weight, per-lane attempts / provider failure % / call p95, verdict', () => {
    const row = rowOf({
      currentStep: 2,
      currentStepName: 'analysis',
      weights: { blue: 80, green: 20 },
      analysis: {
        verdict: 'Passed',
        lanes: [
          { color: 'blue', version: 'v1', attempts: 400, providerFailurePercent: 0.25, callP95Ms: 41 },
          { color: 'green', version: 'v2', attempts: 100, providerFailurePercent: 0, callP95Ms: 38.6 },
        ],
      },
    });
    expect(table([row]).split('\n')).toEqual([
      'step        weight             lane   version  attempts  provider failed %  call p95 ms  verdict',
      '2 analysis  blue 80, green 20  blue   v1       400       0.3                41           Passed',
      '                               green  v2       100       0.0                39',
    ]);
    expect(table([row], true).split('\n')[2]).toBe('| 2 analysis | blue 80, green 20 | blue | v1 | 400 | 0.3 | 41 | Passed |');
  });
});
