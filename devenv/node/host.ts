/**
 * What a kubelet node changes on the host outside its own folder, recorded before the node
 * starts and put back when it stops: kernel settings (kubelet, the bridge plugin and
 * kube-proxy set them), iptables chains (kubelet's canaries, kube-proxy's rules, the CNI
 * plugins' chains), the bridge and the pods' veths, cgroups under `kubepods`, mounts
 * (the kubelet root bound onto itself, pod volumes, sandbox netns), and the fixed paths a
 * kubelet and containerd use whatever their configuration says.
 *
 * `snapshotHost()` reads the host's state; `restoreHost(before)` undoes what differs;
 * `hostDifferences(before, after)` names what still differs (empty after a clean stop).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Kernel settings the node's parts write. */
export const NODE_SYSCTLS = [
  'vm/overcommit_memory', // kubelet
  'kernel/panic', // kubelet
  'kernel/panic_on_oops', // kubelet
  'net/ipv4/ip_forward', // bridge plugin (isGateway)
  'net/ipv4/conf/all/route_localnet', // kube-proxy (localhost node ports)
  'net/bridge/bridge-nf-call-iptables', // kube-proxy (Services between pods on one bridge)
  'net/bridge/bridge-nf-call-ip6tables',
  'net/netfilter/nf_conntrack_max', // kube-proxy's conntrack sizing
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
] as const;

/** Paths kubelet and containerd use whatever their configuration says. */
export const FIXED_PATHS = [
  '/var/lib/kubelet',
  '/var/log/pods',
  '/var/log/containers',
  '/usr/libexec/kubernetes',
  '/run/containerd',
  '/var/run/netns',
  '/run/netns',
  '/var/lib/cni',
] as const;

export interface HostSnapshot {
  sysctls: Record<string, string | null>;
  /** `iptables-save` / `ip6tables-save` without counters, per family. */
  iptables: { v4: string[]; v6: string[] };
  links: string[];
  /** Mount points (from /proc/self/mountinfo). */
  mounts: string[];
  /** Directories named kubepods* under each cgroup hierarchy. */
  cgroups: string[];
  /** Which FIXED_PATHS exist. */
  paths: string[];
}

async function readSysctl(key: string): Promise<string | null> {
  try {
    return (await readFile(`/proc/sys/${key}`, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function iptablesSave(cmd: 'iptables-save' | 'ip6tables-save'): Promise<string[]> {
  const { stdout } = await execFileP(cmd, [], { maxBuffer: 64 << 20 });
  // Comments carry timestamps; counters in [..] change with traffic.
  return stdout
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.startsWith(':') ? l.replace(/ \[\d+:\d+\]$/, '') : l));
}

async function links(): Promise<string[]> {
  return (await readdir('/sys/class/net')).sort();
}

async function mounts(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\040/g, ' '));
}

const CGROUP_ROOT = '/sys/fs/cgroup';

async function kubepodsCgroups(): Promise<string[]> {
  const out: string[] = [];
  let hierarchies: string[];
  try {
    hierarchies = await readdir(CGROUP_ROOT);
  } catch {
    return out;
  }
  for (const h of hierarchies) {
    const dir = path.join(CGROUP_ROOT, h);
    try {
      for (const e of await readdir(dir)) if (e.startsWith('kubepods')) out.push(path.join(dir, e));
    } catch {
      /* a file, or not readable */
    }
  }
  return out.sort();
}

export async function snapshotHost(): Promise<HostSnapshot> {
  const sysctls: Record<string, string | null> = {};
  for (const k of NODE_SYSCTLS) sysctls[k] = await readSysctl(k);
  return {
    sysctls,
    iptables: { v4: await iptablesSave('iptables-save'), v6: await iptablesSave('ip6tables-save') },
    links: await links(),
    mounts: await mounts(),
    cgroups: await kubepodsCgroups(),
    paths: FIXED_PATHS.filter((p) => existsSync(p)),
  };
}

const BUILTIN_ACCEPT = /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$/;

/**
 * An iptables-save listing as rules and chains, each with its table. Table headers,
 * COMMIT and built-in chains still at ACCEPT are left out: they are the kernel's, not a
 * rule anyone added, and a table is listed once anything first touched it (on a fresh
 * machine, the node's first start; the legacy backend cannot unload it again).
 */
function rulesOf(lines: string[]): string[] {
  let table = '';
  const out: string[] = [];
  for (const l of lines) {
    if (l.startsWith('*')) table = l;
    else if (l !== 'COMMIT' && !BUILTIN_ACCEPT.test(l)) out.push(`${l} (${table})`);
  }
  return out;
}

/** What differs between two snapshots, one line per difference (empty: none). */
export function hostDifferences(before: HostSnapshot, after: HostSnapshot): string[] {
  const diffs: string[] = [];
  for (const k of NODE_SYSCTLS) {
    if (before.sysctls[k] !== after.sysctls[k]) diffs.push(`sysctl ${k}: ${before.sysctls[k]} -> ${after.sysctls[k]}`);
  }
  const setDiff = (what: string, a: string[], b: string[]) => {
    const sa = new Set(a);
    const sb = new Set(b);
    for (const x of b) if (!sa.has(x)) diffs.push(`${what} added: ${x}`);
    for (const x of a) if (!sb.has(x)) diffs.push(`${what} removed: ${x}`);
  };
  setDiff('iptables', rulesOf(before.iptables.v4), rulesOf(after.iptables.v4));
  setDiff('ip6tables', rulesOf(before.iptables.v6), rulesOf(after.iptables.v6));
  setDiff('link', before.links, after.links);
  setDiff('mount', before.mounts, after.mounts);
  setDiff('cgroup', before.cgroups, after.cgroups);
  setDiff('path', before.paths, after.paths);
  return diffs;
}

// ---------------------------------------------------------------------------------------------
// Undo

/** Chains the node's parts create (kubelet, kube-proxy, the CNI portmap/bridge plugins). */
const OWN_CHAIN = /^(KUBE-|CNI-)/;

/**
 * Removes the iptables rules and chains that are not in `before`: first every added rule
 * (jumps into our chains included), then the added chains. Tables and built-in chains stay.
 */
async function restoreIptables(family: 'v4' | 'v6', before: string[]): Promise<void> {
  const cmd = family === 'v4' ? 'iptables' : 'ip6tables';
  const now = await iptablesSave(family === 'v4' ? 'iptables-save' : 'ip6tables-save');
  const had = new Set(before);
  let table = '';
  const rules: { table: string; rule: string }[] = [];
  const chains: { table: string; chain: string }[] = [];
  for (const line of now) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ') && !had.has(line)) rules.push({ table, rule: line });
    else if (line.startsWith(':') && !had.has(line)) {
      const chain = line.slice(1).split(' ')[0] ?? '';
      if (OWN_CHAIN.test(chain)) chains.push({ table, chain });
    }
  }
  for (const r of rules) {
    // "-A CHAIN spec..." -> "-D CHAIN spec..."; iptables-save quotes arguments as a shell would.
    const args = shellWords(r.rule.replace(/^-A /, '-D '));
    await execFileP(cmd, ['-w', '-t', r.table, ...args]).catch(() => undefined);
  }
  for (const c of chains) {
    await execFileP(cmd, ['-w', '-t', c.table, '-F', c.chain]).catch(() => undefined);
  }
  for (const c of chains) {
    await execFileP(cmd, ['-w', '-t', c.table, '-X', c.chain]).catch(() => undefined);
  }
  // Tables that did not exist (iptables-nft creates them on first use): nftables tables.
  const { stdout: version } = await execFileP(cmd, ['-V']);
  if (!version.includes('nf_tables')) return;
  const tables = now.filter((l) => l.startsWith('*') && !had.has(l)).map((l) => l.slice(1));
  for (const t of tables) await execFileP('nft', ['delete', 'table', family === 'v4' ? 'ip' : 'ip6', t]).catch(() => undefined);
}

/** Splits an iptables-save rule line into arguments ("..." quoting only, as iptables-save writes). */
export function shellWords(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? ''));
  }
  return out;
}

/** SIGKILLs every process in a cgroup tree (pods left by a node that died). */
async function killCgroupTree(dir: string): Promise<number> {
  let killed = 0;
  try {
    for (const pid of (await readFile(path.join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      } catch {
        /* gone */
      }
    }
    for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) killed += await killCgroupTree(path.join(dir, e.name));
  } catch {
    /* gone */
  }
  return killed;
}

/**
 * SIGKILLs containerd shims serving the containerd at `socket` (they outlive containerd
 * by design; a node that died leaves them behind).
 */
export async function killShims(socket: string): Promise<void> {
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (/containerd-shim/.test(argv[0] ?? '') && argv.includes(socket)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

async function removeCgroupTree(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e);
    try {
      if ((await stat(p)).isDirectory()) await removeCgroupTree(p);
    } catch {
      /* gone */
    }
  }
  // A cgroup directory is removed with rmdir (its control files go with it) once it is empty of tasks.
  await rmdir(dir).catch(() => undefined);
}

/**
 * Undoes what the node changed since `before`. Call it after every process of the node
 * (and every container) has stopped. Returns what could not be undone.
 */
export async function restoreHost(before: HostSnapshot, ownedDirs: string[] = []): Promise<string[]> {
  // Pods still running (the node died, or containerd could not stop them) go first.
  const hadCgroups = new Set(before.cgroups);
  let killed = 0;
  for (const c of await kubepodsCgroups()) if (!hadCgroups.has(c)) killed += await killCgroupTree(c);
  if (killed) await new Promise((r) => setTimeout(r, 500));
  // Mounts first, deepest first: pod volumes, netns files, the kubelet root bound onto itself.
  const now = await mounts();
  const had = new Set(before.mounts);
  const added = now.filter((m) => !had.has(m)).sort((a, b) => b.length - a.length);
  for (const m of added) await execFileP('umount', ['-l', m]).catch(() => undefined);

  // Links: veths go with their pods' netns; delete what is left (the bridge, stray veths).
  const hadLinks = new Set(before.links);
  for (const l of await links()) {
    if (!hadLinks.has(l)) await execFileP('ip', ['link', 'delete', l]).catch(() => undefined);
  }

  await restoreIptables('v4', before.iptables.v4);
  await restoreIptables('v6', before.iptables.v6);

  for (const c of await kubepodsCgroups()) if (!hadCgroups.has(c)) await removeCgroupTree(c);

  for (const [k, v] of Object.entries(before.sysctls)) {
    if (v === null) continue;
    if ((await readSysctl(k)) !== v) await writeFile(`/proc/sys/${k}`, v).catch(() => undefined);
  }

  const hadPaths = new Set(before.paths);
  for (const p of [...FIXED_PATHS, ...ownedDirs]) {
    if (!hadPaths.has(p) && existsSync(p)) await rm(p, { recursive: true, force: true }).catch(() => undefined);
  }
  return hostDifferences(before, await snapshotHost());
}
