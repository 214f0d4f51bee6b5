import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { runKubectl } from './kubectl.ts';


const kubectl = (kubeconfig: string, ...args: string[]) => runKubectl(kubeconfig, args);

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

interface AuditEvent {
  verb?: string;
  user?: { username?: string };
  objectRef?: { resource?: string; namespace?: string };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
}

async function auditEvents(file: string): Promise<AuditEvent[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditEvent);
}

describe('local control plane (etcd + kube-apiserver)', () => {
  let dir = '';
  let cp: ControlPlane | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'herald-cp-test-'));
    cp = await startControlPlane({ dir });
  }, 120_000);

  afterAll(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('serves /readyz to the admin client certificate', async () => {
    const r = await kubectl(cp!.adminKubeconfig, 'get', '--raw', '/readyz');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
    const v = await kubectl(cp!.adminKubeconfig, 'version', '-o', 'json');
    expect(v.code).toBe(0);
    const server = (JSON.parse(v.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion;
    expect(server?.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
  });

  it('enforces RBAC on a ServiceAccount token, and audits the denial', async () => {
    const ns = 'rbac-check';
    const sa = 'no-perms';
    const kc = await cp!.kubeconfigForServiceAccount(ns, sa);

    // The token authenticates (so a later 403 is authorization, not authentication).
    const who = await kubectl(kc, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}');
    expect(who.code).toBe(0);
    expect(who.stdout).toBe(`system:serviceaccount:${ns}:${sa}`);

    // Admin may list secrets; the SA may not.
    const adminList = await kubectl(cp!.adminKubeconfig, 'get', 'secrets', '-n', ns);
    expect(adminList.code).toBe(0);
    const denied = await kubectl(kc, 'get', 'secrets', '-n', ns);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Forbidden/);
    expect(denied.stderr).toContain(`User "system:serviceaccount:${ns}:${sa}" cannot list resource "secrets"`);

    // Granting a Role makes the same request succeed: the denial came from RBAC.
    const role = await kubectl(cp!.adminKubeconfig, 'create', 'role', 'secret-reader', '-n', ns, '--verb=list', '--resource=secrets');
    expect(role.code).toBe(0);
    const binding = await kubectl(cp!.adminKubeconfig, 'create', 'rolebinding', 'secret-reader', '-n', ns,
      '--role=secret-reader', `--serviceaccount=${ns}:${sa}`);
    expect(binding.code).toBe(0);
    const allowed = await kubectl(kc, 'get', 'secrets', '-n', ns);
    expect(allowed.stderr).toMatch(/No resources found|^$/);
    expect(allowed.code).toBe(0);

    // The audit log recorded the forbidden list, attributed to the ServiceAccount.
    const events = await auditEvents(cp!.auditLogPath);
    const forbidden = events.filter(
      (e) =>
        e.user?.username === `system:serviceaccount:${ns}:${sa}` &&
        e.verb === 'list' &&
        e.objectRef?.resource === 'secrets' &&
        e.objectRef?.namespace === ns &&
        e.responseStatus?.code === 403,
    );
    expect(forbidden.length).toBeGreaterThanOrEqual(1);
    expect(forbidden[0]?.annotations?.['authorization.k8s.io/decision']).toBe('forbid');
  }, 60_000);

  it('stops both processes', async () => {
    const ports = JSON.parse(await readFile(path.join(dir, 'ports.json'), 'utf8')) as { apiserver: number; etcd: number };
    expect(ports.apiserver).toBe(Number(new URL(cp!.server).port));
    expect(await canConnect(ports.apiserver)).toBe(true);
    expect(await canConnect(ports.etcd)).toBe(true);
    await cp!.stop();
    expect(await canConnect(ports.apiserver)).toBe(false);
    expect(await canConnect(ports.etcd)).toBe(false);
    expect(existsSync(path.join(dir, 'etcd', 'member'))).toBe(true);
  }, 60_000);
});
