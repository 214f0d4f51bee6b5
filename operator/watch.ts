import type { Logger } from '../lib/logger.js';
import { isGone, KubeApiError, type KubeClient } from './kube-client.js';

/**
 * Everything an informer reports. The controller subscribes to the object events;
 * metrics and logs subscribe to the rest. One enum, one file: list, watch, re-list
 * on an expired resourceVersion, resync.
 */
export enum InformerEvent {
  /** An object appeared (first list, a re-list, or a watch ADDED). */
  Added = 'added',
  /** An object changed; the handler gets the new and the previous version. */
  Updated = 'updated',
  /** An object is gone (watch DELETED, or missing from a re-list). */
  Deleted = 'deleted',
  /** The periodic resync: every cached object once, whether or not it changed. */
  Resync = 'resync',
  /** A full list finished; the cache holds exactly what the server has. */
  Listed = 'listed',
  /** The server said our resourceVersion expired (410 Gone): re-listing. */
  Expired = 'expired',
  /** A watch request opened. */
  WatchStarted = 'watch-started',
  /** A list or watch failed for another reason; retrying after a backoff. */
  Failed = 'failed',
}

interface KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion: string; uid?: string };
}

export interface InformerHandlers<T> {
  [InformerEvent.Added]: (obj: T) => void;
  [InformerEvent.Updated]: (obj: T, old: T) => void;
  [InformerEvent.Deleted]: (obj: T) => void;
  [InformerEvent.Resync]: (obj: T) => void;
  [InformerEvent.Listed]: (count: number) => void;
  [InformerEvent.Expired]: (resourceVersion: string) => void;
  [InformerEvent.WatchStarted]: (resourceVersion: string) => void;
  [InformerEvent.Failed]: (err: Error, retryInMs: number) => void;
}

export interface InformerOptions {
  client: KubeClient;
  /** The collection path, e.g. /apis/herald.dev/v1alpha1/broadcasts or …/namespaces/x/broadcasts. */
  path: string;
  /** Emit Resync for every cached object this often (0: never). */
  resyncMs?: number;
  /** How long one watch request lasts before the server closes it (it is then resumed). */
  watchTimeoutSeconds?: number;
  log?: Logger;
}

export const objectKey = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

/**
 * A list-watch cache of one resource. It lists, then watches from the list's
 * resourceVersion; when the server says that version expired (410 Gone, as an
 * HTTP status or an ERROR event) it re-lists and reports what changed meanwhile
 * as Added/Updated/Deleted, so no change is lost. Other failures back off
 * (capped exponential) and resume from the last seen version.
 */
export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: { [E in InformerEvent]: InformerHandlers<T>[E][] } = {
    [InformerEvent.Added]: [], [InformerEvent.Updated]: [], [InformerEvent.Deleted]: [], [InformerEvent.Resync]: [],
    [InformerEvent.Listed]: [], [InformerEvent.Expired]: [], [InformerEvent.WatchStarted]: [], [InformerEvent.Failed]: [],
  };
  private resourceVersion: string | undefined;
  private stopped = false;
  private readonly stopSignal = new AbortController();
  private current: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private failures = 0;

  constructor(private readonly o: InformerOptions) {}

  on<E extends InformerEvent>(event: E, handler: InformerHandlers<T>[E]): this {
    this.handlers[event].push(handler);
    return this;
  }

  private emit<E extends InformerEvent>(event: E, ...args: Parameters<InformerHandlers<T>[E]>): void {
    for (const h of this.handlers[event]) {
      try {
        (h as (...a: unknown[]) => void)(...args);
      } catch (err) {
        this.o.log?.error({ err, event }, 'informer handler threw');
      }
    }
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  async start(): Promise<void> {
    const firstList = new Promise<void>((resolve) => this.on(InformerEvent.Listed, () => resolve()));
    this.loop = this.run();
    if (this.o.resyncMs) {
      this.resyncTimer = setInterval(() => {
        for (const obj of this.cache.values()) this.emit(InformerEvent.Resync, obj);
      }, this.o.resyncMs);
    }
    await firstList;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.current?.abort();
    await this.loop;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /**
   * Keep an object this process just wrote (the API server's answer) until the
   * watch delivers it, as client-go's mutation cache does: a reconcile that reads
   * the cache right after its own write sees that write, not a stale copy that
   * would only earn a 409. Kept only if newer than what is cached (resource versions
   * are etcd revisions, integers, in every API server the operator targets); the
   * watch event with the same version then changes nothing and emits nothing.
   */
  remember(obj: T): void {
    const key = objectKey(obj);
    const cached = this.cache.get(key);
    if (!cached || cached.metadata.uid !== obj.metadata.uid) return; // deleted or replaced meanwhile: the watch knows better
    if (newerVersion(obj.metadata.resourceVersion, cached.metadata.resourceVersion)) this.cache.set(key, obj);
  }

  /**
   * Resume watching from `resourceVersion` as though it were the last one seen
   * (tests use a long-expired version to exercise the 410 path for real).
   */
  rewatchFrom(resourceVersion: string): void {
    this.resourceVersion = resourceVersion;
    this.current?.abort();
  }

  /** A call, not the field: stop() sets it while run() awaits, which the type checker's narrowing of the field cannot see. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private async run(): Promise<void> {
    while (!this.isStopped()) {
      try {
        if (this.resourceVersion === undefined) await this.relist();
        await this.watchOnce(this.resourceVersion!);
        this.failures = 0;
      } catch (err) {
        if (this.isStopped()) break;
        if (isGone(err)) {
          this.expired();
          continue;
        }
        const delay = Math.min(30_000, 500 * 2 ** this.failures++);
        this.emit(InformerEvent.Failed, err as Error, delay);
        await sleep(delay, this.stopSignal.signal);
      }
    }
  }

  private expired(): void {
    this.emit(InformerEvent.Expired, this.resourceVersion ?? '');
    this.resourceVersion = undefined;
  }

  private async relist(): Promise<void> {
    const list = await this.o.client.request<{ metadata: { resourceVersion: string }; items: T[] }>('GET', this.o.path);
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = objectKey(item);
      seen.add(key);
      this.store(item);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit(InformerEvent.Deleted, old);
      }
    }
    this.resourceVersion = list.metadata.resourceVersion;
    this.synced = true;
    this.emit(InformerEvent.Listed, list.items.length);
  }

  private store(obj: T): void {
    const key = objectKey(obj);
    const old = this.cache.get(key);
    // Our own write, remembered ahead of the watch, is newer than this event: keep it.
    if (old && old.metadata.uid === obj.metadata.uid && newerVersion(old.metadata.resourceVersion, obj.metadata.resourceVersion)) return;
    this.cache.set(key, obj);
    if (!old) this.emit(InformerEvent.Added, obj);
    else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit(InformerEvent.Updated, obj, old);
  }

  private async watchOnce(fromVersion: string): Promise<void> {
    const ac = new AbortController();
    this.current = ac;
    const timeout = this.o.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
    const query = new URLSearchParams({ watch: '1', resourceVersion: fromVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeout) });
    this.emit(InformerEvent.WatchStarted, fromVersion);
    let gone: KubeApiError | undefined;
    await this.o.client.watch<T | WatchStatus>(`${this.o.path}?${query.toString()}`, (e) => {
      if (ac.signal.aborted) return;
      if (e.type === 'ERROR') {
        const s = e.object as WatchStatus;
        gone = new KubeApiError(s.code ?? 500, s.reason ?? '', s.message ?? 'watch error', 'GET', this.o.path);
        ac.abort();
        return;
      }
      const obj = e.object as T;
      // A watch event's object is the server's JSON: read its version as possibly absent.
      const version = (e.object as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
      if (version) this.resourceVersion = version;
      if (e.type === 'ADDED' || e.type === 'MODIFIED') this.store(obj);
      else if (e.type === 'DELETED') {
        this.cache.delete(objectKey(obj));
        this.emit(InformerEvent.Deleted, obj);
      }
      // BOOKMARK: only the resourceVersion moves on.
    }, ac.signal);
    if (gone) throw gone;
  }
}

function newerVersion(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) > BigInt(b);
}

interface WatchStatus {
  kind: 'Status';
  code?: number;
  reason?: string;
  message?: string;
  metadata: { name: string; resourceVersion: string };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
