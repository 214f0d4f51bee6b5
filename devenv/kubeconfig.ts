import { writeFile } from 'node:fs/promises';
import * as yaml from 'js-yaml';

export interface KubeconfigUser {
  /** The user's name (e.g. system:serviceaccount:herald-system:herald-operator). */
  name: string;
  /** The `user:` entry: client-certificate-data/client-key-data, token, or auth-provider. */
  credentials: Record<string, unknown>;
}

/** A kubeconfig with one cluster (herald-local), one user and one current context, as YAML. */
export function kubeconfigYaml(server: string, ca: { data: string } | { file: string }, user: KubeconfigUser): string {
  const cluster = 'data' in ca ? { server, 'certificate-authority-data': ca.data } : { server, 'certificate-authority': ca.file };
  return yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'herald-local', cluster }],
    users: [{ name: user.name, user: user.credentials }],
    contexts: [{ name: 'herald-local', context: { cluster: 'herald-local', user: user.name } }],
    'current-context': 'herald-local',
  });
}

/** Write a kubeconfig readable by this user only (it holds credentials). */
export async function writeKubeconfig(file: string, server: string, ca: { data: string } | { file: string }, user: KubeconfigUser): Promise<string> {
  await writeFile(file, kubeconfigYaml(server, ca, user), { mode: 0o600 });
  return file;
}
