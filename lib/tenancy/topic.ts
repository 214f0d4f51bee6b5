/**
 * FCM topics live in one Firebase project shared by every tenant, so a topic's name on
 * the wire is the tenant's id and a dot before the tenant's own name: grace-church's
 * `students` is `grace-church.students`, and no tenant can name another's topic (a tenant
 * id has no dot, so the first dot always ends it). A tenant's app subscribes its devices
 * to the wire name.
 */
export const FCM_TOPIC_MAX = 900;
/** Tenant ids are DNS labels (at most 63), plus the dot. */
export const TENANT_TOPIC_MAX = FCM_TOPIC_MAX - 64;

export function tenantTopic(tenantId: string, topic: string): string {
  return `${tenantId}.${topic}`;
}

/** The tenant's own name of a wire topic (what it asked for). */
export function ownTopic(tenantId: string, wireTopic: string): string {
  const prefix = `${tenantId}.`;
  return wireTopic.startsWith(prefix) ? wireTopic.slice(prefix.length) : wireTopic;
}
