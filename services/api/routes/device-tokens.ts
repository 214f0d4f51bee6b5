import { Router } from '@koa/router';
import { z } from 'zod';
import { inTransaction, type PoolClient } from '../../../lib/db/postgres.js';
import { requireScope, tenantOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { SMALL_BODY_BYTES } from '../deps.js';
import { HttpError, badRequest, notFound, parseOr400, readJson } from '../http.js';
import { countrySchema, normalizePhone, tagsSchema } from '../validation.js';

/** $1 tenant, $2 external id; two rows mean the id is ambiguous. */
export const CONTACT_BY_EXTERNAL_ID = 'SELECT id FROM contacts WHERE tenant_id = $1 AND external_id = $2 LIMIT 2';

const token = z.string().trim().min(1, 'required').max(4096);

export const registerBody = z
  .strictObject({
    token,
    platform: z.enum(['android', 'ios', 'web']).optional(),
    /** Topics of interest, e.g. course codes (`cs101`); replace the stored set when given. */
    tags: tagsSchema.optional(),
    /** The contact this device belongs to, by one of: id, external id, phone. */
    contact_id: z.number().int().positive().optional(),
    contact_external_id: z.string().trim().min(1).max(200).optional(),
    contact_phone: z.string().optional(),
    default_country: countrySchema.optional(),
    /** The token this one refreshes: it is deactivated with reason 'refreshed'. */
    replaces: token.optional(),
  })
  .refine((b) => [b.contact_id, b.contact_external_id, b.contact_phone].filter((x) => x !== undefined).length <= 1, {
    message: 'give at most one of contact_id, contact_external_id, contact_phone',
    path: ['contact_id'],
  });

type RegisterBody = z.infer<typeof registerBody>;

async function resolveContact(c: PoolClient, tenantId: string, b: RegisterBody): Promise<number | null> {
  if (b.contact_id !== undefined) {
    const r = await c.query('SELECT id FROM contacts WHERE tenant_id = $1 AND id = $2', [tenantId, b.contact_id]);
    if (!r.rows[0]) throw new HttpError(404, 'contact_id', 'contact not found');
    return b.contact_id;
  }
  if (b.contact_external_id !== undefined) {
    const r = await c.query<{ id: number }>(CONTACT_BY_EXTERNAL_ID, [
      tenantId,
      b.contact_external_id,
    ]);
    if (r.rows.length === 0) throw new HttpError(404, 'contact_external_id', 'contact not found');
    if (r.rows.length > 1) throw new HttpError(409, 'contact_external_id', 'more than one contact has this external id');
    return r.rows[0]!.id;
  }
  if (b.contact_phone !== undefined) {
    const p = normalizePhone(b.contact_phone, b.default_country ?? 'US');
    if (!p.ok) throw badRequest('contact_phone', p.reason);
    const r = await c.query<{ id: number }>('SELECT id FROM contacts WHERE tenant_id = $1 AND phone = $2', [tenantId, p.e164]);
    if (!r.rows[0]) throw new HttpError(404, 'contact_phone', 'contact not found');
    return r.rows[0].id;
  }
  return null;
}

/**
 * Device tokens of the key's tenant. Registration is an upsert by (tenant, token):
 * registering again refreshes last_seen_at (devices silent for 30 days are marked
 * inactive elsewhere) and reactivates the token, since the app just proved it has it.
 * `replaces` names the token this one refreshes (FCM rotates tokens): the old one is
 * deactivated with reason 'refreshed', and its contact, tags and platform carry over
 * unless the request gives new ones.
 */
export function deviceTokenRoutes(deps: ApiDeps): Router {
  const { pool, clock } = deps;
  const router = new Router();

  router.post('/device-tokens', requireScope('devices:write'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const b = parseOr400(registerBody, await readJson(ctx, SMALL_BODY_BYTES));
    const now = clock.now();
    const result = await inTransaction(pool, async (c) => {
      let contactId = await resolveContact(c, tenantId, b);
      let tags = b.tags ?? null;
      let platform: string | null = b.platform ?? null;
      let replaced: number | null = null;
      if (b.replaces !== undefined && b.replaces !== b.token) {
        const old = await c.query<{ id: number; contact_id: number | null; tags: string[]; platform: string }>(
          `UPDATE device_tokens SET active = false, invalidated_at = $3, invalid_reason = 'refreshed'
            WHERE tenant_id = $1 AND token = $2 AND active
            RETURNING id, contact_id, tags, platform`,
          [tenantId, b.replaces, now],
        );
        const o = old.rows[0];
        if (o) {
          replaced = o.id;
          contactId ??= o.contact_id;
          tags ??= o.tags;
          platform ??= o.platform;
        }
      }
      const { rows } = await c.query<{ id: number; created: boolean }>(
        `INSERT INTO device_tokens (tenant_id, token, platform, tags, contact_id, active, last_seen_at, created_at)
         VALUES ($1, $2, coalesce($3, 'android'), coalesce($4::text[], '{}'), $5, true, $6, $6)
         ON CONFLICT (tenant_id, token) DO UPDATE SET
           platform = coalesce($3, device_tokens.platform),
           tags = coalesce($4::text[], device_tokens.tags),
           contact_id = coalesce($5, device_tokens.contact_id),
           active = true, invalidated_at = NULL, invalid_reason = NULL,
           last_seen_at = $6
         RETURNING id, platform, tags, contact_id, active, last_seen_at, created_at, (xmax = 0) AS created`,
        [tenantId, b.token, platform, tags, contactId, now],
      );
      return { row: rows[0]!, replaced };
    });
    const { created, ...row } = result.row;
    ctx.status = created ? 201 : 200;
    ctx.body = { ...row, created, replaced_token_id: result.replaced };
  });

  router.post('/device-tokens/unregister', requireScope('devices:write'), async (ctx) => {
    const b = parseOr400(unregisterBody, await readJson(ctx, SMALL_BODY_BYTES));
    const { rows } = await pool.query(
      `UPDATE device_tokens SET active = false,
              invalidated_at = CASE WHEN active THEN $3 ELSE invalidated_at END,
              invalid_reason = CASE WHEN active THEN 'unregistered' ELSE invalid_reason END
        WHERE tenant_id = $1 AND token = $2
        RETURNING id, active, invalidated_at, invalid_reason`,
      [tenantOf(ctx), b.token, clock.now()],
    );
    if (!rows[0]) throw notFound('device token');
    ctx.body = rows[0];
  });

  return router;
}

export const unregisterBody = z.strictObject({ token });
