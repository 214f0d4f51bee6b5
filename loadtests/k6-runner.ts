/**
 * Runs a k6 script (loadtests/*.js) against a local platform: applies the load-test
 * ServiceAccount and Role (loadtests/k8s/loadtest-rbac.yaml), mints a token for it,
 * and hands k6 the api URL, the API server URL and CA, the token and the admin token
 * as files. k6 is the binary built by `npm run tools` (toolPath('k6')).
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { toolPath } from '../devenv/control-plane.js';
import type { LocalPlatform } from '../devenv/local-platform.js';

export const LOADTESTS = path.dirname(fileURLToPath(import.meta.url));
export const LOADTEST_NAMESPACE = 'herald-loadtest';
/** k6 exits with this code when a threshold fails. */
export const K6_THRESHOLD_FAILED = 99;

export interface K6Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What k6EnvFor needs of a platform: a LocalPlatform, or what `npm run release` reads from its kubeconfig. */
export type K6Target = Pick<LocalPlatform, 'kubectl' | 'dataDir' | 'apiUrl' | 'kubeServer' | 'kubeCaFile' | 'adminTokenFile'>;

/** The environment a k6 script needs to reach this platform (files, not secrets in env). */
export async function k6EnvFor(p: K6Target): Promise<Record<string, string>> {
  const r = await p.kubectl(['apply', '-f', path.join(LOADTESTS, 'k8s', 'loadtest-rbac.yaml')]);
  if (r.code !== 0) throw new Error(`kubectl apply loadtest-rbac.yaml: ${r.stderr}`);
  const t = await p.kubectl(['create', 'token', 'herald-loadtest', '-n', LOADTEST_NAMESPACE, '--duration=4h']);
  if (t.code !== 0) throw new Error(`kubectl create token herald-loadtest: ${t.stderr}`);
  const dir = path.join(p.dataDir, 'loadtest');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tokenFile = path.join(dir, 'kube-token');
  await writeFile(tokenFile, t.stdout.trim() + '\n', { mode: 0o600 });
  return {
    HERALD_API_URL: p.apiUrl,
    HERALD_KUBE_API: p.kubeServer,
    HERALD_KUBE_TOKEN_FILE: tokenFile,
    HERALD_ADMIN_TOKEN_FILE: p.adminTokenFile,
    HERALD_NAMESPACE: LOADTEST_NAMESPACE,
    HERALD_TENANT: 'k6-synthetic',
    // Go's TLS roots: the local API server's CA, and nothing else (k6 talks to loopback only).
    SSL_CERT_FILE: p.kubeCaFile,
  };
}

/** `k6 run <script>`; stdout/stderr are collected and, with `echo`, passed through as they come. */
export function runK6(script: string, env: Record<string, string>, opts: { echo?: boolean; args?: string[] } = {}): Promise<K6Result> {
  return new Promise((resolve, reject) => {
    // No progress bar unless a person watches a terminal.
    const quiet = opts.echo && process.stdout.isTTY ? [] : ['--quiet'];
    const child = spawn(toolPath('k6'), ['run', '--no-usage-report', ...quiet, ...(opts.args ?? []), script], {
      cwd: LOADTESTS,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', K6_NO_USAGE_REPORT: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.echo) process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.echo) process.stderr.write(d);
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
