import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { CountryCode } from 'libphonenumber-js';
import { z } from 'zod';
import { requireScope, tenantOf } from '../auth.js';
import { parseContactsCsv } from '../contacts-csv.js';
import { importUrl, readBodyHead, stageImport, type ImportLimits, type ImportRunner } from '../import-jobs.js';
import { importRows, type RowError, type UpsertReport } from '../contacts-upsert.js';
import type { ApiDeps } from '../deps.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_UPLOAD_ROWS, MAX_REPORTED_ERRORS } from '../deps.js';
import { HttpError, badRequest, notFound, parseOr400, queryParam, readRawBody } from '../http.js';
import { decodeCursor, page, pageLimit } from '../pagination.js';
import { countrySchema, normalizePhone } from '../validation.js';

const CONTACT_COLUMNS = `c.id, c.external_id, c.phone, c.name, c.time_zone, c.tags, c.sms_consent, c.consent_at,
  c.consent_source, (o.phone IS NOT NULL) AS opted_out, c.created_at, c.updated_at`;
const CONTACT_FROM = `contacts c LEFT JOIN opt_outs o ON o.tenant_id = c.tenant_id AND o.phone = c.phone`;

/** The upload's other JSON form: `{"contacts": [...]}` and nothing else. Rows are checked one by one after. */
export const contactsWrapper = z.strictObject({ contacts: z.array(z.unknown()) });

/** Query parameters of the contact routes (the OpenAPI document shows these). */
export const contactsQuery = z.object({
  default_country: countrySchema.optional().meta({ description: 'ISO 3166-1 alpha-2 country for numbers written without +country code (default US)' }),
  consent_source: z.string().trim().min(1).max(100).optional().meta({ description: 'Recorded with the consent of new contacts (default api, or csv_import)' }),
  phone: z.string().meta({ description: 'The contact\u2019s number, in any common notation' }),
});

export function defaultCountry(ctx: Context): CountryCode {
  const raw = queryParam(ctx, 'default_country');
  return raw === undefined ? 'US' : parseOr400(countrySchema, raw, 'default_country');
}

export function contactIdParam(ctx: Context): number {
  const raw = (ctx as Context & { params: Record<string, string> }).params.id ?? '';
  if (!/^\d{1,15}$/.test(raw)) throw notFound('contact');
  return Number(raw);
}

/** Contacts of the key's tenant: bulk upsert (JSON or CSV), read, delete. */
export function contactRoutes(deps: ApiDeps, imports: { runner: ImportRunner; limits: ImportLimits }): Router {
  const { pool, clock } = deps;
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxRows = deps.maxUploadRows ?? DEFAULT_MAX_UPLOAD_ROWS;
  const router = new Router();

  router.post('/contacts', requireScope('contacts:write'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const country = defaultCountry(ctx);
    const type = ctx.request.type;
    const isCsv = type === 'text/csv' || type === 'application/csv';
    if (!isCsv && type !== 'application/json') {
      throw new HttpError(415, 'content-type', 'send application/json (an array of contacts) or text/csv');
    }
    const consentSource = parseOr400(
      contactsQuery.shape.consent_source.unwrap().default(isCsv ? 'csv_import' : 'api'),
      queryParam(ctx, 'consent_source'),
      'consent_source',
    );
    let body: string;
    if (isCsv) {
      // A CSV larger than the threshold is not read whole: it is staged as an import job.
      const { head, complete, rest } = await readBodyHead(ctx, imports.limits.thresholdBytes);
      if (!complete) {
        const job = await stageImport(pool, clock, imports.limits, { tenantId, defaultCountry: country, consentSource }, head, rest, ctx);
        imports.runner.kick();
        ctx.status = 202;
        ctx.set('Location', importUrl(job.id));
        ctx.body = { ...job, url: importUrl(job.id) };
        return;
      }
      body = head.toString('utf8');
    } else body = (await readRawBody(ctx, limit)).toString('utf8');

    const errors: RowError[] = [];
    let input: Array<{ row: number; value: unknown }>;
    if (isCsv) {
      const csv = parseContactsCsv(body);
      errors.push(...csv.errors);
      input = csv.rows.flatMap((r) => (r ? [{ row: r.row, value: r.values }] : []));
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        throw badRequest('body', 'malformed JSON');
      }
      const list = Array.isArray(parsed) ? parsed : (parsed as { contacts?: unknown } | null)?.contacts;
      if (!Array.isArray(list)) throw badRequest('body', 'expected a JSON array of contacts (or {"contacts": [...]})');
      // The wrapper carries nothing else: an unknown key beside contacts is named, not ignored.
      if (!Array.isArray(parsed)) parseOr400(contactsWrapper, parsed);
      input = list.map((value, i) => ({ row: i + 1, value }));
    }

    const rows = input.length + errors.length;
    if (rows > maxRows) {
      throw new HttpError(413, 'body', `at most ${maxRows} contacts per upload, got ${rows}: split the file into several uploads`);
    }

    const result = await importRows(pool, tenantId, input, { defaultCountry: country, consentSource }, clock.now());
    errors.push(...result.errors);
    errors.sort((a, b) => a.row - b.row);
    const failedRows = new Set(errors.map((e) => e.row));
    // A bounded answer whatever the upload: the first errors, and how many there were.
    const report: UpsertReport = {
      created: result.created, updated: result.updated, failed: failedRows.size,
      errors: errors.slice(0, MAX_REPORTED_ERRORS), errors_total: errors.length,
    };
    deps.log.info({ tenantId, created: report.created, updated: report.updated, failed: report.failed, csv: isCsv }, 'contacts upserted');
    ctx.body = report;
  });

  router.get('/contacts', requireScope('contacts:read'), async (ctx) => {
    const tenantId = tenantOf(ctx);
    const n = pageLimit(ctx);
    const after = decodeCursor(ctx, z.tuple([z.number().int()]));
    const { rows } = await pool.query(
      `SELECT ${CONTACT_COLUMNS} FROM ${CONTACT_FROM}
        WHERE c.tenant_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3`,
      [tenantId, after?.[0] ?? 0, n + 1],
    );
    ctx.body = page(rows, n, (r) => [r.id]);
  });

  router.get('/contacts/:id', requireScope('contacts:read'), async (ctx) => {
    const { rows } = await pool.query(`SELECT ${CONTACT_COLUMNS} FROM ${CONTACT_FROM} WHERE c.tenant_id = $1 AND c.id = $2`, [
      tenantOf(ctx),
      contactIdParam(ctx),
    ]);
    if (!rows[0]) throw notFound('contact');
    ctx.body = rows[0];
  });

  // Deleting a contact deletes their device tokens (FK cascade) but never their
  // opt-out: opt_outs is keyed by number and outlives the contact, so a re-import
  // of the same number is still not texted.
  router.delete('/contacts/:id', requireScope('contacts:write'), async (ctx) => {
    const r = await pool.query('DELETE FROM contacts WHERE tenant_id = $1 AND id = $2', [tenantOf(ctx), contactIdParam(ctx)]);
    if (r.rowCount === 0) throw notFound('contact');
    ctx.status = 204;
  });

  router.delete('/contacts', requireScope('contacts:write'), async (ctx) => {
    const raw = queryParam(ctx, 'phone');
    if (raw === undefined) throw badRequest('phone', 'required (or DELETE /v1/contacts/:id)');
    // An unencoded "+" in a query string arrives as a space: read " 1202…" as "+1202…".
    const p = normalizePhone(raw.replace(/^ (?=\d)/, '+'), defaultCountry(ctx));
    if (!p.ok) throw badRequest('phone', p.reason);
    const r = await pool.query('DELETE FROM contacts WHERE tenant_id = $1 AND phone = $2', [tenantOf(ctx), p.e164]);
    if (r.rowCount === 0) throw notFound('contact');
    ctx.status = 204;
  });

  return router;
}
