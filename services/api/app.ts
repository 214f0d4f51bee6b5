import Koa from 'koa';
import { Router } from '@koa/router';
import { registry } from '../../lib/metrics.js';
import { requireTenantKey } from './auth.js';
import { BackgroundTasks } from './background.js';
import { tenantAllowance } from './tenant-allowance.js';
import type { ApiDeps } from './deps.js';
import { errorHandler, httpMetrics } from './http.js';
import { openApiRoutes } from './openapi/routes.js';
import { adminRoutes } from './routes/admin.js';
import { contactImportRoutes } from './routes/contact-imports.js';
import { contactRoutes } from './routes/contacts.js';
import { DEFAULT_IMPORT_LIMITS, ImportRunner } from './import-jobs.js';
import { deviceTokenRoutes } from './routes/device-tokens.js';
import { queryRoutes } from './routes/queries.js';
import { telnyxWebhookRoutes, webhookOptions, type ClassifyReceipt } from './telnyx-webhook.js';

export type { ApiDeps } from './deps.js';

export type ApiApp = Koa & {
  /** Replies started by requests (HELP answers); drained on shutdown. */
  background: BackgroundTasks;
  /** Set on SIGTERM: /readyz turns 503 so the load balancer stops sending. */
  draining: boolean;
  /** Works through contact import jobs in the background; stopped on shutdown. */
  imports: ImportRunner;
};

const READY_TIMEOUT_MS = 2000;

/**
 * The api service: admin routes (tenants, sending numbers, API keys) under the admin
 * credential, tenant routes under /v1 scoped to the API key's tenant, the Telnyx
 * webhook, and health and metrics.
 */
export function createApiApp(deps: ApiDeps & { classifyReceipt?: ClassifyReceipt }): ApiApp {
  const app = new Koa() as ApiApp;
  app.background = new BackgroundTasks(deps.log);
  app.draining = false;
  const importLimits = { ...DEFAULT_IMPORT_LIMITS, ...deps.importLimits };
  app.imports = new ImportRunner(deps, importLimits);

  app.use(httpMetrics('api'));
  app.use(async (ctx, next) => {
    await next();
    // While draining, end each keep-alive connection with its response (including
    // requests that were already in flight when the drain began).
    if (app.draining) ctx.set('Connection', 'close');
  });
  app.use(errorHandler(deps.log));

  const health = new Router();
  health.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  health.get('/readyz', async (ctx) => {
    if (app.draining) {
      ctx.status = 503;
      ctx.body = { status: 'draining' };
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        deps.pool.query('SELECT 1 FROM herald_schema_migrations LIMIT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('database check timed out')), READY_TIMEOUT_MS);
        }),
      ]);
      ctx.body = { status: 'ready', database: 'ok' };
    } catch (err) {
      deps.log.warn({ err: (err as Error).message }, 'readiness check failed');
      ctx.status = 503;
      ctx.body = { status: 'unavailable', database: 'unreachable' };
    } finally {
      clearTimeout(timer);
    }
  });
  health.get('/metrics', async (ctx) => {
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  app.use(health.routes());
  app.use(openApiRoutes().routes());

  const admin = adminRoutes(deps);
  app.use(admin.routes()).use(admin.allowedMethods());

  const v1 = new Router({ prefix: '/v1' });
  v1.use(requireTenantKey(deps.pool, deps.clock));
  v1.use(tenantAllowance(deps.pool));
  for (const r of [contactRoutes(deps, { runner: app.imports, limits: importLimits }), contactImportRoutes(deps), deviceTokenRoutes(deps), queryRoutes(deps)]) v1.use(r.routes(), r.allowedMethods());
  app.use(v1.routes()).use(v1.allowedMethods());

  const webhooks = telnyxWebhookRoutes(webhookOptions(deps, app.background, deps.classifyReceipt));
  app.use(webhooks.routes()).use(webhooks.allowedMethods());

  return app;
}
