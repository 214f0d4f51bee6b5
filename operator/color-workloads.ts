import { isConflict, type KubeClient } from './kube-client.js';

/** The pod-template annotation naming the version a color's image runs (readiness and the local stand-in read it). */
export const VERSION_ANNOTATION = 'herald.dev/version';
/** KEDA holds a ScaledObject's target at this many replicas while the annotation is set. */
export const KEDA_PAUSED_REPLICAS = 'autoscaling.keda.sh/paused-replicas';

export const workerDeployment = (color: string) => `herald-worker-${color}`;

/**
 * What the operator writes for a worker color, and nothing more (one writer per field):
 * the Deployment's image (and the version annotation beside it) and the color's
 * ScaledObject (min/max, or paused at 0 replicas). Never `spec.replicas`, which is
 * KEDA's; the Pulumi program ignores changes to both fields it does not own.
 */
export class ColorWorkloads {
  constructor(
    private readonly kube: KubeClient,
    private readonly namespace: string,
  ) {}

  private deploymentPath = (color: string) => `/apis/apps/v1/namespaces/${this.namespace}/deployments/${workerDeployment(color)}`;
  private scaledObjectPath = (color: string) => `/apis/keda.sh/v1alpha1/namespaces/${this.namespace}/scaledobjects/${workerDeployment(color)}`;

  /** Run `image` (of `version`) on this color, between minReplicas and maxReplicas. */
  async run(color: string, o: { image: string; version: string; minReplicas: number; maxReplicas: number }): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const d = await this.kube.request<Deployment>('GET', this.deploymentPath(color));
      const containers = d.spec.template.spec.containers;
      const worker = containers.find((c) => c.name === 'worker') ?? containers[0];
      if (!worker) throw new Error(`deployment ${workerDeployment(color)} has no container`);
      const annotations = d.spec.template.metadata?.annotations ?? {};
      if (worker.image === o.image && annotations[VERSION_ANNOTATION] === o.version) break;
      worker.image = o.image;
      d.spec.template.metadata = { ...d.spec.template.metadata, annotations: { ...annotations, [VERSION_ANNOTATION]: o.version } };
      try {
        await this.kube.request('PUT', this.deploymentPath(color), { body: d });
        break;
      } catch (e) {
        if (!isConflict(e) || attempt >= 5) throw e;
      }
    }
    await this.kube.request('PATCH', this.scaledObjectPath(color), {
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations: { [KEDA_PAUSED_REPLICAS]: null } }, spec: { minReplicaCount: o.minReplicas, maxReplicaCount: o.maxReplicas } },
    });
  }

  /** No workers for this color (it is at weight 0 and past its scale-down delay). */
  async scaleToZero(color: string): Promise<void> {
    await this.kube.request('PATCH', this.scaledObjectPath(color), {
      contentType: 'application/merge-patch+json',
      body: { metadata: { annotations: { [KEDA_PAUSED_REPLICAS]: '0' } }, spec: { minReplicaCount: 0 } },
    });
  }
}

interface Deployment {
  metadata: { name: string; resourceVersion: string };
  spec: {
    template: {
      metadata?: { annotations?: Record<string, string>; labels?: Record<string, string> };
      spec: { containers: { name: string; image: string; env?: { name: string; value?: string }[] }[] };
    };
  };
}
