/**
 * What Herald's images contain, read from the Dockerfile's final stage so there is one
 * recipe: the Pulumi workloads run these commands, the built-tree test lays a directory out
 * from it, and the local node's images (devenv) are written from it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './operator-manifests.js';

export const DOCKERFILE = path.join(REPO_ROOT, 'Dockerfile');

/** Each image target's entrypoint, relative to the image's WORKDIR (npm run build's output). */
export const ENTRYPOINTS = {
  api: 'dist/services/api/main.js',
  worker: 'dist/services/worker/main.js',
  operator: 'dist/operator/main.js',
  simulator: 'dist/services/simulator/main.js',
  /** Run by the migration Job from the api image. */
  migrate: 'dist/scripts/migrate.js',
} as const;
export type ImageTarget = 'api' | 'worker' | 'operator' | 'simulator';
export const IMAGE_TARGETS: readonly ImageTarget[] = ['api', 'worker', 'operator', 'simulator'];

/** The container command of a service (its image's CMD, stated in the pod so it is reviewable). */
export function command(entry: keyof typeof ENTRYPOINTS): string[] {
  return ['node', ENTRYPOINTS[entry]];
}

export interface FinalStage {
  /** The base image reference (ARG NODE_IMAGE's default): name:tag@sha256:digest. */
  base: string;
  workdir: string;
  /** USER uid:gid */
  user: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** COPY lines in order: from a stage (or the build context when undefined), source, destination under workdir. */
  copies: { from?: string; src: string; dest: string }[];
  /** The RUN commands of each stage a COPY --from names (split at &&), in order. */
  runs: Record<string, string[]>;
  /** target name -> CMD (exec form) */
  targets: Record<string, string[]>;
}

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

/** Parse the subset of Dockerfile syntax Herald's Dockerfile uses (one instruction a line, `\` continuations). */
export function readFinalStage(file = DOCKERFILE): FinalStage {
  const text = readFileSync(file, 'utf8').replace(/\\\n\s*/g, ' ');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    const arg = rest.join(' ');
    if (op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(arg);
      if (!m) throw new Error(`Dockerfile: cannot read "${line}"`);
      stages.push({ name: m[2] ?? String(stages.length), from: m[1]!, lines: [] });
    } else if (stages.length === 0 && op === 'ARG') {
      const [k, v = ''] = arg.split('=');
      args[k!] = v;
    } else {
      stages.at(-1)?.lines.push(line);
    }
  }
  const byName = new Map(stages.map((s) => [s.name, s]));
  const runtime = byName.get('runtime');
  if (!runtime) throw new Error('Dockerfile: no stage named runtime');
  const expand = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? '');
  const stage: FinalStage = { base: expand(runtime.from), workdir: '', user: '', env: {}, labels: {}, copies: [], runs: {}, targets: {} };
  const keyValues = (s: string): Record<string, string> =>
    Object.fromEntries([...s.matchAll(/([\w.-]+)=("([^"]*)"|\S+)/g)].map((m) => [m[1]!, m[3] ?? m[2]!]));
  for (const line of runtime.lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    if (op === 'WORKDIR') stage.workdir = rest[0]!;
    else if (op === 'USER') stage.user = rest[0]!;
    else if (op === 'ENV') Object.assign(stage.env, keyValues(rest.join(' ')));
    else if (op === 'LABEL') Object.assign(stage.labels, keyValues(rest.join(' ')));
    else if (op === 'COPY') {
      const from = rest[0]?.startsWith('--from=') ? rest.shift()!.slice('--from='.length) : undefined;
      const [src, dest] = rest;
      if (!src || !dest) throw new Error(`Dockerfile: cannot read "${line}"`);
      stage.copies.push({ from, src, dest: path.posix.relative(stage.workdir, path.posix.resolve(stage.workdir, dest)) || '.' });
      if (from) {
        const runs = (byName.get(from)?.lines ?? []).filter((l) => l.startsWith('RUN '));
        stage.runs[from] = runs.flatMap((l) => l.slice('RUN '.length).split('&&').map((c) => c.trim()));
      }
    }
  }
  for (const s of stages) {
    if (s.from !== 'runtime') continue;
    const cmd = s.lines.find((l) => l.startsWith('CMD '));
    if (cmd) stage.targets[s.name] = JSON.parse(cmd.slice(4)) as string[];
  }
  return stage;
}
