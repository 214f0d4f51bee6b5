/**
 * The node's container runtime: Debian's containerd (1.6) and runc with the
 * containernetworking plugins, every path of theirs under one private folder, and a CNI
 * bridge on a private range inside the machine (no masquerade: pod traffic never leaves it).
 *
 * Debian's packages rather than containerd built from its Go module: runc needs cgo and
 * libseccomp to honour `seccompProfile: RuntimeDefault` (the restricted profile Herald's
 * pods run under), and Debian builds it that way; the three packages install in seconds
 * and get Debian's security updates. containerd 1.6 speaks CRI v1, which kubelet 1.34 needs
 * (it logs one "RuntimeConfig ... Unimplemented" error at start, which is harmless).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '../poll.js';
import { startProcess, type Supervised } from '../processes.js';

const execFileP = promisify(execFile);

export const RUNTIME_BINARIES = {
  containerd: '/usr/bin/containerd',
  ctr: '/usr/bin/ctr',
  runc: '/usr/sbin/runc',
  cniBinDir: '/usr/lib/cni',
} as const;

/** The Debian packages that provide RUNTIME_BINARIES. */
export const RUNTIME_PACKAGES = ['containerd', 'runc', 'containernetworking-plugins'] as const;

export const POD_CIDR = '10.88.0.0/16';
export const BRIDGE = 'herald0';
/** The bridge's (gateway's) address: the node's InternalIP, where the API server and kubelet listen. */
export const BRIDGE_ADDRESS = '10.88.0.1';
/** Image names as containerd stores them: `image: local/<name>:<tag>` resolves to this. */
export const IMAGE_PREFIX = 'docker.io/local/';
export const PAUSE_IMAGE = `${IMAGE_PREFIX}pause:herald`;

/** Why this machine cannot run the runtime, or undefined if it can. */
export function runtimeMissing(): string | undefined {
  const missing = Object.entries(RUNTIME_BINARIES).filter(([, p]) => !existsSync(p));
  if (missing.length === 0) return undefined;
  return (
    `the node's container runtime is not installed (missing ${missing.map(([, p]) => p).join(', ')}); ` +
    `as root: apt-get install -y ${RUNTIME_PACKAGES.join(' ')}`
  );
}

export interface Runtime {
  socket: string;
  /** Runs `ctr -n k8s.io <args>` against this containerd. */
  ctr(args: string[], input?: string): Promise<string>;
  stop(): Promise<void>;
  proc: Supervised;
}

function containerdConfig(dir: string): string {
  const q = (s: string) => JSON.stringify(s);
  return `version = 2
root = ${q(path.join(dir, 'root'))}
state = ${q(path.join(dir, 'state'))}
oom_score = 0

[grpc]
  address = ${q(path.join(dir, 'containerd.sock'))}

[ttrpc]
  address = ${q(path.join(dir, 'containerd.sock.ttrpc'))}

[debug]
  level = "warn"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(PAUSE_IMAGE)}
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc's nsexec
  # ("failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    # locally imported images only: nothing is ever pulled
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = ${q(RUNTIME_BINARIES.runc)}
        Root = ${q(path.join(dir, 'runc'))}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${q(RUNTIME_BINARIES.cniBinDir)}
    conf_dir = ${q(path.join(dir, 'cni'))}
    max_conf_num = 1

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(path.join(dir, 'opt'))}
`;
}

function cniConfig(dir: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'herald',
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          isGateway: true,
          // no SNAT: pods talk to the host and to each other only
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: path.join(dir, 'ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'loopback' },
      ],
    },
    null,
    2,
  );
}

/**
 * Creates the CNI bridge with its gateway address before anything runs, so the API server
 * and the kubelet can listen on it (the bridge plugin finds it there and keeps it).
 */
export async function createBridge(): Promise<void> {
  const ip = (args: string[]) => execFileP('ip', args).catch((e: { stderr?: string; message: string }) => {
    throw new Error(`ip ${args.join(' ')}: ${e.stderr || e.message}`);
  });
  if (!existsSync(`/sys/class/net/${BRIDGE}`)) await ip(['link', 'add', BRIDGE, 'type', 'bridge']);
  const { stdout } = await execFileP('ip', ['-o', '-4', 'addr', 'show', 'dev', BRIDGE]);
  if (!stdout.includes(`${BRIDGE_ADDRESS}/`)) await ip(['addr', 'add', `${BRIDGE_ADDRESS}/${POD_CIDR.split('/')[1]}`, 'dev', BRIDGE]);
  await ip(['link', 'set', BRIDGE, 'up']);
}

async function socketAnswers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export async function startRuntime(dir: string, logPath: string): Promise<Runtime> {
  const why = runtimeMissing();
  if (why) throw new Error(why);
  await mkdir(path.join(dir, 'cni'), { recursive: true });
  const configPath = path.join(dir, 'config.toml');
  await writeFile(configPath, containerdConfig(dir));
  await writeFile(path.join(dir, 'cni', '10-herald.conflist'), cniConfig(dir));
  const socket = path.join(dir, 'containerd.sock');
  const proc = startProcess(RUNTIME_BINARIES.containerd, ['--config', configPath], { name: 'containerd', logFile: logPath });
  await waitFor('containerd', () => socketAnswers(socket), { timeoutMs: 30_000, everyMs: 100, process: proc });
  const ctr = async (args: string[], input?: string): Promise<string> => {
    const p = execFileP(RUNTIME_BINARIES.ctr, ['--address', socket, '-n', 'k8s.io', ...args], { maxBuffer: 64 << 20 });
    if (input !== undefined) p.child.stdin?.end(input);
    try {
      return (await p).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`ctr ${args.join(' ')}: ${err.stderr || err.message}`, { cause: e });
    }
  };
  return { socket, ctr, proc, stop: async () => void (await proc.stop(15_000)) };
}

/**
 * Stops and removes every pod sandbox and container containerd still runs (after kubelet
 * has stopped), so no shim, mount or netns outlives the node.
 */
export async function removeAllContainers(rt: Runtime): Promise<void> {
  const ids = (await rt.ctr(['tasks', 'ls', '-q']).catch(() => '')).split('\n').filter(Boolean);
  for (const id of ids) await rt.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined);
  for (const id of ids) {
    for (let i = 0; i < 20; i++) {
      const out = await rt.ctr(['tasks', 'delete', id]).then(() => 'ok', (e: Error) => e.message);
      if (out === 'ok' || /not found/.test(out)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const containers = (await rt.ctr(['containers', 'ls', '-q']).catch(() => '')).split('\n').filter(Boolean);
  for (const id of containers) await rt.ctr(['containers', 'delete', id]).catch(() => undefined);
}
