import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import { HttpError } from './http.js';

/** What the tenant middleware leaves on ctx.state for the routes. */
export interface TenantState {
  tenantId: string;
  apiKeyId: number;
  scopes: readonly ApiScope[];
}

/**
 * What a tenant key may do, resource by resource. A key in a mobile app registers device
 * tokens (`devices:write`) and can read nothing; a back-office key gets what it needs.
 * The database holds the same list (api_keys.scopes CHECK, migration 013).
 */
export const API_SCOPES = ['contacts:read', 'contacts:write', 'devices:write', 'broadcasts:read', 'opt-outs:read', 'opt-outs:write'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Compare two secrets in constant time: both sides are hashed first so that
 * neither their lengths nor their first differing byte show in the timing.
 */
export function secretsEqual(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

function bearer(ctx: Context): string | null {
  const header = ctx.get('authorization');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

const unauthorized = (reason: string) => new HttpError(401, 'authorization', reason);

/**
 * The admin credential (HERALD_ADMIN_TOKEN). Without one configured, the admin
 * routes refuse everyone rather than accept anyone.
 */
export function requireAdmin(adminToken: string | undefined) {
  return async (ctx: Context, next: Next) => {
    if (!adminToken) throw new HttpError(503, 'authorization', 'the admin credential is not configured on this server');
    const token = bearer(ctx);
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw unauthorized('missing Bearer credential');
    }
    if (!secretsEqual(token, adminToken)) throw unauthorized('invalid admin credential');
    await next();
  };
}

// ---------------------------------------------------------------------------------------
// API keys: `hk_<prefix>_<secret>`. The prefix (public, 12 hex) finds the row; the row
// holds only the SHA-256 of the whole key, so the database never holds the secret and a
// leaked dump authenticates nobody. The key is shown once, in the response that made it.

const KEY_RE = /^hk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface NewApiKey {
  prefix: string;
  key: string;
  hash: string;
}

export function generateApiKey(): NewApiKey {
  const prefix = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const key = `hk_${prefix}_${secret}`;
  return { prefix, key, hash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return sha256(key).toString('hex');
}

/** $1 the key's prefix. */
export const API_KEY_BY_PREFIX = 'SELECT id, tenant_id, key_hash, revoked_at, scopes FROM api_keys WHERE prefix = $1';

/**
 * A tenant API key. A key whose revoked_at is in the future is still valid: that
 * is a rotation's grace period, during which old and new keys both work.
 */
export function requireTenantKey(pool: Pool, clock: Clock) {
  return async (ctx: Context, next: Next) => {
    const token = bearer(ctx);
    if (!token) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw unauthorized('missing Bearer API key');
    }
    const m = KEY_RE.exec(token);
    if (!m) throw unauthorized('invalid API key');
    const { rows } = await pool.query<{ id: number; tenant_id: string; key_hash: string; revoked_at: Date | null; scopes: ApiScope[] }>(
      API_KEY_BY_PREFIX,
      [m[1]],
    );
    const row = rows[0];
    // Hash and compare even for an unknown prefix, so timing says nothing about which prefixes exist.
    const expected = Buffer.from(row?.key_hash ?? '0'.repeat(64), 'hex');
    const ok = timingSafeEqual(sha256(token), expected) && row !== undefined;
    if (!ok) throw unauthorized('invalid API key');
    if (row.revoked_at && row.revoked_at.getTime() <= clock.now().getTime()) throw unauthorized('API key revoked');
    ctx.state.tenant = { tenantId: row.tenant_id, apiKeyId: row.id, scopes: row.scopes } satisfies TenantState;
    await next();
  };
}

/** A tenant route's scope: a key without it is refused with 403, naming the scope. */
export function requireScope(scope: ApiScope) {
  return async (ctx: Context, next: Next) => {
    const t = ctx.state.tenant as TenantState | undefined;
    if (!t) throw new Error('tenant route mounted without requireTenantKey');
    if (!t.scopes.includes(scope)) throw new HttpError(403, 'authorization', `this API key lacks the scope ${scope}`);
    await next();
  };
}

export function tenantOf(ctx: Context): string {
  const t = ctx.state.tenant as TenantState | undefined;
  if (!t) throw new Error('tenant route mounted without requireTenantKey');
  return t.tenantId;
}
