import type { Context, Middleware, Next } from 'koa';
import { z } from 'zod';
import type { Logger } from '../../lib/logger.js';
import { metrics } from '../../lib/metrics.js';

/**
 * Every client error leaves the api as `{ error: { field, reason } }` with a 4xx,
 * naming the offending field (a dotted path into the body, a query parameter or a
 * header) so a caller can fix their request without reading our logs.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly field: string | null,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'HttpError';
  }
}

export const badRequest = (field: string | null, reason: string) => new HttpError(400, field, reason);
export const notFound = (what: string) => new HttpError(404, null, `${what} not found`);

/** `contacts.0.phone`-style path of a zod issue, prefixed by where the value came from. */
function issuePath(prefix: string | null, path: PropertyKey[]): string | null {
  const parts = path.map((p) => String(p));
  if (prefix) parts.unshift(prefix);
  return parts.length > 0 ? parts.join('.') : null;
}

/** Parse with zod and turn the first issue into a 400 naming its field. */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, prefix: string | null = null): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  // An unknown key is reported on the object that holds it: name the key itself.
  const path = issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined ? [...issue.path, issue.keys[0]] : issue.path;
  throw new HttpError(400, issuePath(prefix, path) ?? 'body', issue.message);
}

/** Catch-all: HttpError → its status; anything else → 500 without a stack trace. */
export function errorHandler(log: Logger): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: { field: null, reason: `no route for ${ctx.method} ${ctx.path}` } };
      }
      // The routers answer a method no route has (TRACE) with 501: that is the client's
      // request, not a server fault, so it is a 405 like any other method the path lacks.
      if ((ctx.status === 405 || ctx.status === 501) && ctx.body === undefined) {
        ctx.status = 405;
        ctx.body = { error: { field: null, reason: `${ctx.method} is not allowed on ${ctx.path}` } };
      }
    } catch (err) {
      if (err instanceof HttpError) {
        ctx.status = err.status;
        ctx.body = { error: { field: err.field, reason: err.reason } };
        return;
      }
      // PostgreSQL data exceptions (class 22: a NUL byte in text, an out-of-range number)
      // come from what the client sent: a 400, not a 500.
      const pgCode = (err as { code?: unknown }).code;
      if (typeof pgCode === 'string' && /^22[0-9A-Z]{3}$/.test(pgCode)) {
        ctx.status = 400;
        ctx.body = { error: { field: 'body', reason: pgCode === '22021' || pgCode === '22P05' ? 'text may not contain NUL characters' : 'a value is out of range or malformed' } };
        return;
      }
      const e = err as { status?: number; expose?: boolean; message?: string };
      // Koa/router errors (405, 501, malformed URL) carry a status and are safe to show.
      if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
        ctx.status = e.status;
        ctx.body = { error: { field: null, reason: e.expose ? String(e.message) : 'bad request' } };
        return;
      }
      log.error({ err, method: ctx.method, route: routeOf(ctx) }, 'request failed');
      ctx.status = 500;
      ctx.body = { error: { field: null, reason: 'internal error' } };
    }
  };
}

/** The route template (`/v1/broadcasts/:id`), never the raw path, so metric labels stay bounded. */
export function routeOf(ctx: Context): string {
  const matched = (ctx as Context & { _matchedRoute?: string | RegExp })._matchedRoute;
  return typeof matched === 'string' ? matched : 'unmatched';
}

/** HTTP request count and duration by method, route template and status. */
export function httpMetrics(service: string): Middleware {
  return async (ctx: Context, next: Next) => {
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const labels = { service, method: ctx.method, route: routeOf(ctx), status: String(ctx.status) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    }
  };
}

export const MB = 1024 * 1024;

function describeLimit(bytes: number): string {
  return bytes % MB === 0 ? `${bytes / MB} MB` : `${bytes} bytes`;
}

/**
 * Read the request body ourselves, as raw bytes (Koa 3 has no body parser, and the
 * webhook signature is over the exact bytes received). The limit is enforced on the
 * declared Content-Length before reading and on the bytes actually read, with a 413
 * that names it.
 */
export async function readRawBody(ctx: Context, limitBytes: number): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, 'body', `request body exceeds the ${describeLimit(limitBytes)} limit`);
  const declared = Number(ctx.get('content-length') || NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    // Do not read it; close the connection after answering so the client stops sending.
    ctx.set('Connection', 'close');
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limitBytes) {
      ctx.set('Connection', 'close');
      ctx.req.resume();
      throw tooLarge();
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/** The body as JSON; an empty body is `undefined`, malformed JSON a 400. */
export async function readJson(ctx: Context, limitBytes: number): Promise<unknown> {
  const raw = await readRawBody(ctx, limitBytes);
  if (raw.length === 0) return undefined;
  if (ctx.request.type && ctx.request.type !== 'application/json' && !ctx.request.type.endsWith('+json')) {
    throw new HttpError(415, 'content-type', `expected application/json, got ${ctx.request.type}`);
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw badRequest('body', 'malformed JSON');
  }
}

/**
 * A query parameter given once, or undefined when absent. Given empty (`?limit=`) it is
 * '' and validated like any other value, as the OpenAPI document says.
 */
export function queryParam(ctx: Context, name: string): string | undefined {
  const v = ctx.query[name];
  if (Array.isArray(v)) throw badRequest(name, 'given more than once');
  return v;
}
