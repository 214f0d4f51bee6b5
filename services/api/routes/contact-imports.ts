import { Router } from '@koa/router';
import type { Context } from 'koa';
import { requireScope, tenantOf } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { notFound } from '../http.js';
import { JOB_COLUMNS, importUrl, type ImportJobView } from '../import-jobs.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function jobIdParam(ctx: Context): string {
  const raw = (ctx as Context & { params: Record<string, string> }).params.id ?? '';
  if (!UUID_RE.test(raw)) throw notFound('import');
  return raw.toLowerCase();
}

/** An import job of the key's tenant: its progress while it runs, its report after. */
export function contactImportRoutes(deps: ApiDeps): Router {
  const router = new Router();
  router.get('/contact-imports/:id', requireScope('contacts:read'), async (ctx) => {
    const { rows } = await deps.pool.query<ImportJobView>(`SELECT ${JOB_COLUMNS} FROM import_jobs WHERE tenant_id = $1 AND id = $2`, [
      tenantOf(ctx),
      jobIdParam(ctx),
    ]);
    const job = rows[0];
    if (!job) throw notFound('import');
    ctx.body = { ...job, url: importUrl(job.id) };
  });
  return router;
}
