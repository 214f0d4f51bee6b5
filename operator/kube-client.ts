import https from 'node:https';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';

/** A non-2xx answer from the API server, with the Status object's reason when it sent one. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: HTTP ${status} ${reason}: ${message}`);
    this.name = 'KubeApiError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeApiError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeApiError && e.status === 409;
export const isAlreadyExists = (e: unknown): boolean => e instanceof KubeApiError && e.status === 409 && e.reason === 'AlreadyExists';
export const isGone = (e: unknown): boolean => e instanceof KubeApiError && e.status === 410;

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export type ContentType = 'application/json' | 'application/merge-patch+json' | 'application/json-patch+json';

/**
 * The operator's HTTP client for the API server. Authentication (client certificate,
 * bearer token, in-cluster service-account token) comes from @kubernetes/client-node's
 * KubeConfig; requests are plain JSON over one keep-alive agent, so every verb the
 * operator uses is visible here and in the audit log.
 */
export class KubeClient {
  private readonly agent: https.Agent | http.Agent;
  readonly server: string;

  constructor(
    readonly config: KubeConfig,
    opts: { userAgent?: string } = {},
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/$/, '');
    this.userAgent = opts.userAgent ?? 'herald-operator';
    this.agent = this.server.startsWith('https:') ? new https.Agent({ keepAlive: true, maxSockets: 32 }) : new http.Agent({ keepAlive: true, maxSockets: 32 });
  }

  private readonly userAgent: string;

  /** KUBECONFIG (a path) if given, else the in-cluster service account, else ~/.kube/config. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): KubeClient {
    const kc = new KubeConfig();
    if (env.KUBECONFIG) kc.loadFromFile(env.KUBECONFIG);
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    return new KubeClient(kc);
  }

  static fromFile(path: string): KubeClient {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeClient(kc);
  }

  private async options(method: string, path: string, headers: Record<string, string>): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = { method, headers: { accept: 'application/json', 'user-agent': this.userAgent, ...headers } };
    await this.config.applyToHTTPSOptions(opts);
    const url = new URL(this.server + path);
    return { ...opts, protocol: url.protocol, hostname: url.hostname, port: url.port, path: url.pathname + url.search, agent: this.agent };
  }

  async request<T>(method: string, path: string, init: { body?: unknown; contentType?: ContentType; timeoutMs?: number } = {}): Promise<T> {
    const payload = init.body === undefined ? undefined : JSON.stringify(init.body);
    const headers: Record<string, string> = payload === undefined ? {} : { 'content-type': init.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(payload)) };
    const opts = await this.options(method, path, headers);
    const mod = this.server.startsWith('https:') ? https : http;
    const text = await new Promise<string>((resolve, reject) => {
      const req = mod.request({ ...opts, timeout: init.timeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(text);
          else reject(toApiError(status, text, method, path));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * One watch request: calls onEvent for each event until the server closes the
   * stream (its timeoutSeconds), the signal aborts, or the connection fails.
   * A non-200 answer (410 Gone for an expired resourceVersion) rejects with KubeApiError.
   */
  async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const opts = await this.options('GET', path, {});
    const mod = this.server.startsWith('https:') ? https : http;
    // Watches hold their connection for minutes: keep them off the shared agent's pool.
    const agent = this.server.startsWith('https:') ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
    return new Promise<void>((resolve, reject) => {
      const req = mod.request({ ...opts, agent, signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(toApiError(status, Buffer.concat(chunks).toString('utf8'), 'GET', path)));
          res.on('error', reject);
          return;
        }
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        // readline re-emits the response's errors (an abort is one); the response handler below decides.
        lines.on('error', () => {});
        lines.on('line', (line) => {
          if (!line.trim()) return;
          let event: WatchEvent<T>;
          try {
            event = JSON.parse(line) as WatchEvent<T>;
          } catch {
            return;
          }
          onEvent(event);
        });
        res.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
        res.on('close', () => resolve());
      });
      req.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      req.end();
    }).finally(() => agent.destroy());
  }

  close(): void {
    this.agent.destroy();
  }
}

function toApiError(status: number, text: string, method: string, path: string): KubeApiError {
  let reason = '';
  let message = text.slice(0, 500);
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    reason = s.reason ?? '';
    message = s.message ?? message;
  } catch {
    /* not a Status object */
  }
  return new KubeApiError(status, reason, message, method, path);
}
