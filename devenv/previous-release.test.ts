/**
 * Two versions on one database: the previous commit's api and worker (HEAD~1, checked out
 * in a temporary git worktree and built as its image would be: npm run build, production
 * dependencies) run against the schema this commit's migrations produce (applied first, as
 * the migration Job runs before the new color starts), with this commit's operator and
 * simulator, and deliver a Broadcast end to end: every recipient sent once, receipts back
 * through the old api.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layOutImageTree, type ImageTree } from './image-tree.js';
import { REPO, startLocalPlatform, type LocalPlatform } from './local-platform.js';
import { demoSegment } from './seed-demo.js';

const run = promisify(execFile);
let work: string;
let previous: string;
let revision: string;
let tree: ImageTree;
let platform: LocalPlatform | undefined;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'herald-previous-'));
  previous = path.join(work, 'src');
  revision = (await run('git', ['rev-parse', 'HEAD~1'], { cwd: REPO }).catch(() => {
    throw new Error('HEAD~1 is not in this clone (a shallow clone?): fetch one more commit, e.g. git fetch --deepen=1');
  })).stdout.trim();
  await run('git', ['worktree', 'add', '--detach', previous, revision], { cwd: REPO });
  // the previous commit's devDependencies for its build: ours when the lockfile is the same
  const same = (await readFile(path.join(previous, 'package-lock.json'), 'utf8')) === (await readFile(path.join(REPO, 'package-lock.json'), 'utf8'));
  if (same) await run('ln', ['-s', path.join(REPO, 'node_modules'), path.join(previous, 'node_modules')]);
  else await run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: previous, maxBuffer: 16 << 20 });
  const pkg = JSON.parse(await readFile(path.join(previous, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  if (!pkg.scripts['build']) throw new Error(`${revision} has no npm run build`);
  tree = await layOutImageTree(path.join(work, 'app'), { source: previous });
}, 900_000);

afterAll(async () => {
  await platform?.stop();
  if (previous) await run('git', ['worktree', 'remove', '--force', previous], { cwd: REPO }).catch(() => {});
  await run('git', ['worktree', 'prune'], { cwd: REPO }).catch(() => {});
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

describe("the previous release's api and worker on this release's schema", () => {
  it('deliver a Broadcast end to end, each recipient once', async () => {
    const dataDir = path.join(work, 'data');
    platform = await startLocalPlatform({
      dataDir,
      logLevel: 'warn',
      // this commit's migrations run first (in the platform's start), then the old api and worker
      command: (service) =>
        service === 'api' || service === 'worker' ? { argv: tree.argv(service), cwd: tree.root } : undefined,
    });
    const p = platform;
    for (const service of ['api', 'worker'] as const) {
      const { stdout } = await run('ps', ['-o', 'args=', '-p', String(p.pids[service])]);
      expect(stdout.trim(), service).toBe(tree.argv(service).join(' '));
    }
    const r = await p.kubectl(['apply', '-f', path.join(REPO, 'examples', 'sms-send-now.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    const sendable = demoSegment('grace-church', ['members']).filter((c) => !c.optedOut);
    const deadline = Date.now() + 180_000;
    let status: { phase?: string; counts?: Record<string, number> } | undefined;
    for (;;) {
      const g = await p.kubectl(['get', 'broadcast', 'sunday-reminder', '-n', 'grace-church', '-o', 'jsonpath={.status}']);
      status = g.stdout ? (JSON.parse(g.stdout) as typeof status) : undefined;
      if (status?.phase === 'Completed' && status.counts?.['delivered'] === sendable.length) break;
      if (Date.now() > deadline) throw new Error(`not delivered in time: ${JSON.stringify(status)}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
    expect(status?.counts).toMatchObject({ sent: sendable.length, delivered: sendable.length, failed: 0 });
    const got = (await (await fetch(`${p.simulatorUrl}/_sim/received?recipients=1`)).json()) as { sms: { perRecipient: Record<string, number> } };
    expect(Object.keys(got.sms.perRecipient).sort()).toEqual(sendable.map((c) => c.phone).sort());
    expect(new Set(Object.values(got.sms.perRecipient))).toEqual(new Set([1]));
  }, 300_000);
});
