/**
 * `npm run cluster`: Herald on a real one-node Kubernetes cluster on this machine (Linux,
 * root: the kubelet and containerd manage cgroups, mounts and network namespaces, as kind
 * needs Docker). `npm start` stays the default: processes, no root.
 *
 *   control plane  etcd, kube-apiserver, kube-controller-manager, kube-scheduler (<data>/control-plane)
 *   node           containerd + runc + CNI bridge, kubelet, kube-proxy, CoreDNS (<data>/node)
 *   Herald         images built here (no Docker), the Pulumi program's Kubernetes objects made
 *                  local (devenv/node/herald.ts), PostgreSQL embedded on the host (<data>/cluster)
 *
 *   HERALD_DATA_DIR   data directory (default .herald, as npm start)
 *
 * Ctrl-C (or SIGTERM) stops it all and undoes every change to the host.
 */
import { mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isAlive, REPO } from '../devenv/processes.js';
import { startCluster, type Cluster } from '../devenv/node/cluster.js';
import { deployHerald, type HeraldOnNode } from '../devenv/node/herald.js';
import { nodeUnavailable } from '../devenv/node/node.js';
import { toolPath } from '../devenv/control-plane.js';

const dataDir = path.resolve(REPO, process.env.HERALD_DATA_DIR ?? '.herald');
const t0 = Date.now();
const say = (line: string) => process.stdout.write(`cluster   | ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${line}\n`);

const why = await nodeUnavailable();
if (why) {
  process.stderr.write(`npm run cluster: ${why}\n(npm start runs Herald as processes and needs none of this.)\n`);
  process.exit(1);
}
// npm start and npm run cluster share the data directory's control plane: one at a time.
const owner = path.join(dataDir, 'run', 'platform.pid');
if (existsSync(owner)) {
  const pid = Number((await readFile(owner, 'utf8')).trim());
  if (pid > 0 && pid !== process.pid && isAlive(pid)) {
    process.stderr.write(`npm run cluster: Herald already runs from ${dataDir} (pid ${pid}); stop it first\n`);
    process.exit(1);
  }
}
await mkdir(path.dirname(owner), { recursive: true });
await writeFile(owner, `${process.pid}\n`);

let cluster: Cluster | undefined;
let herald: HeraldOnNode | undefined;
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  say('stopping (the node first, then the control plane; the host is put back as it was)');
  const left = (await cluster?.stop()) ?? [];
  await herald?.stop();
  await rm(owner, { force: true });
  if (left.length) say(`could not undo on the host: ${left.join('; ')}`);
  else say('stopped; the host is as it was');
  process.exit(left.length ? 1 : code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  cluster = await startCluster({ dir: dataDir, onStep: say });
  say(`node Ready (${(cluster.node.startMs / 1000).toFixed(1)} s from containerd to CoreDNS serving)`);
  herald = await deployHerald(cluster, { dir: path.join(dataDir, 'cluster'), repo: REPO, log: say });
} catch (err) {
  say(`failed: ${(err as Error).stack ?? String(err)}`);
  await stop(1);
}

const c = cluster!;
const apiIp = (await c.node.kubectl(['-n', 'herald', 'get', 'service', 'herald-api', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
const simIp = (await c.node.kubectl(['-n', 'herald', 'get', 'service', 'herald-provider-simulator', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
const kubectl = toolPath('kubectl');
const rel = (f: string) => (f.startsWith(REPO + path.sep) ? path.relative(REPO, f) : f);
const adminTokenFile = path.join(dataDir, 'cluster', 'secrets', 'admin-token');
process.stdout.write(`
Herald is running on a Kubernetes node (${((Date.now() - t0) / 1000).toFixed(0)} s).  Data: ${rel(dataDir)}/

In another terminal, from ${REPO}:

  export KUBECONFIG=${c.controlPlane.adminKubeconfig}
  export PATH=${path.dirname(kubectl)}:$PATH        # kubectl built by npm run tools

  kubectl get pods -A                             # every Herald pod, CoreDNS
  kubectl apply -f examples/sms-send-now.yaml     # or any manifest in examples/
  kubectl get broadcasts -w                       # short name: bc

  api          http://${apiIp}   admin token: ${rel(adminTokenFile)}
               curl -H "Authorization: Bearer $(cat ${rel(adminTokenFile)})" http://${apiIp}/admin/tenants
  simulator    http://${simIp}/_sim/received   (what the "providers" got)
  kube-apiserver ${c.controlPlane.server}   PostgreSQL ${herald!.hostDatabaseUrl.replace(/\/\/[^@]*@/, '//***@')}

Ctrl-C stops everything and puts the host back as it was.
`);
