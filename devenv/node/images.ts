/**
 * The images the node needs that no registry serves here, built from what is on the
 * machine: pause (kubernetes' pause.c, compiled static), a static-binary image (CoreDNS,
 * k6), and the Node.js base Herald's images start from.
 *
 * The Node.js base is the Node 24 binary the project already runs (node_modules/node,
 * the version package.json pins) plus the shared libraries `ldd` says it loads (glibc,
 * libstdc++, libgcc_s and the dynamic loader from this Debian), CA certificates, and
 * /etc/passwd naming user 1000. Nothing else: no shell, no package manager, no npm, as a
 * distroless image; so the image runs exactly the Node the tests run under.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeLayer, type Layer } from './oci.js';

const execFileP = promisify(execFile);

/** The uid/gid Herald's containers run as (platform/workloads.ts sets runAsUser 1000). */
export const APP_USER = '1000:1000';

function goModCache(): string {
  return process.env['GOMODCACHE'] || path.join(process.env['GOPATH'] || path.join(os.homedir(), 'go'), 'pkg', 'mod');
}

/** A folder with /etc/passwd, /etc/group (root and the app user), /tmp and the CA bundle. */
async function stageEtc(root: string): Promise<void> {
  await mkdir(path.join(root, 'etc', 'ssl', 'certs'), { recursive: true });
  await writeFile(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/sbin/nologin\napp:x:1000:1000:app:/tmp:/sbin/nologin\n');
  await writeFile(path.join(root, 'etc', 'group'), 'root:x:0:\napp:x:1000:\n');
  const bundle = '/etc/ssl/certs/ca-certificates.crt';
  if (existsSync(bundle)) await copyFile(bundle, path.join(root, 'etc', 'ssl', 'certs', 'ca-certificates.crt'));
  await mkdir(path.join(root, 'tmp'), { recursive: true });
  await chmod(path.join(root, 'tmp'), 0o1777);
}

/** The pause container's layer: /pause, built with `gcc -static` from kubernetes' pause.c. */
export async function pauseLayer(layoutDir: string, workDir: string, kubernetesVersion: string): Promise<Layer> {
  const src = path.join(goModCache(), `k8s.io/kubernetes@${kubernetesVersion}`, 'build', 'pause', 'linux', 'pause.c');
  if (!existsSync(src)) throw new Error(`pause.c not found at ${src} (built by npm run tools with the kubernetes module)`);
  const root = path.join(workDir, 'pause-root');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await execFileP('gcc', ['-Os', '-static', '-o', path.join(root, 'pause'), src, `-DVERSION=${kubernetesVersion}`]);
  return writeLayer(layoutDir, [{ cwd: root, paths: ['.'] }]);
}

/** A layer holding one static binary at /usr/local/bin/<name>, with /etc and /tmp. */
export async function staticBinaryLayer(layoutDir: string, workDir: string, bin: string, name: string): Promise<Layer> {
  const root = path.join(workDir, `${name}-root`);
  await rm(root, { recursive: true, force: true });
  await mkdir(path.join(root, 'usr', 'local', 'bin'), { recursive: true });
  await copyFile(bin, path.join(root, 'usr', 'local', 'bin', name));
  await chmod(path.join(root, 'usr', 'local', 'bin', name), 0o755);
  await stageEtc(root);
  return writeLayer(layoutDir, [{ cwd: root, paths: ['.'] }]);
}

/** The libraries `ldd <bin>` lists (resolved paths) and the dynamic loader. */
export async function sharedLibraries(bin: string): Promise<string[]> {
  const { stdout } = await execFileP('ldd', [bin]);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** The Node.js base layer (see the module comment). */
export async function nodeBaseLayer(layoutDir: string, workDir: string, nodeBin: string): Promise<Layer> {
  const root = path.join(workDir, 'node-base-root');
  await rm(root, { recursive: true, force: true });
  await mkdir(path.join(root, 'usr', 'local', 'bin'), { recursive: true });
  await copyFile(nodeBin, path.join(root, 'usr', 'local', 'bin', 'node'));
  await chmod(path.join(root, 'usr', 'local', 'bin', 'node'), 0o755);
  for (const lib of await sharedLibraries(nodeBin)) {
    // Same path as on the host (/lib/x86_64-linux-gnu/..., /lib64/ld-linux-x86-64.so.2): the
    // binary's interpreter path and the loader's default search path find them there.
    const dst = path.join(root, lib);
    await mkdir(path.dirname(dst), { recursive: true });
    await copyFile(lib, dst);
  }
  await stageEtc(root);
  return writeLayer(layoutDir, [{ cwd: root, paths: ['.'] }]);
}
