/**
 * The operator's own CRD, RBAC and admission-policy files (operator/config/...), deployed as they are:
 * read, parsed, and created as typed Kubernetes resources. Never copied into platform/.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { loadAll } from 'js-yaml';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const OPERATOR_MANIFEST_FILES = [
  'operator/config/crd/broadcasts.herald.dev.yaml',
  'operator/config/rbac/service-account.yaml',
  'operator/config/rbac/cluster-role.yaml',
  'operator/config/rbac/cluster-role-binding.yaml',
  'operator/config/rbac/role.yaml',
  'operator/config/rbac/role-binding.yaml',
  // A namespace sends only as its own tenant; only platform admins bind namespaces.
  'operator/config/admission/broadcast-tenant.yaml',
  'operator/config/admission/namespace-labels.yaml',
] as const;

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface OperatorManifests {
  manifests: Manifest[];
  /** Namespace and name of the operator's ServiceAccount (from service-account.yaml). */
  namespace: string;
  serviceAccountName: string;
}

/** Parses YAML manifest files of the repo (each document needs apiVersion, kind, metadata.name). */
export function loadManifestFiles(files: readonly string[], root: string = REPO_ROOT): Manifest[] {
  const manifests: Manifest[] = [];
  for (const file of files) {
    const full = path.join(root, file);
    if (!existsSync(full)) throw new Error(`manifest ${file} is missing (expected at ${full})`);
    for (const doc of loadAll(readFileSync(full, 'utf8'))) {
      if (doc === null || doc === undefined) continue;
      const m = doc as Partial<Manifest>;
      if (typeof m.apiVersion !== 'string' || typeof m.kind !== 'string' || typeof m.metadata?.name !== 'string') {
        throw new Error(`${file}: every document needs apiVersion, kind and metadata.name`);
      }
      manifests.push(m as Manifest);
    }
  }
  return manifests;
}

export function loadOperatorManifests(root: string = REPO_ROOT): OperatorManifests {
  const manifests = loadManifestFiles(OPERATOR_MANIFEST_FILES, root);
  const sa = manifests.find((m) => m.kind === 'ServiceAccount');
  if (!sa?.metadata.namespace) throw new Error('operator/config/rbac/service-account.yaml: needs a ServiceAccount with metadata.namespace');
  return { manifests, namespace: sa.metadata.namespace, serviceAccountName: sa.metadata.name };
}

type Ctor = new (name: string, args: any, opts?: pulumi.CustomResourceOptions) => pulumi.CustomResource;
const TYPED: Record<string, Ctor> = {
  'apiextensions.k8s.io/v1/CustomResourceDefinition': k8s.apiextensions.v1.CustomResourceDefinition,
  'v1/Namespace': k8s.core.v1.Namespace,
  'v1/ServiceAccount': k8s.core.v1.ServiceAccount,
  'rbac.authorization.k8s.io/v1/ClusterRole': k8s.rbac.v1.ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': k8s.rbac.v1.ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': k8s.rbac.v1.Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': k8s.rbac.v1.RoleBinding,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': k8s.admissionregistration.v1.ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding,
};

/** Creates each manifest as its typed resource; logical name = prefix + kind + name. */
export function createManifests(prefix: string, manifests: Manifest[], opts: pulumi.CustomResourceOptions): pulumi.CustomResource[] {
  return manifests.map((m) => {
    const ctor = TYPED[`${m.apiVersion}/${m.kind}`];
    if (!ctor) throw new Error(`manifest ${m.kind} ${m.metadata.name}: unsupported kind ${m.apiVersion}/${m.kind}`);
    return new ctor(`${prefix}-${m.kind.toLowerCase()}-${m.metadata.name}`, m, opts);
  });
}
