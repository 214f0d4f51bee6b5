import type { Context } from 'koa';
import { z } from 'zod';
import { badRequest, queryParam } from './http.js';

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

export function pageLimit(ctx: Context): number {
  const raw = queryParam(ctx, 'limit');
  if (raw === undefined) return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw badRequest('limit', `expected an integer from 1 to ${MAX_LIMIT}`);
  return n;
}

/** Fetch limit + 1 rows; the extra one only says whether there is a next page. */
export function page<T>(rows: T[], limit: number, keyOf: (row: T) => unknown[]): { items: T[]; next_cursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}
