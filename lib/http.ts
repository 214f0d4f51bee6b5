import type Koa from 'koa';
import { metrics, registry } from './metrics.js';

/**
 * Request metrics by method, route template and status, for every Koa service.
 * The route is the matched template (`/contacts/:id`), never the raw path, so
 * ids do not explode the label set.
 */
export function httpMetrics(service: string): Koa.Middleware {
  return async (ctx, next) => {
    const end = metrics.httpDuration.startTimer();
    try {
      await next();
    } finally {
      const labels = {
        service,
        method: ctx.method,
        route: (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched',
        status: String(ctx.status),
      };
      end(labels);
      metrics.httpRequests.inc(labels);
    }
  };
}

export interface HealthChecks {
  /** Liveness: the process can serve. */
  live?: () => boolean;
  /** Readiness: every dependency answers; a name → check that throws when unhealthy. */
  ready: Record<string, () => Promise<unknown>>;
}

/**
 * /healthz, /readyz and /metrics, the same on every service. Readiness runs real
 * checks (a query, a queue lookup) and says which one failed.
 */
export function healthRoutes(checks: HealthChecks): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET') return next();
    if (ctx.path === '/healthz') {
      const live = checks.live?.() ?? true;
      ctx.status = live ? 200 : 503;
      ctx.body = { status: live ? 'ok' : 'unhealthy' };
      return;
    }
    if (ctx.path === '/readyz') {
      const results: Record<string, string> = {};
      const passed = await Promise.all(
        Object.entries(checks.ready).map(async ([name, check]) => {
          try {
            await Promise.race([check(), new Promise((_, rej) => setTimeout(() => rej(new Error('timed out')), 2_000).unref())]);
            results[name] = 'ok';
            return true;
          } catch (err) {
            results[name] = (err as Error).message;
            return false;
          }
        }),
      );
      const ok = passed.every(Boolean);
      ctx.status = ok ? 200 : 503;
      ctx.body = { status: ok ? 'ready' : 'not ready', checks: results };
      return;
    }
    if (ctx.path === '/metrics') {
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
      return;
    }
    return next();
  };
}
