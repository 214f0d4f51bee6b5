import { API_VERSION, GROUP, PLURAL, VERSION, type Broadcast } from './api/v1alpha1/broadcast.js';
import { isNotFound, type KubeClient } from './kube-client.js';

/**
 * The Broadcast requests the operator makes — and so exactly what its RBAC must
 * grant (config/rbac/cluster-role.yaml): list and watch (the informer), get (the
 * fresh read each reconcile starts with), patch (the finalizer), update of the
 * status subresource; plus create of events.k8s.io Events (events.ts).
 */
export class BroadcastApi {
  constructor(
    readonly client: KubeClient,
    /** Watch scope: one namespace, or all when undefined. */
    readonly namespace?: string,
  ) {}

  /** The collection the informer lists and watches. */
  collectionPath(): string {
    return this.namespace
      ? `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.namespace)}/${PLURAL}`
      : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
  }

  private objectPath(namespace: string, name: string): string {
    return `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PLURAL}/${encodeURIComponent(name)}`;
  }

  async get(namespace: string, name: string): Promise<Broadcast | undefined> {
    try {
      return await this.client.request<Broadcast>('GET', this.objectPath(namespace, name));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * Replace metadata.finalizers. The resourceVersion in the patch makes it
   * conditional: a concurrent change answers 409 and the reconcile runs again.
   */
  setFinalizers(bc: Broadcast, finalizers: string[]): Promise<Broadcast> {
    return this.client.request<Broadcast>('PATCH', this.objectPath(bc.metadata.namespace, bc.metadata.name), {
      contentType: 'application/merge-patch+json',
      body: { metadata: { finalizers, resourceVersion: bc.metadata.resourceVersion } },
    });
  }

  /** PUT …/status with the object's resourceVersion (409 if it changed since it was read). */
  replaceStatus(bc: Broadcast): Promise<Broadcast> {
    return this.client.request<Broadcast>('PUT', `${this.objectPath(bc.metadata.namespace, bc.metadata.name)}/status`, {
      body: { apiVersion: API_VERSION, kind: bc.kind, metadata: bc.metadata, spec: bc.spec, status: bc.status },
    });
  }
}
