/**
 * The alerting rules pass `promtool check rules` and their unit tests
 * (alerts.promtool.yaml, `promtool test rules`, promtool built from its Go module by
 * `npm run tools`); each alert is tested firing and not firing; each names a runbook
 * that exists, names the alert, and has the section it points at.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolPath, toolVersions } from '../../devenv/control-plane.js';
import { REPO_ROOT } from '../operator-manifests.js';
import { ALERTS, anchor, ruleFileYaml, type AlertRule } from './alerts.js';

const exec = promisify(execFile);
const TESTS = path.join(REPO_ROOT, 'platform', 'monitoring', 'alerts.promtool.yaml');
const BASE = 'https://runbooks.test/herald';

async function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(toolPath('promtool'), args, { cwd });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: Number(e.code ?? -1), out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A directory with the rule file (from `alerts`) and the unit tests, as promtool reads them. */
async function ruleDir(alerts: AlertRule[] = ALERTS): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-rules-'));
  await writeFile(path.join(dir, 'herald-alerts.yaml'), ruleFileYaml(BASE, alerts));
  await copyFile(TESTS, path.join(dir, 'tests.yaml'));
  return dir;
}

interface PromtoolTests {
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}

let dir: string;
beforeAll(async () => {
  dir = await ruleDir();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('alerting rules', () => {
  it(`promtool is the pinned build (${toolVersions()['PROMETHEUS_VERSION']})`, async () => {
    const r = await promtool(['--version'], dir);
    expect(r.out).toContain(`promtool, version ${toolVersions()['PROMETHEUS_VERSION']!.replace(/^v/, '')}`);
  });

  it('pass promtool check rules', async () => {
    const r = await promtool(['check', 'rules', 'herald-alerts.yaml'], dir);
    expect(r.out).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('pass their promtool unit tests', async () => {
    const r = await promtool(['test', 'rules', 'tests.yaml'], dir);
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('every alert is tested firing and not firing', async () => {
    const t = load(await readFile(TESTS, 'utf8')) as PromtoolTests;
    const cases = t.tests.flatMap((x) => x.alert_rule_test ?? []);
    for (const a of ALERTS) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${a.alert} fires in some test`).toBe(true);
      expect(mine.some((c) => c.exp_alerts.length === 0), `${a.alert} stays quiet in some test`).toBe(true);
    }
  });

  it('the unit tests fail when a threshold changes (so the pass above means something)', async () => {
    const loose = ALERTS.map((a) => (a.alert === 'HeraldQueueBacklog' ? { ...a, expr: a.expr.replace('> 1000', '> 5000') } : a));
    const d = await ruleDir(loose);
    try {
      const r = await promtool(['test', 'rules', 'tests.yaml'], d);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain('HeraldQueueBacklog');
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('runbooks/README.md lists every alert with its runbook', () => {
    const index = readFileSync(path.join(REPO_ROOT, 'runbooks', 'README.md'), 'utf8');
    for (const a of ALERTS) {
      const row = index.split('\n').find((l) => l.includes(`(${a.runbook}.md)`));
      expect(row, `runbooks/README.md row of ${a.runbook}.md`).toBeDefined();
      expect(row, `${a.alert} in the row of ${a.runbook}.md`).toContain(a.alert);
    }
  });

  it('each links a runbook that exists, at a heading it has', () => {
    for (const a of ALERTS) {
      const file = path.join(REPO_ROOT, 'runbooks', `${a.runbook}.md`);
      expect(existsSync(file), `${a.alert}: ${file}`).toBe(true);
      const text = readFileSync(file, 'utf8');
      // The alert's name appears in its runbook, so someone paged finds where to start.
      expect(text, `${a.alert} named in ${a.runbook}.md`).toContain(a.alert);
      if (a.section) {
        const headings = [...text.matchAll(/^#+\s+(.+)$/gm)].map((m) => anchor(m[1]!.trim()));
        expect(headings, `${a.alert}: ${a.runbook}.md#${anchor(a.section)}`).toContain(anchor(a.section));
      }
    }
  });
});
