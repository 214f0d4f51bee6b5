/**
 * Herald's images for the local node, laid out from the Dockerfile's final stage
 * (platform/image-layout.ts reads it: WORKDIR, USER, ENV, the COPY lines and each target's
 * CMD), so the two recipes are one. Three layers, shared by every target:
 *   base  Node 24 and the libraries it loads (devenv/node/images.ts nodeBaseLayer)
 *   deps  <workdir>/node_modules from the deps stage's own install command
 *   app   the rest the stage copies (package.json, dist/ from npm run build)
 * The files come from devenv/image-tree.ts (the same tree the built-tree test runs).
 * Plus `herald/k6` (the k6 binary from the tools cache) for the load-test CronJob.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { readFinalStage } from '../../platform/image-layout.js';
import { toolPath } from '../control-plane.js';
import { layOutImageTree } from '../image-tree.js';
import { nodeBaseLayer, staticBinaryLayer } from './images.js';
import { writeIndex, writeLayer, type ImageSpec } from './oci.js';
import { IMAGE_PREFIX } from './runtime.js';

const execFileP = promisify(execFile);

/** The repository a target's image is named by (platform/workloads.ts image()). */
export const heraldImage = (target: string, tag: string): string => `${IMAGE_PREFIX}herald/${target}:${tag}`;
/** What manifests write for it (the `local` registry, normalised by containerd to IMAGE_PREFIX). */
export const LOCAL_REGISTRY = 'local';

export interface HeraldImagesOptions {
  repo: string;
  /** Where the layout and the staged layers live (kept: the deps layer is reused). */
  dir: string;
  tag: string;
  /** Run `npm run build` first (default true). */
  build?: boolean;
  log?: (line: string) => void;
}

async function sh(cmd: string, args: string[], cwd: string): Promise<void> {
  try {
    await execFileP(cmd, args, { cwd, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}): ${err.stderr || err.stdout || err.message}`, { cause: e });
  }
}

/** Writes the layout (one image per Dockerfile target, plus k6) and returns the image names. */
export async function buildHeraldImages(o: HeraldImagesOptions): Promise<{ layout: string; images: string[] }> {
  const log = o.log ?? (() => undefined);
  const stage = readFinalStage(path.join(o.repo, 'Dockerfile'));
  const workdir = stage.workdir.replace(/^\//, '');
  const layout = path.join(o.dir, 'layout');
  const work = path.join(o.dir, 'work');
  await mkdir(work, { recursive: true });

  if (o.build !== false) {
    log('npm run build');
    await sh('npm', ['run', 'build'], o.repo);
  }

  log('base layer (Node and its libraries)');
  const base = await nodeBaseLayer(layout, work, path.join(o.repo, 'node_modules', 'node', 'bin', 'node'));

  // The files: the final stage's tree (devenv/image-tree.ts, the recipe the built-tree test runs).
  const treeRoot = path.join(work, 'tree');
  await rm(treeRoot, { recursive: true, force: true });
  await mkdir(treeRoot, { recursive: true });
  await layOutImageTree(path.join(treeRoot, workdir), { source: o.repo, built: true });
  // node_modules changes with package-lock.json only: a layer of its own, stored once.
  const modules = stage.copies.filter((c) => c.src.endsWith('/node_modules')).map((c) => path.posix.join(workdir, c.dest));
  const rest = stage.copies.filter((c) => !c.src.endsWith('/node_modules')).map((c) => path.posix.join(workdir, c.dest));
  log('deps and app layers');
  const deps = await writeLayer(layout, [{ cwd: treeRoot, paths: modules }]);
  const app = await writeLayer(layout, [{ cwd: treeRoot, paths: rest }]);

  const env = Object.entries(stage.env).map(([k, v]) => `${k}=${v.replace(/\$\{VERSION\}/g, o.tag)}`);
  const images: ImageSpec[] = Object.entries(stage.targets).map(([target, cmd]) => ({
    name: heraldImage(target, o.tag),
    layers: [base, deps, app],
    config: { user: stage.user, entrypoint: [], cmd, env, workingDir: stage.workdir },
  }));
  log('k6 image');
  const k6 = await staticBinaryLayer(layout, work, toolPath('k6'), 'k6');
  images.push({ name: heraldImage('k6', o.tag), layers: [k6], config: { user: '1000:1000', entrypoint: [], cmd: ['k6'] } });
  await writeIndex(layout, images);
  return { layout, images: images.map((i) => i.name) };
}
