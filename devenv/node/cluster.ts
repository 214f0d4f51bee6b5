/**
 * A one-node Kubernetes cluster on this machine: the host claimed (devenv/node/node.ts
 * claimHost), the control plane with kube-controller-manager and kube-scheduler on the
 * node's address, and the node (containerd, kubelet, kube-proxy, CoreDNS). `stop()` undoes
 * it all in reverse and returns what it could not undo on the host (empty: clean).
 */
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../control-plane.js';
import { claimHost, startNode, type KubeNode, type NodeHost } from './node.js';

export interface Cluster {
  controlPlane: ControlPlane;
  node: KubeNode;
  host: NodeHost;
  stop(): Promise<string[]>;
}

export async function startCluster(opts: {
  dir: string;
  onStep?: (line: string) => void;
  /** Wait this long for another node on the machine to stop (default 0: fail at once). */
  lockWaitMs?: number;
}): Promise<Cluster> {
  const step = opts.onStep ?? (() => undefined);
  const host = await claimHost(step, opts.lockWaitMs ?? 0);
  let controlPlane: ControlPlane | undefined;
  try {
    step('control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)');
    controlPlane = await startControlPlane({ dir: path.join(opts.dir, 'control-plane'), node: { address: host.address } });
    const node = await startNode({ dir: path.join(opts.dir, 'node'), host, controlPlane, onStep: step });
    const cp = controlPlane;
    let stopped: Promise<string[]> | undefined;
    return {
      controlPlane: cp,
      node,
      host,
      stop: () =>
        (stopped ??= (async () => {
          await node.stop();
          await cp.stop();
          return host.release();
        })()),
    };
  } catch (e) {
    await controlPlane?.stop();
    const left = await host.release();
    if (left.length) (e as Error).message += `\n(after cleanup, still on the host: ${left.join('; ')})`;
    throw e;
  }
}
