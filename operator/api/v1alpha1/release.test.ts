import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { dump, load } from 'js-yaml';
import { REPO } from '../../../devenv/processes.js';
import { startKube, type Kube } from '../../testing/harness.js';
import { RELEASE_CRD_PATH, renderReleaseCrd } from './generate-crd.js';
import { releaseCustomResourceDefinition } from './release.js';

/**
 * The API server itself refuses a wrong Release: each bad manifest goes through
 * `kubectl apply` against a real kube-apiserver with the generated CRD installed.
 */
let kube: Kube;
beforeAll(async () => {
  kube = await startKube();
}, 120_000);
afterAll(async () => {
  await kube?.stop();
});

const manifest = (name: string, spec: Record<string, unknown>) =>
  dump({
    apiVersion: 'herald.dev/v1alpha1',
    kind: 'Release',
    metadata: { name, namespace: 'herald-system' },
    spec: { version: '1.4.0', image: 'herald/worker:1.4.0', strategy: { canary: { steps: [{ setWeight: 10 }, { analysis: {} }, { setWeight: 50 }, { pause: {} }] } }, ...spec },
  });
const apply = (yaml: string) => kube.kubectl(['apply', '-f', '-'], yaml);

const refusals: [string, Record<string, unknown>, RegExp][] = [
  ['both strategies', { strategy: { blueGreen: { previewTenants: ['loadtest'] }, canary: { steps: [{ setWeight: 10 }] } } }, /strategy sets exactly one of blueGreen or canary/],
  ['no strategy', { strategy: {} }, /strategy sets exactly one of blueGreen or canary/],
  ['a step with two actions', { strategy: { canary: { steps: [{ setWeight: 10, pause: {} }] } } }, /each canary step sets exactly one of preview, setWeight, pause or analysis/],
  ['an empty step', { strategy: { canary: { steps: [{}] } } }, /each canary step sets exactly one of preview, setWeight, pause or analysis/],
  ['a preview step after the first', { strategy: { canary: { steps: [{ setWeight: 10 }, { preview: { tenants: ['loadtest'] } }] } } }, /a preview step can only be the first canary step/],
  ['a weight above 100', { strategy: { canary: { steps: [{ setWeight: 150 }] } } }, /spec.strategy.canary.steps\[0\].setWeight .*should be less than or equal to 100/],
  ['a pause that is not a duration', { strategy: { canary: { steps: [{ pause: { duration: 'a while' } }] } } }, /pause.duration must be a duration from 1s to 24h/],
  ['a preview without tenants', { strategy: { canary: { steps: [{ preview: {} }] } } }, /spec.strategy.canary.steps\[0\].preview.tenants: Required value/],
  ['blue-green without preview tenants', { strategy: { blueGreen: {} } }, /spec.strategy.blueGreen.previewTenants: Required value/],
  ['a failure threshold of 0', { analysis: { threshold: 0 } }, /spec.analysis.threshold .*should be greater than or equal to 1/],
  ['a provider failure percentage above 100', { analysis: { maxProviderFailurePercent: 120 } }, /spec.analysis.maxProviderFailurePercent .*should be less than or equal to 100/],
  ['a sample timeout that is not a duration', { analysis: { sampleTimeout: 'soon' } }, /analysis.sampleTimeout must be a duration from 1s to 24h/],
  ['a version with spaces', { version: 'new one' }, /spec.version .*should match/],
  ['no image', { image: undefined }, /spec.image: Required value/],
];

describe('the Release resource', { timeout: 180_000 }, () => {
  it('the committed CRD manifest is what generate-crd.ts writes (run `npx tsx operator/api/v1alpha1/generate-crd.ts`)', () => {
    expect(readFileSync(RELEASE_CRD_PATH, 'utf8')).toBe(renderReleaseCrd());
    expect(load(readFileSync(RELEASE_CRD_PATH, 'utf8'))).toEqual(releaseCustomResourceDefinition());
  });

  it.each(refusals)('kubectl apply refuses %s', async (_what, spec, message) => {
    const r = await apply(manifest('bad', spec));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/The Release "bad" is invalid/);
    expect(r.stderr).toMatch(message);
  });

  it('accepts a canary and a blue-green Release and fills in the defaults', async () => {
    expect((await apply(manifest('canary', {}))).stderr).toBe('');
    expect((await apply(manifest('bluegreen', { strategy: { blueGreen: { previewTenants: ['loadtest'] } } }))).stderr).toBe('');
    const got = JSON.parse((await kube.kubectl(['get', 'release', 'canary', '-n', 'herald-system', '-o', 'json'])).stdout);
    expect(got.spec).toMatchObject({ replicas: 2, paused: false, abort: false, scaleDownDelay: '30s', analysis: { window: '30s', minSample: 50, threshold: 1, maxProviderFailurePercent: 5 } });
    // A step's analysis keeps only what it names: the Release-wide thresholds apply to the rest.
    expect(got.spec.strategy.canary.steps[1]).toEqual({ analysis: {} });
    const bg = JSON.parse((await kube.kubectl(['get', 'rel', 'bluegreen', '-n', 'herald-system', '-o', 'json'])).stdout);
    expect(bg.spec.strategy.blueGreen).toMatchObject({ prePromotionAnalysis: true, postPromotionAnalysis: true });
  });

  it('the examples in examples/releases are valid Releases', async () => {
    const r = await kube.kubectl(['apply', '--dry-run=server', '-f', path.join(REPO, 'examples/releases')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/release.herald.dev\/workers (created|configured) \(server dry run\)/);
  });

  it('kubectl get releases shows version, phase, step, stable, canary, weights and age', async () => {
    const r = await kube.kubectl(['get', 'releases', '-n', 'herald-system']);
    expect(r.stdout.split('\n')[0]!.split(/\s+/).filter(Boolean)).toEqual(['NAME', 'VERSION', 'PHASE', 'STEP', 'STABLE', 'CANARY', 'WEIGHTS', 'AGE']);
  });
});
