/**
 * STAND-IN for the kubelet and KEDA on the process-based local platform (`npm start`),
 * which has an API server but no node: it turns "the herald-worker-green Deployment wants
 * N replicas of version X" into N green worker processes (services/worker/main.ts), and is
 * the one supervisor of local workers. N is what KEDA would hold the color's ScaledObject
 * at here (its paused-replicas annotation, else minReplicaCount); the version is the
 * pod template's herald.dev/version annotation; the container's env is the process's, so
 * a bad version differs from a good one exactly as in a cluster: by configuration.
 * A process that exits is restarted with backoff by the platform's one restart stand-in
 * (devenv/processes.ts RestartAlways: 1 s doubling to 30 s, reset after 10 min up); a color
 * that keeps crashing never heartbeats ready, so the Release holds its weight at 0 while
 * everything else keeps running. The rollout logic does not know
 * whether it runs on this or on real pods: both are workers writing the workers table.
 */
import type { KubeClient } from '../operator/kube-client.js';
import { isNotFound } from '../operator/kube-client.js';
import { KEDA_PAUSED_REPLICAS, VERSION_ANNOTATION, workerDeployment } from '../operator/color-workloads.js';
import type { Logger } from '../lib/logger.js';
import { RestartAlways, startTs } from './processes.js';

/**
 * A color's Deployment and ScaledObject in herald-system, as the Pulumi program creates them
 * in a cluster (the operator then writes only the image, the version annotation and the
 * ScaledObject's replicas): `env` is the worker container's environment, where a bad version
 * differs from a good one.
 */
export function colorManifests(color: string, minReplicas: number, env: Record<string, string> = {}, namespace = 'herald-system'): object[] {
  const labels = { app: 'herald-worker', 'herald.dev/lane': color };
  return [
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: workerDeployment(color), namespace },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { containers: [{ name: 'worker', image: 'herald/worker:none', env: Object.entries(env).map(([name, value]) => ({ name, value })) }] },
        },
      },
    },
    {
      apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: workerDeployment(color), namespace },
      spec: { scaleTargetRef: { name: workerDeployment(color) }, minReplicaCount: minReplicas, maxReplicaCount: 10 },
    },
  ];
}

export interface ColorWanted {
  color: string;
  version: string;
  image: string;
  replicas: number;
  env: Record<string, string>;
}

interface Slot {
  key: string;
  runner?: RestartAlways;
}

export interface WorkerStandInOptions {
  kube: KubeClient;
  namespace?: string;
  colors?: string[];
  /** Environment every worker gets (database, simulator, ports) under the Deployment's own env. */
  baseEnv: Record<string, string>;
  log: Logger;
  logDir?: string;
  intervalMs?: number;
}

export class WorkerStandIn {
  private readonly slots = new Map<string, Slot>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private passing = false;

  constructor(private readonly o: WorkerStandInOptions) {}

  /** What each color's Deployment and ScaledObject ask for now. */
  async wanted(): Promise<ColorWanted[]> {
    const ns = this.o.namespace ?? 'herald-system';
    const out: ColorWanted[] = [];
    for (const color of this.o.colors ?? ['blue', 'green']) {
      try {
        const d = await this.o.kube.request<Deployment>('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${workerDeployment(color)}`);
        const so = await this.o.kube.request<ScaledObject>('GET', `/apis/keda.sh/v1alpha1/namespaces/${ns}/scaledobjects/${workerDeployment(color)}`);
        const paused = so.metadata.annotations?.[KEDA_PAUSED_REPLICAS];
        const container = d.spec.template.spec.containers.find((c) => c.name === 'worker') ?? d.spec.template.spec.containers[0]!;
        out.push({
          color,
          version: d.spec.template.metadata?.annotations?.[VERSION_ANNOTATION] ?? '',
          image: container.image,
          replicas: paused !== undefined ? Number(paused) : (so.spec.minReplicaCount ?? 0),
          env: Object.fromEntries((container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!])),
        });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return out;
  }

  start(): void {
    const pass = async () => {
      if (this.stopped || this.passing) return;
      this.passing = true;
      try {
        await this.converge(await this.wanted());
      } catch (err) {
        this.o.log.warn({ err }, 'worker stand-in pass failed');
      } finally {
        this.passing = false;
      }
    };
    void pass();
    this.timer = setInterval(() => void pass(), this.o.intervalMs ?? 500);
  }

  /** Make the running processes match: per color, `replicas` processes of this (version, image, env). */
  async converge(wanted: ColorWanted[]): Promise<void> {
    const keep = new Set<string>();
    for (const w of wanted) {
      const spec = JSON.stringify({ version: w.version, image: w.image, env: w.env });
      for (let i = 0; i < w.replicas; i++) {
        const key = `${w.color}/${i}/${spec}`;
        keep.add(key);
        if (!this.slots.has(key)) {
          const slot: Slot = { key };
          this.slots.set(key, slot);
          this.run(slot, w, i);
        }
      }
    }
    // A replaced or scaled-down replica stops gracefully (it drains: hands back what it holds).
    await Promise.all([...this.slots.values()].filter((s) => !keep.has(s.key)).map((s) => this.retire(s)));
  }

  private run(slot: Slot, w: ColorWanted, index: number): void {
    if (this.stopped) return;
    slot.runner = new RestartAlways(
      (onUnexpectedExit) =>
        startTs('services/worker/main.ts', {
          name: `worker-${w.color}-${index}`,
          ipc: true,
          logFile: this.o.logDir ? `${this.o.logDir}/worker-${w.color}-${index}.log` : undefined,
          env: { ...process.env, HERALD_WORKER_PORT: '0', ...this.o.baseEnv, ...w.env, HERALD_LANE: w.color, HERALD_VERSION: w.version },
          onUnexpectedExit,
        }),
      {
        name: `worker-${w.color}-${index}`,
        onExit: ({ exit, restarts, backoffMs, crashLooping }) =>
          this.o.log.warn({ color: w.color, version: w.version, code: exit.code, signal: exit.signal, restarts, backoffMs, crashLooping }, 'worker exited; restarting after backoff'),
      },
    );
  }

  private async retire(slot: Slot): Promise<void> {
    this.slots.delete(slot.key);
    await slot.runner?.stop(30_000);
  }

  /** Restarts so far, per color (a crash-looping color shows here). */
  restarts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.slots.values()) out[s.key.split('/')[0]!] = (out[s.key.split('/')[0]!] ?? 0) + (s.runner?.restarts ?? 0);
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.slots.values()].map((s) => this.retire(s)));
  }
}

interface Deployment {
  spec: { template: { metadata?: { annotations?: Record<string, string> }; spec: { containers: { name: string; image: string; env?: { name: string; value?: string }[] }[] } } };
}
interface ScaledObject {
  metadata: { annotations?: Record<string, string> };
  spec: { minReplicaCount?: number; maxReplicaCount?: number };
}
