/**
 * What the images run, run here: a directory laid out as the Dockerfile's final stage
 * (package.json, `npm ci --omit=dev` node_modules, npm run build's dist/), every process
 * started from it with the root filesystem read-only except its data directory (as the
 * pods' readOnlyRootFilesystem with a /tmp volume). The migration runs from it against an
 * empty database, then the simulator, api, worker and operator (the image CMDs), and an
 * SMS and a push Broadcast go through them to Completed.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPool } from '../lib/db/postgres.js';
import { ENTRYPOINTS, IMAGE_TARGETS } from '../platform/image-layout.js';
import { layOutImageTree, readOnlyRoot, type ImageTree } from './image-tree.js';
import { REPO, startLocalPlatform, type LocalPlatform } from './local-platform.js';
import { demoDevices, demoSegment } from './seed-demo.js';

const run = promisify(execFile);
let work: string;
let tree: ImageTree;
let dataDir: string;
let databaseUrl: string;
let platform: LocalPlatform | undefined;
const dbName = `herald_image_${process.pid}`;

/** Run argv, resolving with its exit code and output (never rejecting on a non-zero exit). */
async function exec(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const [cmd, ...args] = argv;
  try {
    const r = await run(cmd!, args, { cwd: tree.root, env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'herald-image-'));
  dataDir = path.join(work, 'data');
  tree = await layOutImageTree(path.join(work, 'app'));
  const server = inject('databaseUrl');
  const admin = createPool(server, 1, 'image-test');
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const u = new URL(server);
  u.pathname = `/${dbName}`;
  databaseUrl = u.toString();
}, 600_000);

afterAll(async () => {
  await platform?.stop();
  const admin = createPool(inject('databaseUrl'), 1, 'image-test');
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
  await admin.end();
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

describe('the image layout, run read-only', () => {
  it('holds the built entrypoints and production dependencies only (no tsx, typescript, vitest or Pulumi)', async () => {
    expect((await readdir(tree.root)).sort()).toEqual(['dist', 'node_modules', 'package.json']);
    for (const entry of Object.values(ENTRYPOINTS)) expect(existsSync(path.join(tree.root, entry)), entry).toBe(true);
    for (const target of IMAGE_TARGETS) expect(tree.stage.targets[target], `Dockerfile target ${target}`).toEqual(['node', ENTRYPOINTS[target]]);
    for (const dev of ['tsx', 'typescript', 'vitest', '@pulumi/pulumi', 'esbuild']) expect(existsSync(path.join(tree.root, 'node_modules', dev)), dev).toBe(false);
    expect(existsSync(path.join(tree.root, 'node_modules', 'pg'))).toBe(true);
    expect(tree.stage.user).toBe('1000:1000');
  });

  it('refuses writes to the tree and outside the data directory, and allows them in it', async () => {
    const write = (file: string) => readOnlyRoot([process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(file)}, 'x')`], [dataDir]);
    await run('mkdir', ['-p', dataDir]);
    const inTree = await exec(write(path.join(tree.root, 'dist', 'x')));
    expect(inTree.code).not.toBe(0);
    expect(inTree.out).toContain('EROFS');
    expect((await exec(write(path.join(work, 'x')))).out).toContain('EROFS');
    expect(await exec(write(path.join(dataDir, 'x')))).toEqual({ code: 0, out: '' });
  });

  it('migrates an empty database from the tree (node dist/scripts/migrate.js)', async () => {
    const r = await exec(readOnlyRoot(tree.argv('migrate'), [dataDir]), { DATABASE_URL: databaseUrl, HERALD_DATA_DIR: dataDir, HOME: dataDir });
    expect(r.code, r.out).toBe(0);
    const migrations = (await readdir(path.join(REPO, 'lib/db/migrations'))).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, ''));
    const line = r.out.split('\n').find((l) => l.includes('migrations applied'));
    expect(line, r.out).toBeDefined();
    expect((JSON.parse(line!) as { applied: string[] }).applied).toEqual(migrations.sort());
  });

  it('runs the simulator, api, worker and operator from the tree and sends an SMS and a push Broadcast through them', async () => {
    platform = await startLocalPlatform({
      dataDir,
      databaseUrl,
      logLevel: 'warn',
      command: (service) => ({ argv: readOnlyRoot(tree.argv(service), [dataDir]), cwd: tree.root }),
      env: Object.fromEntries(IMAGE_TARGETS.map((t) => [t, { HOME: dataDir, NODE_ENV: 'production' }])),
    });
    const p = platform;
    for (const example of ['sms-send-now.yaml', 'push-segment.yaml']) {
      const r = await p.kubectl(['apply', '-f', path.join(REPO, 'examples', example)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const members = demoSegment('grace-church', ['members']);
    const sms = members.filter((c) => !c.optedOut).length;
    const push = demoDevices('northfield-university', ['students']).length;
    const want: Record<string, number> = { 'sunday-reminder': sms, 'welcome-week': push };
    const deadline = Date.now() + 180_000;
    for (;;) {
      const r = await p.kubectl(['get', 'broadcasts', '-A', '-o', 'json']);
      const items = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { phase?: string; counts?: Record<string, number> } }[] }).items;
      const done = Object.entries(want).every(([name, sent]) => {
        const s = items.find((b) => b.metadata.name === name)?.status;
        return s?.phase === 'Completed' && s.counts?.sent === sent && (s.counts?.failed ?? 0) === 0;
      });
      const last = JSON.stringify(items.map((b) => [b.metadata.name, b.status]));
      if (done) break;
      if (Date.now() > deadline) throw new Error(`Broadcasts not Completed in time: ${last}\n${Object.entries(p.pids).join(' ')}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const received = (await (await fetch(`${p.simulatorUrl}/_sim/received`)).json()) as { sms: { accepted: number }; push: { accepted: number } };
    expect(received.sms.accepted).toBe(sms);
    expect(received.push.accepted).toBe(push);
    // every service ran the built file, not tsx
    for (const [service, pid] of Object.entries(p.pids)) {
      const { stdout } = await run('ps', ['-o', 'args=', '-p', String(pid)]);
      expect(stdout.trim(), service).toBe(tree.argv(service as 'api').join(' '));
    }
  }, 300_000);
});
