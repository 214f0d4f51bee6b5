/**
 * A directory laid out exactly as the image's final stage (platform/image-layout.ts reads
 * the recipe from the Dockerfile): package.json from the sources, node_modules from the
 * deps stage's `npm ci --omit=dev ...`, dist/ from the build stage's `npm run build`. No
 * Docker engine runs here, so this is how the tests run what the images run, and how the
 * local node's images get their files.
 *
 * Production dependencies are installed once per package-lock.json (cached under
 * ~/.cache/herald/image-deps) and hard-linked into each tree.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ENTRYPOINTS, readFinalStage, type FinalStage } from '../platform/image-layout.js';
import { REPO } from './local-platform.js';

const run = promisify(execFile);
const DEPS_CACHE = path.join(os.homedir(), '.cache', 'herald', 'image-deps');

export interface ImageTree {
  /** The tree's root: the image's WORKDIR. */
  root: string;
  stage: FinalStage;
  /** The command line of an entrypoint (this Node, the built file in the tree). */
  argv(entry: keyof typeof ENTRYPOINTS): string[];
}

export interface ImageTreeOptions {
  /** The sources to build (default this checkout); the recipe is always this checkout's Dockerfile. */
  source?: string;
  /** Skip `npm run build` in source (its dist/ is already built). */
  built?: boolean;
}

/** Split a shell-free command line of the Dockerfile (`npm ci --omit=dev ...`) into argv. */
function words(command: string): [string, ...string[]] {
  const w = command.split(/\s+/).filter(Boolean);
  if (w.length === 0) throw new Error('empty command');
  return w as [string, ...string[]];
}

/** node_modules as the deps stage installs it, cached per package.json + package-lock.json. */
async function productionModules(source: string, install: string): Promise<string> {
  const pkg = await readFile(path.join(source, 'package.json'));
  const lock = await readFile(path.join(source, 'package-lock.json'));
  const key = createHash('sha256').update(install).update(pkg).update(lock).digest('hex').slice(0, 16);
  const dir = path.join(DEPS_CACHE, key);
  if (existsSync(path.join(dir, 'node_modules'))) return path.join(dir, 'node_modules');
  await mkdir(DEPS_CACHE, { recursive: true });
  const tmp = await mkdtemp(path.join(DEPS_CACHE, `.${key}-`));
  try {
    await cp(path.join(source, 'package.json'), path.join(tmp, 'package.json'));
    await cp(path.join(source, 'package-lock.json'), path.join(tmp, 'package-lock.json'));
    const [cmd, ...args] = words(install);
    await run(cmd, args, { cwd: tmp, maxBuffer: 16 << 20 });
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      // another run installed the same key first: use theirs
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      await rm(tmp, { recursive: true, force: true });
    });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return path.join(dir, 'node_modules');
}

/** Lay out `dest` (created; must not exist) as the final image stage. */
export async function layOutImageTree(dest: string, o: ImageTreeOptions = {}): Promise<ImageTree> {
  const source = path.resolve(o.source ?? REPO);
  const stage = readFinalStage();
  await mkdir(dest);
  for (const c of stage.copies) {
    const to = path.join(dest, c.dest);
    if (c.from === undefined) {
      await cp(path.join(source, c.src), to, { recursive: true });
    } else if (c.src.endsWith('/node_modules')) {
      const install = stage.runs[c.from]?.find((r) => r.startsWith('npm ci'));
      if (!install) throw new Error(`Dockerfile: stage ${c.from} runs no npm ci`);
      await run('cp', ['-al', await productionModules(source, install), to]);
    } else if (c.src.endsWith('/dist')) {
      const build = stage.runs[c.from]?.find((r) => r.startsWith('npm run build'));
      if (!build) throw new Error(`Dockerfile: stage ${c.from} runs no npm run build`);
      if (!o.built) {
        const [cmd, ...args] = words(build);
        await run(cmd, args, { cwd: source, env: { ...process.env, PATH: `${path.join(source, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` } });
      }
      await cp(path.join(source, 'dist'), to, { recursive: true });
    } else {
      throw new Error(`Dockerfile: the runtime stage copies ${c.src} from ${c.from}, which image-tree does not know`);
    }
  }
  return { root: dest, stage, argv: (entry) => [process.execPath, path.join(dest, ENTRYPOINTS[entry])] };
}

/**
 * argv wrapped so the process sees the whole root filesystem read-only except `writable`
 * (its volumes), as a pod with readOnlyRootFilesystem does: a private mount namespace
 * (unshare, root only) where `/` is bind-remounted read-only. The mount is the process's
 * own and ends with it; nothing outside changes. The wrapper execs, so the pid is the
 * service's and signals reach it.
 */
export function readOnlyRoot(argv: string[], writable: string[]): string[] {
  const script = 'n=$1; shift; while [ "$n" -gt 0 ]; do mount --bind "$1" "$1" || exit 97; shift; n=$((n-1)); done; mount -o remount,bind,ro / || exit 97; exec "$@"';
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'read-only-root', String(writable.length), ...writable, ...argv];
}
