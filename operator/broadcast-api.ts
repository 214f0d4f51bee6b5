import { API_VERSION, GROUP, PLURAL, VERSION, type Broadcast } from './api/v1alpha1/broadcast.js';
import type { KubeClient } from './kube-client.js';

/** The informer's cache, as the API reads it (see Informer.remember). */
export interface BroadcastCache {
  get(key: string): Broadcast | undefined;
  remember(obj: Broadcast): void;
}

/**
 * The Broadcast requests the operator makes — and so exactly what its RBAC must
 * grant (config/rbac/cluster-role.yaml): list and watch (the informer, whose cache
 * every read comes from), patch (the finalizer), update of the
 * status subresource; plus create of events.k8s.io Events (events.ts).
 */
export class BroadcastApi {
  private cache: BroadcastCache | undefined;

  constructor(
    readonly client: KubeClient,
    /** Watch scope: one namespace, or all when undefined. */
    readonly namespace?: string,
  ) {}

  /**
   * Read from the informer's cache, as controller-runtime's client does: a reconcile
   * costs the API server no GET, and every write carries the resourceVersion it was
   * based on, so a stale read ends in a 409 and another reconcile, never a lost update.
   */
  readFrom(cache: BroadcastCache): this {
    this.cache = cache;
    return this;
  }

  /** The collection the informer lists and watches. */
  collectionPath(): string {
    return this.namespace
      ? `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.namespace)}/${PLURAL}`
      : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
  }

  private objectPath(namespace: string, name: string): string {
    return `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${PLURAL}/${encodeURIComponent(name)}`;
  }

  /** The Broadcast as the informer's cache has it; undefined when gone. */
  get(namespace: string, name: string): Broadcast | undefined {
    return this.readCache().get(`${namespace}/${name}`);
  }

  /**
   * After a 409: the object as changed by whoever wrote it last. As controller-runtime
   * does, wait (up to `waitMs`) for the watch to bring a version other than the one
   * that lost; undefined when none came (the caller requeues) or the object is gone.
   */
  async newerThan(bc: Broadcast, waitMs = 2_000): Promise<Broadcast | undefined> {
    const key = `${bc.metadata.namespace}/${bc.metadata.name}`;
    for (const deadline = Date.now() + waitMs; ; ) {
      const cached = this.readCache().get(key);
      if (!cached || cached.metadata.resourceVersion !== bc.metadata.resourceVersion) return cached;
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private readCache(): BroadcastCache {
    if (!this.cache) throw new Error('BroadcastApi reads from an informer cache: call readFrom(informer) first');
    return this.cache;
  }

  /**
   * Replace metadata.finalizers. The resourceVersion in the patch makes it
   * conditional: a concurrent change answers 409 and the reconcile runs again.
   */
  async setFinalizers(bc: Broadcast, finalizers: string[]): Promise<Broadcast> {
    const stored = await this.client.request<Broadcast>('PATCH', this.objectPath(bc.metadata.namespace, bc.metadata.name), {
      contentType: 'application/merge-patch+json',
      body: { metadata: { finalizers, resourceVersion: bc.metadata.resourceVersion } },
    });
    this.cache?.remember(stored);
    return stored;
  }

  /** PUT …/status with the object's resourceVersion (409 if it changed since it was read). */
  async replaceStatus(bc: Broadcast): Promise<Broadcast> {
    const stored = await this.client.request<Broadcast>('PUT', `${this.objectPath(bc.metadata.namespace, bc.metadata.name)}/status`, {
      body: { apiVersion: API_VERSION, kind: bc.kind, metadata: bc.metadata, spec: bc.spec, status: bc.status },
    });
    this.cache?.remember(stored);
    return stored;
  }
}
