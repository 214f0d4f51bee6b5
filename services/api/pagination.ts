import type { Context } from 'koa';
import { z } from 'zod';
import { badRequest, parseOr400, queryParam } from './http.js';

/**
 * Keyset pagination: a page is "the next `limit` rows after this key", so pages stay
 * fast and stable however deep a client goes and however many rows arrive meanwhile.
 * The cursor is the last row's sort key, opaque to clients (base64url JSON).
 */
export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;

export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** The cursor's key, checked against the shape the route expects; a forged or stale cursor is a 400. */
export function decodeCursor<S extends z.ZodType>(ctx: Context, schema: S): z.infer<S> | undefined {
  const raw = queryParam(ctx, 'cursor');
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw badRequest('cursor', 'malformed cursor');
  }
  const r = schema.safeParse(value);
  if (!r.success) throw badRequest('cursor', 'malformed cursor');
  return r.data;
}

const limitReason = `expected an integer from 1 to ${MAX_LIMIT}`;

/** The query parameters of every listing; the routes parse with these and the OpenAPI document shows them. */
export const pageQuery = z.object({
  limit: z
    .string()
    .regex(/^\d{1,4}$/, limitReason)
    .transform(Number)
    .pipe(z.number().int().min(1, limitReason).max(MAX_LIMIT, limitReason))
    .optional()
    .meta({
      description: `Page size, 1 to ${MAX_LIMIT} (default ${DEFAULT_LIMIT})`,
      override: ({ jsonSchema }) => {
        // Sent as digits; shown as the integer it is.
        delete jsonSchema.pattern;
        Object.assign(jsonSchema, { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT });
      },
    }),
  cursor: z
    .string()
    .optional()
    .meta({ description: 'The `next_cursor` of the previous page (opaque); a forged or stale one is a 400' }),
});

export function pageLimit(ctx: Context): number {
  return parseOr400(pageQuery.shape.limit, queryParam(ctx, 'limit'), 'limit') ?? DEFAULT_LIMIT;
}

/** Fetch limit + 1 rows; the extra one only says whether there is a next page. */
export function page<T>(rows: T[], limit: number, keyOf: (row: T) => unknown[]): { items: T[]; next_cursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}
