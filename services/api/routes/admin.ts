import { Router } from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { inTransaction } from '../../../lib/db/postgres.js';
import { tenantNamespaceManifest } from '../../../lib/tenancy/namespace.js';
import { API_SCOPES, generateApiKey, requireAdmin } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { SMALL_BODY_BYTES } from '../deps.js';
import { HttpError, notFound, parseOr400, readJson } from '../http.js';
import { decodeCursor, page, pageLimit } from '../pagination.js';
import { hhmmSchema, normalizePhone, rateSchema, timeZoneSchema } from '../validation.js';

/**
 * Carrier throughput of a sending number when the request does not say. Documented
 * defaults, all overridable with `per_second`:
 * - toll_free 20/s: Telnyx's toll-free default.
 * - 10dlc 1/s: 10DLC throughput is set per campaign by the carriers (class/brand score);
 *   give the campaign's approved rate as per_second. 1/s is the safe floor.
 * - long_code 1/s: a US long code outside 10DLC. (To non-US destinations carriers allow
 *   0.1/s; a number used abroad should be registered with per_second 0.1.)
 * - short_code 100/s: the usual provisioned short-code rate.
 */
export const DEFAULT_PER_SECOND: Record<SendingNumberKind, number> = {
  toll_free: 20,
  '10dlc': 1,
  long_code: 1,
  short_code: 100,
};

const KINDS = ['toll_free', '10dlc', 'long_code', 'short_code'] as const;
type SendingNumberKind = (typeof KINDS)[number];

export const slug = z
  .string()
  .max(63, 'at most 63 characters')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'lowercase letters, digits and inner dashes');

const tenantFields = {
  name: z.string().trim().min(1, 'required').max(200),
  default_time_zone: timeZoneSchema,
  quiet_hours_start: hhmmSchema.nullable(),
  quiet_hours_end: hhmmSchema.nullable(),
  sms_per_second: rateSchema,
  push_per_second: rateSchema,
  messaging_profile_id: z.string().trim().min(1).max(200).nullable(),
  help_text: z.string().trim().min(1).max(320).nullable(),
  /** A row of tenant_plans (free, standard, pro): API requests a minute and fair-share weight. */
  plan: slug,
  /** The tenant holds consent for the numbers it names inline (audience.contacts); else those not contacts with consent are skipped. */
  inline_numbers_consented: z.boolean(),
};

const quietHoursPaired = (t: { quiet_hours_start?: string | null; quiet_hours_end?: string | null }) =>
  (t.quiet_hours_start === undefined) === (t.quiet_hours_end === undefined) &&
  (t.quiet_hours_start === null) === (t.quiet_hours_end === null);
const quietHoursIssue = { message: 'quiet_hours_start and quiet_hours_end are given together', path: ['quiet_hours_end'] };

export const tenantCreate = z
  .strictObject({
    id: slug,
    name: tenantFields.name,
    default_time_zone: tenantFields.default_time_zone.default('UTC'),
    quiet_hours_start: tenantFields.quiet_hours_start.optional(),
    quiet_hours_end: tenantFields.quiet_hours_end.optional(),
    sms_per_second: tenantFields.sms_per_second.default(10),
    push_per_second: tenantFields.push_per_second.default(500),
    messaging_profile_id: tenantFields.messaging_profile_id.optional(),
    help_text: tenantFields.help_text.optional(),
    plan: tenantFields.plan.default('free'),
    inline_numbers_consented: tenantFields.inline_numbers_consented.default(false),
  })
  .refine(quietHoursPaired, quietHoursIssue);

export const tenantPatch = z
  .strictObject({
    name: tenantFields.name.optional(),
    default_time_zone: tenantFields.default_time_zone.optional(),
    quiet_hours_start: tenantFields.quiet_hours_start.optional(),
    quiet_hours_end: tenantFields.quiet_hours_end.optional(),
    sms_per_second: tenantFields.sms_per_second.optional(),
    push_per_second: tenantFields.push_per_second.optional(),
    messaging_profile_id: tenantFields.messaging_profile_id.optional(),
    help_text: tenantFields.help_text.optional(),
    plan: tenantFields.plan.optional(),
    inline_numbers_consented: tenantFields.inline_numbers_consented.optional(),
  })
  .refine(quietHoursPaired, quietHoursIssue);

export const namespaceQuery = z.strictObject({ urgent: z.enum(['true', 'false']).default('false') });

export const sendingNumberCreate = z
  .strictObject({
    phone_number: z.string().trim().min(1, 'required'),
    kind: z.enum(KINDS),
    campaign_id: z.string().trim().min(1).max(100).optional(),
    per_second: rateSchema.optional(),
  })
  .transform((v, ctx) => {
    // A short code is 5–6 digits, not E.164; every other kind is a full international number.
    if (v.kind === 'short_code') {
      if (!/^\d{5,6}$/.test(v.phone_number)) {
        ctx.addIssue({ code: 'custom', path: ['phone_number'], message: 'a short code is 5 or 6 digits' });
        return z.NEVER;
      }
      return { ...v, per_second: v.per_second ?? DEFAULT_PER_SECOND.short_code };
    }
    if (!v.phone_number.startsWith('+')) {
      ctx.addIssue({ code: 'custom', path: ['phone_number'], message: 'expected E.164 (+ and country code)' });
      return z.NEVER;
    }
    const p = normalizePhone(v.phone_number, 'US');
    if (!p.ok) {
      ctx.addIssue({ code: 'custom', path: ['phone_number'], message: p.reason });
      return z.NEVER;
    }
    return { ...v, phone_number: p.e164, per_second: v.per_second ?? DEFAULT_PER_SECOND[v.kind] };
  });

export const rotateBody = z
  .strictObject({
    /** How long the old key keeps working, so clients can roll over; default 0 (revoked at once). */
    grace_seconds: z.number().int().min(0).max(30 * 24 * 3600).default(0),
  })
  .default({ grace_seconds: 0 });

export const createKeyBody = z
  .strictObject({
    /** What the key may do; default every scope. A key for a mobile app gets ["devices:write"]. */
    scopes: z
      .array(z.enum(API_SCOPES))
      .min(1)
      .refine((a) => new Set(a).size === a.length, 'each scope once')
      .default([...API_SCOPES]),
  })
  .default({ scopes: [...API_SCOPES] });

interface TenantRow {
  id: string;
  name: string;
  default_time_zone: string;
  quiet_hours_start: string | null;
  quiet_hours_end: string | null;
  sms_per_second: number;
  push_per_second: number;
  messaging_profile_id: string | null;
  help_text: string | null;
  plan: string;
  inline_numbers_consented: boolean;
  created_at: Date;
  updated_at: Date;
}

const TENANT_COLUMNS = `id, name, default_time_zone, to_char(quiet_hours_start, 'HH24:MI') AS quiet_hours_start,
  to_char(quiet_hours_end, 'HH24:MI') AS quiet_hours_end, sms_per_second, push_per_second, messaging_profile_id,
  help_text, plan, inline_numbers_consented, created_at, updated_at`;

const idParam = (ctx: Context, name: string): number => {
  const raw = (ctx as Context & { params: Record<string, string> }).params[name] ?? '';
  if (!/^\d{1,15}$/.test(raw)) throw new HttpError(404, name, `${name} not found`);
  return Number(raw);
};

const tenantParam = (ctx: Context): string => {
  const raw = (ctx as Context & { params: Record<string, string> }).params.tenantId ?? '';
  return raw;
};

async function loadTenant(deps: ApiDeps, id: string): Promise<TenantRow> {
  const { rows } = await deps.pool.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1`, [id]);
  if (!rows[0]) throw notFound('tenant');
  return rows[0];
}

/** A plan is a row of tenant_plans: an unknown one is the caller's mistake, named with the choices. */
async function checkPlan(deps: ApiDeps, plan: string | undefined): Promise<void> {
  if (plan === undefined) return;
  const { rows } = await deps.pool.query<{ plan: string }>('SELECT plan FROM tenant_plans ORDER BY api_requests_per_minute');
  if (!rows.some((r) => r.plan === plan)) throw new HttpError(400, 'plan', `unknown plan ${plan}; plans: ${rows.map((r) => r.plan).join(', ')}`);
}

const KEY_COLUMNS = 'id, tenant_id, prefix, scopes, created_at, revoked_at';

function keyView(r: { id: number; tenant_id: string; prefix: string; scopes: string[]; created_at: Date; revoked_at: Date | null }) {
  return { id: r.id, tenant_id: r.tenant_id, prefix: r.prefix, scopes: r.scopes, created_at: r.created_at, revoked_at: r.revoked_at };
}

/** Tenants, their sending numbers and API keys: the admin credential only. */
export function adminRoutes(deps: ApiDeps): Router {
  const { pool, clock } = deps;
  const router = new Router({ prefix: '/admin' });
  router.use(requireAdmin(deps.adminToken));

  router.post('/tenants', async (ctx) => {
    const t = parseOr400(tenantCreate, await readJson(ctx, SMALL_BODY_BYTES));
    await checkPlan(deps, t.plan);
    const now = clock.now();
    const { rows } = await pool.query<TenantRow>(
      `INSERT INTO tenants (id, name, default_time_zone, quiet_hours_start, quiet_hours_end, sms_per_second,
                            push_per_second, messaging_profile_id, help_text, plan, inline_numbers_consented, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
       ON CONFLICT (id) DO NOTHING
       RETURNING ${TENANT_COLUMNS}`,
      [t.id, t.name, t.default_time_zone, t.quiet_hours_start ?? null, t.quiet_hours_end ?? null, t.sms_per_second,
        t.push_per_second, t.messaging_profile_id ?? null, t.help_text ?? null, t.plan, t.inline_numbers_consented, now],
    );
    if (!rows[0]) throw new HttpError(409, 'id', `tenant ${t.id} already exists`);
    ctx.status = 201;
    ctx.body = rows[0];
  });

  router.get('/tenants', async (ctx) => {
    const limit = pageLimit(ctx);
    const after = decodeCursor(ctx, z.tuple([z.string()]));
    const { rows } = await pool.query<TenantRow>(
      `SELECT ${TENANT_COLUMNS} FROM tenants WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
      [after?.[0] ?? null, limit + 1],
    );
    ctx.body = page(rows, limit, (r) => [r.id]);
  });

  router.get('/tenants/:tenantId', async (ctx) => {
    ctx.body = await loadTenant(deps, tenantParam(ctx));
  });

  router.patch('/tenants/:tenantId', async (ctx) => {
    const id = tenantParam(ctx);
    // No body is an empty patch; a JSON null is not an object and is refused.
    const body = await readJson(ctx, SMALL_BODY_BYTES);
    const p = parseOr400(tenantPatch, body === undefined ? {} : body);
    await checkPlan(deps, p.plan);
    const sets: string[] = [];
    const values: unknown[] = [id];
    // A key zod kept with an undefined value is not a change (not a NULL): typed so the check stays.
    for (const [col, value] of Object.entries<unknown>(p)) {
      if (value === undefined) continue;
      values.push(value);
      sets.push(`${col} = $${values.length}`);
    }
    values.push(clock.now());
    sets.push(`updated_at = $${values.length}`);
    const { rows } = await pool.query<TenantRow>(
      `UPDATE tenants SET ${sets.join(', ')} WHERE id = $1 RETURNING ${TENANT_COLUMNS}`,
      values,
    );
    if (!rows[0]) throw notFound('tenant');
    ctx.body = rows[0];
  });

  // The namespace a platform admin applies to give the tenant its Broadcasts: bound to it by
  // label, with its Broadcast quota. Printed, not applied: the api has no namespace RBAC.
  router.get('/tenants/:tenantId/namespace', async (ctx) => {
    const tenant = await loadTenant(deps, tenantParam(ctx));
    const q = parseOr400(namespaceQuery, ctx.query);
    ctx.type = 'application/yaml';
    ctx.body = tenantNamespaceManifest(tenant.id, { urgent: q.urgent === 'true' });
  });

  // --- sending numbers -------------------------------------------------------------
  router.post('/tenants/:tenantId/sending-numbers', async (ctx) => {
    const tenant = await loadTenant(deps, tenantParam(ctx));
    const n = parseOr400(sendingNumberCreate, await readJson(ctx, SMALL_BODY_BYTES));
    const { rows } = await pool.query(
      `INSERT INTO sending_numbers (tenant_id, phone_number, kind, campaign_id, per_second, created_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (phone_number) DO NOTHING
       RETURNING id, tenant_id, phone_number, kind, campaign_id, per_second, created_at`,
      [tenant.id, n.phone_number, n.kind, n.campaign_id ?? null, n.per_second, clock.now()],
    );
    if (!rows[0]) throw new HttpError(409, 'phone_number', 'this number is already registered');
    ctx.status = 201;
    ctx.body = rows[0];
  });

  router.get('/tenants/:tenantId/sending-numbers', async (ctx) => {
    const tenant = await loadTenant(deps, tenantParam(ctx));
    const { rows } = await pool.query(
      `SELECT id, tenant_id, phone_number, kind, campaign_id, per_second, created_at
         FROM sending_numbers WHERE tenant_id = $1 ORDER BY id`,
      [tenant.id],
    );
    ctx.body = { items: rows };
  });

  router.delete('/tenants/:tenantId/sending-numbers/:numberId', async (ctx) => {
    const r = await pool.query('DELETE FROM sending_numbers WHERE tenant_id = $1 AND id = $2', [
      tenantParam(ctx),
      idParam(ctx, 'numberId'),
    ]);
    if (r.rowCount === 0) throw notFound('sending number');
    ctx.status = 204;
  });

  // --- API keys ----------------------------------------------------------------------
  router.post('/tenants/:tenantId/api-keys', async (ctx) => {
    const tenant = await loadTenant(deps, tenantParam(ctx));
    const { scopes } = parseOr400(createKeyBody, await readJson(ctx, SMALL_BODY_BYTES));
    const k = generateApiKey();
    const { rows } = await pool.query(
      `INSERT INTO api_keys (tenant_id, prefix, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)
       RETURNING ${KEY_COLUMNS}`,
      [tenant.id, k.prefix, k.hash, scopes, clock.now()],
    );
    ctx.status = 201;
    // The only time the key is ever shown.
    ctx.body = { ...keyView(rows[0]), key: k.key };
  });

  router.get('/tenants/:tenantId/api-keys', async (ctx) => {
    const tenant = await loadTenant(deps, tenantParam(ctx));
    const { rows } = await pool.query(
      `SELECT ${KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY id`,
      [tenant.id],
    );
    ctx.body = { items: rows.map(keyView) };
  });

  router.post('/tenants/:tenantId/api-keys/:keyId/rotate', async (ctx) => {
    const tenantId = tenantParam(ctx);
    const keyId = idParam(ctx, 'keyId');
    const { grace_seconds } = parseOr400(rotateBody, await readJson(ctx, SMALL_BODY_BYTES));
    const now = clock.now();
    const revokeAt = new Date(now.getTime() + grace_seconds * 1000);
    const k = generateApiKey();
    const result = await inTransaction(pool, async (c) => {
      const old = await c.query<{ id: number; revoked_at: Date | null; scopes: string[] }>(
        'SELECT id, revoked_at, scopes FROM api_keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
        [tenantId, keyId],
      );
      const row = old.rows[0];
      if (!row) throw notFound('API key');
      if (row.revoked_at && row.revoked_at.getTime() <= now.getTime()) throw new HttpError(409, 'keyId', 'this API key is already revoked');
      // A key already in a grace period keeps the earlier of the two deadlines.
      const oldRevokedAt = row.revoked_at && row.revoked_at < revokeAt ? row.revoked_at : revokeAt;
      await c.query('UPDATE api_keys SET revoked_at = $2 WHERE id = $1', [keyId, oldRevokedAt]);
      // The new key may do what the old one could, no more.
      const ins = await c.query(
        `INSERT INTO api_keys (tenant_id, prefix, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING ${KEY_COLUMNS}`,
        [tenantId, k.prefix, k.hash, row.scopes, now],
      );
      return { created: ins.rows[0], oldRevokedAt };
    });
    ctx.status = 201;
    ctx.body = { ...keyView(result.created), key: k.key, replaces: { id: keyId, revoked_at: result.oldRevokedAt } };
  });

  router.post('/tenants/:tenantId/api-keys/:keyId/revoke', async (ctx) => {
    const now = clock.now();
    const { rows } = await pool.query(
      `UPDATE api_keys SET revoked_at = CASE WHEN revoked_at IS NOT NULL AND revoked_at <= $3 THEN revoked_at ELSE $3 END
        WHERE tenant_id = $1 AND id = $2
        RETURNING ${KEY_COLUMNS}`,
      [tenantParam(ctx), idParam(ctx, 'keyId'), now],
    );
    if (!rows[0]) throw notFound('API key');
    ctx.body = keyView(rows[0]);
  });

  return router;
}
