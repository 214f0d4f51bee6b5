/**
 * OCI image layouts written here, without Docker or a registry, and imported into the
 * node's containerd with `ctr images import`.
 *
 * Layers are plain (uncompressed) tars written by GNU tar with fixed owners, order and
 * times, so the same input gives the same digest and an unchanged layer is stored once.
 * They never leave the machine, so compressing them would only cost CPU here.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface Layer {
  digest: string; // sha256:...
  size: number;
  /** The blob's path in the layout. */
  file: string;
}

/** One `tar -C <cwd> <paths...>` group of a layer (paths as they will be in the image, from /). */
export interface LayerSource {
  cwd: string;
  paths: string[];
}

export interface ImageConfig {
  user: string;
  entrypoint: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
}

export interface ImageSpec {
  /** Fully qualified, as containerd stores it: docker.io/local/<name>:<tag>. */
  name: string;
  layers: Layer[];
  config: ImageConfig;
}

const TAR_FIXED = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=posix',
  '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime'];

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function putBlob(layoutDir: string, tmp: string): Promise<Layer> {
  const hex = await sha256File(tmp);
  const file = path.join(layoutDir, 'blobs', 'sha256', hex);
  if (existsSync(file)) await rm(tmp, { force: true });
  else await rename(tmp, file);
  return { digest: `sha256:${hex}`, size: (await stat(file)).size, file };
}

async function putJson(layoutDir: string, value: unknown): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(JSON.stringify(value));
  const hex = createHash('sha256').update(body).digest('hex');
  await writeFile(path.join(layoutDir, 'blobs', 'sha256', hex), body);
  return { digest: `sha256:${hex}`, size: body.length };
}

async function ensureLayout(layoutDir: string): Promise<void> {
  await mkdir(path.join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

/** Writes one layer (the sources in order, later ones win) into the layout's blobs. */
export async function writeLayer(layoutDir: string, sources: LayerSource[]): Promise<Layer> {
  await ensureLayout(layoutDir);
  const tmp = path.join(layoutDir, `layer.${process.pid}.${Date.now()}.tar`);
  const args = ['-cf', tmp, ...TAR_FIXED];
  for (const s of sources) args.push('-C', s.cwd, ...s.paths);
  await run('tar', args);
  return putBlob(layoutDir, tmp);
}

/**
 * Writes the images' configs and manifests and an index naming each (the annotation
 * containerd's importer reads), replacing the layout's index.
 */
export async function writeIndex(layoutDir: string, images: ImageSpec[]): Promise<void> {
  await ensureLayout(layoutDir);
  const manifests = [];
  for (const img of images) {
    const config = await putJson(layoutDir, {
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: {
        User: img.config.user,
        Entrypoint: img.config.entrypoint,
        Cmd: img.config.cmd,
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', ...(img.config.env ?? [])],
        WorkingDir: img.config.workingDir ?? '/',
      },
      rootfs: { type: 'layers', diff_ids: img.layers.map((l) => l.digest) },
      history: img.layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'herald devenv/node/oci.ts' })),
    });
    const manifest = await putJson(layoutDir, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: img.layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
    });
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'io.containerd.image.name': img.name, 'org.opencontainers.image.ref.name': img.name.split(':').pop() },
    });
  }
  await writeFile(path.join(layoutDir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }, null, 2));
}

/** The layout's blobs that its index reaches, for `importLayout` (others are old layers). */
async function reachableBlobs(layoutDir: string): Promise<string[]> {
  const index = JSON.parse(await readFile(path.join(layoutDir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const out = new Set<string>();
  const blob = (d: string) => path.join('blobs', 'sha256', d.replace(/^sha256:/, ''));
  for (const m of index.manifests) {
    out.add(blob(m.digest));
    const manifest = JSON.parse(await readFile(path.join(layoutDir, blob(m.digest)), 'utf8')) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    out.add(blob(manifest.config.digest));
    for (const l of manifest.layers) out.add(blob(l.digest));
  }
  return [...out];
}

/**
 * Imports the layout's images into containerd (namespace k8s.io, unpacked for the
 * overlayfs snapshotter): the layout is streamed to `ctr images import` as a tar.
 */
export async function importLayout(ctrBin: string, socket: string, layoutDir: string): Promise<void> {
  const members = ['oci-layout', 'index.json', ...(await reachableBlobs(layoutDir))];
  await new Promise<void>((resolve, reject) => {
    const tar = spawn('tar', ['-cf', '-', '-C', layoutDir, ...members], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ctr = spawn(ctrBin, ['--address', socket, '-n', 'k8s.io', 'images', 'import', '--snapshotter', 'overlayfs', '-'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    tar.stdout.pipe(ctr.stdin);
    let err = '';
    tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
    ctr.stderr.on('data', (d: Buffer) => (err += d.toString()));
    ctr.stdout.resume();
    ctr.on('error', reject);
    ctr.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ctr images import: exit ${code}: ${err.trim()}`))));
  });
}
