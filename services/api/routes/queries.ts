import { Router } from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { maskNumbersIn, maskPhone } from '../../../lib/logger.js';
import { requireScope, tenantOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { SMALL_BODY_BYTES } from '../deps.js';
import { badRequest, notFound, parseOr400, queryParam, readJson } from '../http.js';
import { decodeCursor, page, pageLimit } from '../pagination.js';
import { countrySchema, normalizePhone } from '../validation.js';
import { broadcastExists, broadcastsPage, countsByBroadcast, deliveriesPage, DELIVERY_STATUSES, tenantBroadcast, type BroadcastRow } from '../../../core/delivery/tenant-reads.js';

export { DELIVERY_STATUSES } from '../../../core/delivery/tenant-reads.js';

export const deliveriesQuery = z.object({ status: z.enum(DELIVERY_STATUSES).optional() });
export const optOutBody = z.strictObject({ phone: z.string(), default_country: countrySchema.optional() });

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function broadcastIdParam(ctx: Context): string {
  const raw = (ctx as Context & { params: Record<string, string> }).params.id ?? '';
  if (!UUID_RE.test(raw)) throw notFound('broadcast');
  return raw.toLowerCase();
}

/** What a delivery's recipient looks like in a response: never a whole number or token. */
export function maskRecipient(channel: string, recipientKey: string, address: string): string {
  if (recipientKey.startsWith('t:')) return address; // an FCM topic names a group, not a person
  if (channel === 'sms') return maskPhone(address);
  return address.length <= 8 ? '***' : `${address.slice(0, 6)}…${address.slice(-2)}`;
}

/** Provider error texts sometimes quote the number; mask anything that looks like one. */
const maskNumbersInError = (text: string | null): string | null => (text ? maskNumbersIn(text) : text);

/** A page of a tenant's opt-outs, newest first: $1 tenant, $2 $3 cursor (opted_out_at, phone), $4 limit. */
export const OPT_OUTS_PAGE = `
  SELECT phone, opted_out_at, source, keyword, opted_out_at::text AS _ts FROM opt_outs
   WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (opted_out_at, phone) < ($2::timestamptz, $3::text))
   ORDER BY opted_out_at DESC, phone DESC LIMIT $4`;

/**
 * Read-only views of the key's tenant: its broadcasts with delivery counts, the
 * deliveries of one broadcast (recipients masked), and its opt-out list. Every
 * query names the tenant; a broadcast of another tenant is simply not found.
 */
export function queryRoutes(deps: ApiDeps): Router {
  const { pool, clock } = deps;
  const router = new Router();

  async function withCounts(tenantId: string, rows: BroadcastRow[]) {
    const counts = await countsByBroadcast(pool, tenantId, rows.map((b) => b.id));
    return rows.map(({ _ts, ...b }) => {
      const byStatus = counts.get(b.id) ?? {};
      const total = Object.values(byStatus).reduce((a, n) => a + n, 0);
      return { ...b, counts: { total, ...byStatus } };
    });
  }

  // Newest first; keyset on (created_at, id). The cursor keeps created_at as PostgreSQL
  // text, since a JS Date would drop its microseconds and repeat or skip rows.
  router.get('/broadcasts', requireScope('broadcasts:read'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const n = pageLimit(ctx);
    const after = decodeCursor(ctx, z.tuple([z.string().max(64), z.string().regex(UUID_RE)]));
    const rows = await broadcastsPage(pool, tenantId, after, n + 1).catch(rethrowBadCursor);
    const p = page(rows, n, (r) => [r._ts, r.id]);
    ctx.body = { items: await withCounts(tenantId, p.items), next_cursor: p.next_cursor };
  });

  router.get('/broadcasts/:id', requireScope('broadcasts:read'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const b = await tenantBroadcast(pool, tenantId, broadcastIdParam(ctx));
    if (!b) throw notFound('broadcast');
    ctx.body = (await withCounts(tenantId, [b]))[0];
  });

  // Ordered by (status, id) so that one index (broadcast_id, status, id) serves both the
  // filtered and the unfiltered listing.
  router.get('/broadcasts/:id/deliveries', requireScope('broadcasts:read'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const id = broadcastIdParam(ctx);
    const status = parseOr400(deliveriesQuery.shape.status, queryParam(ctx, 'status'), 'status');
    const n = pageLimit(ctx);
    const after = decodeCursor(ctx, z.tuple([z.enum(DELIVERY_STATUSES), z.number().int()]));
    if (!(await broadcastExists(pool, tenantId, id))) throw notFound('broadcast');
    const rows = await deliveriesPage(pool, { broadcastId: id, tenantId, status: status ?? null, after, limit: n + 1 });
    const p = page(rows, n, (r) => [r.status, r.id]);
    ctx.body = {
      items: p.items.map(({ recipient_key, address, last_error, ...d }) => ({
        ...d,
        recipient: maskRecipient(d.channel, recipient_key, address),
        last_error: maskNumbersInError(last_error),
      })),
      next_cursor: p.next_cursor,
    };
  });

  // The tenant's own opt-out list, newest first, with full numbers: the tenant needs
  // them to update its own records.
  router.get('/opt-outs', requireScope('opt-outs:read'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const n = pageLimit(ctx);
    const after = decodeCursor(ctx, z.tuple([z.string().max(64), z.string().max(20)]));
    const { rows } = await pool.query<{ phone: string; _ts: string }>(
      OPT_OUTS_PAGE,
      [tenantId, after?.[0] ?? null, after?.[1] ?? null, n + 1],
    ).catch(rethrowBadCursor);
    const p = page(rows, n, (r) => [r._ts, r.phone]);
    ctx.body = { items: p.items.map(({ _ts, ...o }) => o), next_cursor: p.next_cursor };
  });

  // An opt-out the tenant heard about elsewhere (a form, a phone call).
  router.post('/opt-outs', requireScope('opt-outs:write'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const b = parseOr400(optOutBody, await readJson(ctx, SMALL_BODY_BYTES));
    const p = normalizePhone(b.phone, b.default_country ?? 'US');
    if (!p.ok) throw badRequest('phone', p.reason);
    const { rows } = await pool.query(
      `INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source) VALUES ($1, $2, $3, 'api')
       ON CONFLICT (tenant_id, phone) DO UPDATE SET phone = EXCLUDED.phone
       RETURNING phone, opted_out_at, source, keyword`,
      [tenantId, p.e164, clock.now()],
    );
    ctx.status = 201;
    ctx.body = rows[0];
  });

  return router;
}

/** A cursor whose timestamp PostgreSQL cannot read is the client's error, not ours. */
function rethrowBadCursor(err: unknown): never {
  const code = (err as { code?: string }).code;
  if (code === '22007' || code === '22008' || code === '22P02') throw badRequest('cursor', 'malformed cursor');
  throw err;
}
