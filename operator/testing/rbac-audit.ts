import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { REPO } from '../../devenv/processes.js';

/** One request as the API server's audit log records it. */
export interface AuditEvent {
  stage?: string;
  verb: string;
  user?: { username: string };
  objectRef?: { apiGroup?: string; resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
}

export interface Access {
  apiGroup: string;
  /** resource or resource/subresource */
  resource: string;
  verb: string;
  namespace?: string;
  name?: string;
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Where the audit log ends now: pass it to usedBy to see only the requests made after. */
export const auditLogMark = (auditLogPath: string): number => statSync(auditLogPath).size;

/** Every (verb, resource, subresource) a user's requests used, as the audit log saw them (from byte `from` on). */
export function usedBy(auditLogPath: string, username: string, from = 0): { used: Access[]; forbidden: Access[] } {
  const used: Access[] = [];
  const forbidden: Access[] = [];
  for (const line of readFileSync(auditLogPath).subarray(from).toString('utf8').split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as AuditEvent;
    if (e.user?.username !== username || !e.objectRef?.resource) continue;
    const a: Access = {
      apiGroup: e.objectRef.apiGroup ?? '',
      resource: e.objectRef.subresource ? `${e.objectRef.resource}/${e.objectRef.subresource}` : e.objectRef.resource,
      verb: e.verb,
      namespace: e.objectRef.namespace,
      name: e.objectRef.name,
    };
    (e.responseStatus?.code === 403 ? forbidden : used).push(a);
  }
  return { used, forbidden };
}

/**
 * The rules of operator/config/rbac: the ClusterRole everywhere, each Role in its
 * namespace. The Broadcast side is cluster-role.yaml and role.yaml; the Release
 * controller's is release-role.yaml (its tests audit it).
 */
export function grantedRules(files: { cluster?: string[]; roles?: string[] } = {}): { rule: Rule; namespace?: string }[] {
  const read = (f: string) => load(readFileSync(path.join(REPO, 'operator/config/rbac', f), 'utf8')) as { metadata: { namespace?: string }; rules: Rule[] };
  return [
    ...(files.cluster ?? ['cluster-role.yaml']).flatMap((f) => read(f).rules.map((rule) => ({ rule }))),
    ...(files.roles ?? ['role.yaml']).flatMap((f) => {
      const role = read(f);
      return role.rules.map((rule) => ({ rule, namespace: role.metadata.namespace }));
    }),
  ];
}

export const grants = (g: { rule: Rule; namespace?: string }, a: Access): boolean =>
  g.rule.apiGroups.includes(a.apiGroup) &&
  g.rule.resources.includes(a.resource) &&
  g.rule.verbs.includes(a.verb) &&
  (g.namespace === undefined || g.namespace === a.namespace) &&
  (!g.rule.resourceNames?.length || (a.name !== undefined && g.rule.resourceNames.includes(a.name)));

/**
 * Compare use with grants: `ungranted` lists accesses no rule allows (they would
 * be forbidden), `unused` lists (rule, verb, resource) grants no request needed.
 */
export function compareRbac(used: Access[], files?: Parameters<typeof grantedRules>[0]): { ungranted: string[]; unused: string[] } {
  const rules = grantedRules(files);
  const fmt = (a: Access) => `${a.verb} ${a.apiGroup || 'core'}/${a.resource}${a.namespace ? ` in ${a.namespace}` : ''}${a.name ? ` (${a.name})` : ''}`;
  const ungranted = [...new Set(used.filter((a) => !rules.some((g) => grants(g, a))).map(fmt))];
  const unused: string[] = [];
  for (const g of rules) {
    for (const apiGroup of g.rule.apiGroups)
      for (const resource of g.rule.resources)
        for (const verb of g.rule.verbs) {
          const narrowed = { rule: { ...g.rule, apiGroups: [apiGroup], resources: [resource], verbs: [verb] }, namespace: g.namespace };
          if (!used.some((a) => grants(narrowed, a))) unused.push(`${verb} ${apiGroup || 'core'}/${resource}${g.rule.resourceNames ? ` ${g.rule.resourceNames.join(',')}` : ''}`);
        }
  }
  return { ungranted, unused };
}
