/**
 * The CI workflows (.github/workflows): actionlint (built from its Go module by
 * `npm run tools`, version-checked) passes on every file, every `npm run X` / `npm X` they
 * call is a script of package.json, and the properties the pipeline promises hold
 * (concurrency, OIDC, the production environment).
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { toolPath, toolVersions } from '../devenv/control-plane.js';
import { REPO_ROOT } from './operator-manifests.js';

const run = promisify(execFile);
const WORKFLOWS = path.join(REPO_ROOT, '.github', 'workflows');

interface Step {
  run?: string;
  uses?: string;
  with?: Record<string, unknown>;
}
interface Job {
  environment?: string | { name: string };
  concurrency?: { group: string; 'cancel-in-progress'?: boolean | string };
  permissions?: Record<string, string>;
  needs?: string | string[];
  steps?: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  concurrency?: { group: string; 'cancel-in-progress'?: boolean | string };
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const files = (dir = WORKFLOWS) => readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(dir, f));
const workflow = (name: string) => load(readFileSync(path.join(WORKFLOWS, name), 'utf8')) as Workflow;

async function actionlint(dir: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run(toolPath('actionlint'), ['-no-color', ...files(dir)], { cwd: REPO_ROOT });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: Number(e.code ?? -1), out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Every npm script a workflow's `run:` lines call that package.json does not define, as "file: script". */
export function missingNpmScripts(dir: string, scripts: Record<string, string>): string[] {
  const missing: string[] = [];
  for (const file of files(dir)) {
    const wf = load(readFileSync(file, 'utf8')) as Workflow;
    for (const job of Object.values(wf.jobs)) {
      for (const step of job.steps ?? []) {
        for (const line of (step.run ?? '').split('\n')) {
          // npm run X, npm run-script X, npm run -s X; npm test / npm start
          for (const m of line.matchAll(/\bnpm\s+(?:run(?:-script)?|rum|urn)\s+(?:-\S+\s+)*([\w:.@/-]+)|\bnpm\s+(test|start|stop|restart)\b/g)) {
            const name = m[1] ?? m[2]!;
            if (!(name in scripts)) missing.push(`${path.basename(file)}: ${name}`);
          }
        }
      }
    }
  }
  return missing;
}

describe('CI workflows', () => {
  it('are the ones the pipeline needs', () => {
    expect(files().map((f) => path.basename(f)).sort()).toEqual(['ci.yml', 'loadtest.yml', 'release.yml']);
  });

  it(`pass actionlint ${toolVersions()['ACTIONLINT_VERSION']} (the built binary is that version)`, async () => {
    const { stdout } = await run(toolPath('actionlint'), ['-version']);
    expect(stdout.split('\n')[0]).toBe(toolVersions()['ACTIONLINT_VERSION']);
    const r = await actionlint(WORKFLOWS);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('actionlint refuses a broken workflow (so the check above can fail)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-wf-'));
    try {
      await writeFile(path.join(dir, 'bad.yml'), 'on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.evnt.number }}\n');
      const r = await actionlint(dir);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain('evnt');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('call only npm scripts that exist', async () => {
    const scripts = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(missingNpmScripts(WORKFLOWS, scripts)).toEqual([]);
    // and the check sees a missing one
    const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-wf-'));
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'x.yml'), 'on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: |\n          npm ci\n          npm run -s no-such-script -- --x\n          npm test\n');
      expect(missingNpmScripts(dir, { test: 'vitest' })).toEqual(['x.yml: no-such-script']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ci.yml: pull requests, one run per PR (a newer push cancels), tests, audit, a preview of both stacks commented on the PR', () => {
    const ci = workflow('ci.yml');
    expect(Object.keys(ci.on)).toEqual(['pull_request']);
    expect(ci.concurrency?.group).toContain('github.event.pull_request.number');
    expect(ci.concurrency?.['cancel-in-progress']).toBe(true);
    const runs = Object.values(ci.jobs).flatMap((j) => (j.steps ?? []).map((s) => s.run ?? ''));
    for (const cmd of ['npm ci', 'npm run typecheck', 'npm test', 'npm audit --audit-level=high']) expect(runs.some((r) => r.includes(cmd)), cmd).toBe(true);
    const preview = ci.jobs['preview']!;
    const pulumi = preview.steps!.find((s) => s.uses?.startsWith('pulumi/actions@'))!;
    expect(pulumi.with).toMatchObject({ command: 'preview', 'comment-on-pr': true });
    expect((preview as { strategy?: { matrix?: { stack?: string[] } } }).strategy?.matrix?.stack).toEqual(['staging', 'production']);
    expect(preview.permissions?.['id-token']).toBe('write');
    expect(preview.steps!.find((s) => s.uses?.startsWith('aws-actions/configure-aws-credentials@'))?.with?.['role-to-assume']).toContain('PREVIEW');
  });

  it('release.yml: main only; images by digest; staging then production (an environment with reviewers), one deploy per environment at a time, never cancelled', () => {
    const rel = workflow('release.yml');
    expect(rel.on).toEqual({ push: { branches: ['main'] } });
    const deploys = Object.entries(rel.jobs).filter(([, j]) => j.concurrency !== undefined);
    expect(deploys.map(([, j]) => (typeof j.environment === 'string' ? j.environment : j.environment!.name)).sort()).toEqual(['production', 'staging']);
    const build = rel.jobs['images']!.steps!.find((s) => s.uses?.startsWith('docker/build-push-action@'))!;
    expect(build.with).toMatchObject({ push: true, tags: expect.stringContaining('${{ github.sha }}') });
    for (const [name, job] of deploys) {
      expect(job.concurrency?.group, name).toMatch(/deploy-/);
      expect(job.concurrency?.['cancel-in-progress'], name).toBe(false);
      expect(job.permissions?.['id-token'], name).toBe('write');
      const runs = (job.steps ?? []).map((s) => s.run ?? '').join('\n');
      expect(runs, name).toContain('npm run release -- --target stack');
      expect(runs, name).toContain('@sha256:');
    }
    const production = rel.jobs['production']!;
    expect([production.needs].flat()).toContain('staging');
  });

  it('loadtest.yml: scheduled and manual, pages on failure', () => {
    const lt = workflow('loadtest.yml');
    expect(Object.keys(lt.on).sort()).toEqual(['schedule', 'workflow_dispatch']);
    const steps = Object.values(lt.jobs).flatMap((j) => j.steps ?? []);
    expect(steps.some((s) => (s as { if?: string }).if === 'failure()' && (s.run ?? '').includes('aws sns publish'))).toBe(true);
  });
});
