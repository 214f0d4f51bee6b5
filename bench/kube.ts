import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';

export interface KubeAdmin {
  server: URL;
  agent: https.Agent;
  /** One request as the control plane's admin (client certificate); the body is JSON. */
  request: (method: string, urlPath: string, body?: unknown, contentType?: string) => Promise<{ status: number; body: string }>;
}

/**
 * A bare HTTPS client for a local control plane (scripts/control-plane), as its admin.
 * The benchmarks use it instead of @kubernetes/client-node so that the client's own
 * cost stays small next to the API server's, and `maxSockets` requests really are in
 * flight together.
 */
export async function kubeAdmin(controlPlaneDir: string, server: string, maxSockets: number): Promise<KubeAdmin> {
  const pki = path.join(controlPlaneDir, 'pki');
  const [ca, cert, key] = await Promise.all(['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(path.join(pki, f))));
  const url = new URL(server);
  const agent = new https.Agent({ keepAlive: true, maxSockets, ca, cert, key });
  const request = (method: string, urlPath: string, body?: unknown, contentType = 'application/json') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers = payload ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {};
      const req = https.request({ hostname: url.hostname, port: url.port, path: urlPath, method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  return { server: url, agent, request };
}

/** Pids of the processes whose command line names `dir` (the control plane's etcd and kube-apiserver). */
export function processesUnder(dir: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}
