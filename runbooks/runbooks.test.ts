/**
 * Every runbook command works: the shell blocks of runbooks/*.md run, in order, against
 * the local platform (devenv/local-platform.ts, as `npm start` runs it, demo data seeded),
 * with the variables runbooks/README.md describes. A `cluster-only: <reason>` block is
 * syntax-checked and its Herald commands run locally (runbooks/blocks.ts). Every
 * `npm run` a runbook names, in a block or in the text, is a script of package.json.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, startLocalPlatform, type LocalPlatform } from '../devenv/local-platform.js';
import { localCommands, shellBlocks, type ShellBlock } from './blocks.js';

const DIR = path.join(REPO, 'runbooks');
const files = readdirSync(DIR).filter((f) => f.endsWith('.md')).sort();
const scripts = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

let dataDir: string;
let platform: LocalPlatform;
let env: NodeJS.ProcessEnv;

interface Ran {
  code: number;
  out: string;
}

function bash(args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile('bash', args, { cwd: REPO, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** A block as a person pastes it, but stopping at the first failing command. */
const runBlock = (b: ShellBlock) => bash(['-euo', 'pipefail', '-c', b.code], 360_000);
const where = (b: ShellBlock) => `${path.relative(REPO, b.file)}:${b.line}`;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-runbooks-'));
  platform = await startLocalPlatform({ dataDir, ports: 'free' });
  env = {
    PATH: `${path.dirname(platform.kubectlPath)}:${process.env.PATH ?? ''}`,
    HOME: process.env.HOME ?? '',
    HERALD_DATA_DIR: dataDir,
    KUBECONFIG: platform.kubeconfig,
    HERALD_API: platform.apiUrl,
    HERALD_WORKER: `http://127.0.0.1:${platform.ports.worker}`,
    HERALD_OPERATOR: `http://127.0.0.1:${platform.ports.operator}`,
    HERALD_SIMULATOR: platform.simulatorUrl,
    HERALD_ADMIN_TOKEN: platform.adminToken,
    DATABASE_URL: platform.databaseUrl,
    PGCONNECT_TIMEOUT: '10',
    // Debian's /etc/bash.bashrc reads PS1, unset in a non-interactive shell under -u.
    PS1: '',
  };
}, 240_000);

afterAll(async () => {
  await platform?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

describe('runbooks', () => {
  it('cover every situation of the Operations issue, each with symptoms, diagnosis, fix and verify', () => {
    const situations = [
      'deploy-and-rollback', 'provider-outage', 'queue-backlog', 'duplicate-messages', 'time-zone-mistakes',
      'service-down', 'database-restore', 'region-failover', 'token-cleanup', 'incident-severities',
    ];
    expect(files).toEqual(['README.md', ...situations.map((s) => `${s}.md`)].sort());
    for (const s of situations) {
      const headings = [...readFileSync(path.join(DIR, `${s}.md`), 'utf8').matchAll(/^## (.+)$/gm)].map((m) => m[1]!);
      for (const h of ['Symptoms', 'Verify']) expect(headings, `${s}.md ## ${h}`).toContain(h);
      if (s !== 'incident-severities') expect(headings.some((h) => /^(Diagnosis)/.test(h)), `${s}.md ## Diagnosis`).toBe(true);
      if (s !== 'incident-severities') expect(headings.some((h) => /^(Fix|Deploy|Roll back)/.test(h)), `${s}.md ## Fix`).toBe(true);
    }
  });

  it('name only npm scripts that exist', () => {
    const missing: string[] = [];
    for (const f of files) {
      for (const m of readFileSync(path.join(DIR, f), 'utf8').matchAll(/\bnpm run(?:-script)? ([\w:.-]+)/g)) {
        if (!(m[1]! in scripts)) missing.push(`${f}: npm run ${m[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  for (const file of files) {
    it(`${file}: every shell block works against the local platform`, async () => {
      const blocks = shellBlocks(path.join(DIR, file));
      for (const b of blocks) {
        if (!b.clusterOnly) {
          const r = await runBlock(b);
          expect(r.code, `${where(b)} exited ${r.code}:\n${b.code}\n--- output ---\n${r.out}`).toBe(0);
          continue;
        }
        const syntax = await bash(['-n', '-c', b.code], 30_000);
        expect(syntax.code, `${where(b)} (cluster-only) does not parse:\n${syntax.out}`).toBe(0);
        for (const c of localCommands(b.code)) {
          if (c.kind === 'npm-script') {
            expect(scripts, `${where(b)}: npm run ${c.script}`).toHaveProperty([c.script]);
            continue;
          }
          const r = await bash(['-euo', 'pipefail', '-c', c.command], 120_000);
          expect(r.code, `${where(b)} (cluster-only, run locally): ${c.command}\n--- output ---\n${r.out}`).toBe(0);
        }
      }
    }, 900_000);
  }
});

describe('the runbook test itself', () => {
  const md = (body: string) => shellBlocks('x.md', body);

  it('fails a block whose command fails, and stops at that command', async () => {
    const [b] = md('```sh\nfalse\necho never\n```\n');
    const r = await runBlock(b!);
    expect(r.code).not.toBe(0);
    expect(r.out).not.toContain('never');
  });

  it('refuses a cluster-only block without its reason, and an unknown tag', () => {
    expect(() => md('```sh cluster-only\nkubectl get pods\n```\n')).toThrow(/needs its reason/);
    expect(() => md('```sh skip\nfalse\n```\n')).toThrow(/unknown info string/);
  });

  it('runs the Herald commands of a cluster-only block: kubectl on Broadcasts and Releases (writes as server dry runs) and npm scripts', () => {
    const [b] = md(
      [
        '```sh cluster-only: pods',
        'kubectl -n herald get pods',
        'kubectl -n herald-system patch release/workers --type merge \\',
        "  -p '{\"spec\":{\"abort\":true}}'",
        'kubectl get broadcasts -A | grep Sending',
        'kubectl -n herald-system get releases -w',
        'npm run release -- --target stack',
        'aws rds describe-db-instances',
        '```',
        '',
      ].join('\n'),
    );
    expect(b!.clusterOnly).toBe('pods');
    expect(localCommands(b!.code)).toEqual([
      { kind: 'kubectl', command: `kubectl -n herald-system patch release/workers --type merge -p '{"spec":{"abort":true}}' --dry-run=server` },
      { kind: 'kubectl', command: 'kubectl get broadcasts -A' },
      { kind: 'kubectl', command: 'kubectl -n herald-system get releases' },
      { kind: 'npm-script', script: 'release' },
    ]);
  });
});
