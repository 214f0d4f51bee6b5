/**
 * npm run release -- --target <local|stack> --version <v> [--image <ref>] [--timeout 20m]
 *
 * The deploy stage of a worker release, as CI runs it and people run it, driving the
 * Release resource herald-system/workers (s11's contract in /work/coord/CONTRACTS.md):
 *   1. one merge patch {spec: {version, image, abort: false}}; its generation G is this write;
 *   2. wait until the status is about this write (observedGeneration >= G, canaryVersion = v)
 *      and the preview step's workers are ready (they serve only the synthetic tenant);
 *   3. k6 smoke, then capacity, against the preview: locally the scripts in loadtests/ with the
 *      synthetic tenant; on a stack the in-cluster CronJob's Job (herald-k6-capacity). A failed
 *      threshold (exit 99), or a run that did not finish, aborts the Release before any real
 *      tenant's message reaches the new version (the preview lane serves none);
 *   4. otherwise promote past the preview (annotation herald.dev/promote) and let the canary
 *      steps and their analysis run;
 *   5. exit 0 when Healthy with stableVersion = v; exit 1 on Aborted, Degraded or the deadline.
 * Prints per step: weight, per-lane attempts / provider failure % / call p95, verdict; on a
 * TTY as a progress line, in CI as plain lines; with GITHUB_STEP_SUMMARY, the table there too
 * (counts and codes only, never error text or phone numbers).
 *
 * --target local: the platform's data directory --data-dir (default .herald, npm start's) holds
 * its admin token and kubeconfig (KUBECONFIG or --kubeconfig win); the api at --api-url
 * (default http://127.0.0.1:8080).
 * --target stack: KUBECONFIG of the stack's active cluster (release.yml writes it).
 */
import { spawn } from 'node:child_process';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { kubectlPath } from '../devenv/local-platform.js';

export const RELEASE = { namespace: 'herald-system', name: 'workers' } as const;
export const K6_THRESHOLD_FAILED = 99;

export interface Lane {
  color: string;
  version?: string;
  weight?: number;
  attempts?: number;
  providerFailurePercent?: number;
  recipientFailurePercent?: number;
  possibleDuplicates?: number;
  orphanedRows?: number;
  callP95Ms?: number;
}
export interface ReleaseStatus {
  phase?: string;
  observedGeneration?: number;
  stableVersion?: string;
  canaryVersion?: string;
  currentStep?: number;
  currentStepName?: string;
  weights?: Record<string, number>;
  ready?: { wanted?: number; ready?: number };
  analysis?: { verdict?: string; failedChecks?: string[]; lanes?: Lane[] };
  abortReason?: string;
}
export interface ReleaseObject {
  metadata: { generation: number; resourceVersion?: string };
  spec: { version: string; image: string; strategy?: { canary?: { steps?: Record<string, unknown>[] } } };
  status?: ReleaseStatus;
}

export interface Options {
  target: 'local' | 'stack';
  version: string;
  image: string;
  timeoutMs: number;
  apiUrl: string;
  kubeconfig?: string;
  /** Local: the platform's data directory (admin token; the k6 run's token and summaries go under it). */
  dataDir: string;
}

/** Parse and check the command line; every error names the option and the reason. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string' },
      version: { type: 'string' },
      image: { type: 'string' },
      timeout: { type: 'string', default: '20m' },
      'api-url': { type: 'string', default: 'http://127.0.0.1:8080' },
      kubeconfig: { type: 'string' },
      'data-dir': { type: 'string', default: '.herald' },
    },
    strict: true,
  });
  if (values.target !== 'local' && values.target !== 'stack') throw new Error(`--target: expected local or stack, got ${values.target === undefined ? 'nothing' : JSON.stringify(values.target)}`);
  const version = values.version ?? '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(version)) throw new Error(`--version: expected 1-63 letters, digits, '.', '_' or '-' (a commit SHA or a tag), got ${JSON.stringify(version)}`);
  const image = values.image ?? (values.target === 'local' ? `docker.io/local/herald-worker:${version}` : '');
  if (values.target === 'stack' && !/@sha256:[0-9a-f]{64}$/.test(image)) throw new Error(`--image: a stack deploys by digest (<repository>@sha256:<64 hex>), got ${JSON.stringify(image)}`);
  const m = /^(\d+)(s|m|h)$/.exec(values.timeout);
  if (!m) throw new Error(`--timeout: expected a duration like 90s, 20m or 1h, got ${JSON.stringify(values.timeout)}`);
  const timeoutMs = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
  let apiUrl: string;
  try {
    apiUrl = new URL(values['api-url']).toString().replace(/\/$/, '');
  } catch {
    throw new Error(`--api-url: not a URL: ${JSON.stringify(values['api-url'])}`);
  }
  const dataDir = path.resolve(values['data-dir']);
  const kubeconfig = values.kubeconfig ?? env.KUBECONFIG ?? (values.target === 'local' ? path.join(dataDir, 'control-plane/kubeconfigs/admin.kubeconfig') : undefined);
  if (!kubeconfig) throw new Error('--kubeconfig: a stack release needs the cluster\'s kubeconfig (or KUBECONFIG)');
  return { target: values.target, version, image, timeoutMs, apiUrl, kubeconfig, dataDir };
}

/** What a status says about the write of `version` at `generation`. */
export function verdictOf(status: ReleaseStatus | undefined, generation: number, version: string): 'pending' | 'preview-ready' | 'healthy' | 'failed' {
  const s = status ?? {};
  if ((s.observedGeneration ?? 0) < generation) return 'pending';
  if (s.phase === 'Healthy' && s.stableVersion === version) return 'healthy';
  if (s.canaryVersion !== version) return 'pending';
  if (s.phase === 'Aborted' || s.phase === 'Degraded') return 'failed';
  if (s.currentStepName === 'preview' && (s.ready?.ready ?? 0) >= (s.ready?.wanted ?? 1)) return 'preview-ready';
  return 'pending';
}

export interface StepRow {
  step: string;
  weight: string;
  lanes: Lane[];
  verdict: string;
}

/** A step's row from a status (the figures of its last analysis window). */
export function rowOf(s: ReleaseStatus): StepRow {
  return {
    step: `${s.currentStep ?? '?'} ${s.currentStepName ?? ''}`.trim(),
    weight: Object.entries(s.weights ?? {}).map(([c, w]) => `${c} ${w}`).join(', '),
    lanes: s.analysis?.lanes ?? [],
    verdict: s.analysis?.verdict ?? (s.phase ?? ''),
  };
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '-' : n.toFixed(digits));

/** The table: step, weight, per lane attempts / provider failure % / call p95, verdict. */
export function table(rows: StepRow[], markdown = false): string {
  const head = ['step', 'weight', 'lane', 'version', 'attempts', 'provider failed %', 'call p95 ms', 'verdict'];
  const lines: string[][] = [];
  for (const r of rows) {
    const lanes = r.lanes.length ? r.lanes : [{ color: '-' } as Lane];
    lanes.forEach((l, i) => {
      lines.push([i ? '' : r.step, i ? '' : r.weight, l.color, l.version ?? '-', fmt(l.attempts), fmt(l.providerFailurePercent, 1), fmt(l.callP95Ms), i ? '' : r.verdict]);
    });
  }
  if (markdown) return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n');
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [head, ...lines].map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; echo?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.echo) process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.echo) process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2).filter((a) => a !== '--'));
  } catch (err) {
    console.error(`npm run release: ${(err as Error).message}`);
    return 2;
  }
  const tty = process.stdout.isTTY && !process.env.CI;
  const kubectl = async (args: string[], input?: string) => {
    const r = await run(kubectlPath(), ['--kubeconfig', o.kubeconfig!, ...args], { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.slice(0, 3).join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  const say = (line: string) => (tty ? process.stdout.write(`\r\x1b[2K${line}`) : console.log(line));
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;
  const rows = new Map<string, StepRow>();
  let last = '';
  const get = async () => JSON.parse(await kubectl(['-n', RELEASE.namespace, 'get', 'release', RELEASE.name, '-o', 'json'])) as ReleaseObject;

  /** Poll until `until` says so, recording each step's figures; returns the verdict it stopped on. */
  const waitFor = async (generation: number, until: (v: ReturnType<typeof verdictOf>) => boolean) => {
    for (;;) {
      const rel = await get();
      const s = rel.status ?? {};
      const v = verdictOf(s, generation, o.version);
      if ((s.observedGeneration ?? 0) >= generation && s.canaryVersion === o.version) {
        // A step's weight is the one it ran at (an abort's weight 0 comes after); its figures and verdict the last seen.
        const key = String(s.currentStep ?? '?');
        const row = rowOf(s);
        rows.set(key, { ...row, weight: rows.get(key)?.weight ?? row.weight });
      }
      const line = `[${elapsed()}] ${s.phase ?? 'no status'} step ${s.currentStep ?? '?'} ${s.currentStepName ?? ''} weights ${rowOf(s).weight || '-'} ready ${s.ready?.ready ?? 0}/${s.ready?.wanted ?? '?'}`;
      if (tty || line.replace(/^\[\d+s\] /, '') !== last) say(line);
      last = line.replace(/^\[\d+s\] /, '');
      if (until(v) || v === 'failed') return { v, status: s };
      if (Date.now() > deadline) return { v: 'deadline' as const, status: s };
      await new Promise((r) => setTimeout(r, 2000));
    }
  };

  const finish = async (code: number, why: string, status?: ReleaseStatus) => {
    if (tty) process.stdout.write('\n');
    const t = table([...rows.values()]);
    console.log(`\n${t}\n\nrelease ${o.version}: ${why}${status?.abortReason ? ` (${status.abortReason})` : ''} after ${elapsed()}`);
    if (process.env.GITHUB_STEP_SUMMARY) {
      await appendFile(process.env.GITHUB_STEP_SUMMARY, `### Release ${o.version}: ${why}\n\n${table([...rows.values()], true)}\n\n`);
    }
    return code;
  };

  // 1. the write
  const patch = JSON.stringify({ spec: { version: o.version, image: o.image, abort: false } });
  const written = JSON.parse(await kubectl(['-n', RELEASE.namespace, 'patch', 'release', RELEASE.name, '--type', 'merge', '-p', patch, '-o', 'json'])) as ReleaseObject;
  const generation = written.metadata.generation;
  say(`[${elapsed()}] Release ${RELEASE.namespace}/${RELEASE.name}: version ${o.version} written (generation ${generation})`);
  if (tty) process.stdout.write('\n');

  // 2. the preview
  const preview = await waitFor(generation, (v) => v === 'preview-ready' || v === 'healthy');
  if (preview.v === 'failed') return finish(1, `${preview.status.phase} before the load test`, preview.status);
  if (preview.v === 'deadline') return finish(1, 'deadline waiting for the preview step', preview.status);
  const gateStarted = Date.now();

  // 3. k6 against the preview
  if (preview.v === 'preview-ready') {
    for (const script of ['smoke', 'capacity'] as const) {
      const code = o.target === 'local' ? await k6Local(o, script) : script === 'capacity' ? await k6InCluster(kubectl) : 0;
      say(`[${elapsed()}] k6 ${script}: exit ${code}`);
      if (tty) process.stdout.write('\n');
      if (code !== 0) {
        await kubectl(['-n', RELEASE.namespace, 'patch', 'release', RELEASE.name, '--type', 'merge', '-p', JSON.stringify({ spec: { abort: true } })]);
        const aborted = await waitFor(generation + 1, (v) => v === 'failed');
        return finish(1, `aborted: k6 ${script} ${code === K6_THRESHOLD_FAILED ? 'failed a threshold (exit 99)' : `exited ${code}`}; gate ${((Date.now() - gateStarted) / 1000).toFixed(0)} s`, aborted.status);
      }
    }
    // 4. past the preview
    await kubectl(['-n', RELEASE.namespace, 'annotate', 'release', RELEASE.name, `herald.dev/promote=${Date.now()}`, '--overwrite']);
    say(`[${elapsed()}] k6 passed in ${((Date.now() - gateStarted) / 1000).toFixed(0)} s; promoted past the preview`);
    if (tty) process.stdout.write('\n');
  }

  // 5. the verdict
  const end = await waitFor(generation, (v) => v === 'healthy');
  if (end.v === 'healthy') return finish(0, 'Healthy (stable)', end.status);
  if (end.v === 'deadline') return finish(1, 'deadline waiting for the verdict', end.status);
  return finish(1, end.status.phase ?? 'failed', end.status);
}

/** k6 from loadtests/ against the local platform, as the synthetic tenant (loadtests/k6-runner.ts sets it up). */
async function k6Local(o: Options, script: 'smoke' | 'capacity'): Promise<number> {
  const { k6EnvFor, runK6, LOADTESTS } = await import('../loadtests/k6-runner.js');
  const kubeconfig = o.kubeconfig!;
  const view = async (jsonpath: string, raw = false) =>
    (await run(kubectlPath(), ['--kubeconfig', kubeconfig, 'config', 'view', '--minify', ...(raw ? ['--raw'] : []), '-o', `jsonpath=${jsonpath}`])).stdout.trim();
  const dir = path.join(o.dataDir, 'release');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const kubeCaFile = path.join(dir, 'ca.crt');
  await writeFile(kubeCaFile, Buffer.from(await view('{.clusters[0].cluster.certificate-authority-data}', true), 'base64'));
  const adminTokenFile = path.join(o.dataDir, 'admin-token');
  await readFile(adminTokenFile).catch(() => {
    throw new Error(`${adminTokenFile} not found: is npm start running from ${o.dataDir}?`);
  });
  const env = await k6EnvFor({
    kubectl: (args, input) => run(kubectlPath(), ['--kubeconfig', kubeconfig, ...args], { input }),
    dataDir: dir, apiUrl: o.apiUrl, kubeServer: await view('{.clusters[0].cluster.server}'), kubeCaFile, adminTokenFile,
  });
  env.HERALD_K6_SUMMARY_DIR = dir;
  for (const [k, v] of Object.entries(process.env)) if (/^HERALD_(CAPACITY|SMOKE|LOAD)_/.test(k)) env[k] = v!;
  return (await runK6(path.join(LOADTESTS, `${script}.js`), env, { echo: !process.stdout.isTTY })).code ?? 1;
}

/** The in-cluster k6 capacity run (a Job from the CronJob), its exit code. */
async function k6InCluster(kubectl: (args: string[]) => Promise<string>): Promise<number> {
  const job = `k6-release-${Date.now().toString(36)}`;
  await kubectl(['-n', 'herald-loadtest', 'create', 'job', job, '--from=cronjob/herald-k6-capacity']);
  for (;;) {
    const j = JSON.parse(await kubectl(['-n', 'herald-loadtest', 'get', 'job', job, '-o', 'json'])) as { status?: { conditions?: { type: string; status: string }[] } };
    const done = (j.status?.conditions ?? []).find((c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed'));
    if (done?.type === 'Complete') return 0;
    if (done) {
      const pods = JSON.parse(await kubectl(['-n', 'herald-loadtest', 'get', 'pods', '-l', `job-name=${job}`, '-o', 'json'])) as {
        items: { status?: { containerStatuses?: { state?: { terminated?: { exitCode: number } } }[] } }[];
      };
      return pods.items.flatMap((p) => p.status?.containerStatuses ?? []).map((c) => c.state?.terminated?.exitCode).find((c) => c !== undefined) ?? 1;
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`npm run release: ${err.message}`);
      process.exit(1);
    },
  );
}
