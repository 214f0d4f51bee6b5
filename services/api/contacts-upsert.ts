import type { CountryCode } from 'libphonenumber-js';
import { z } from 'zod';
import type { Pool } from '../../lib/db/postgres.js';
import { inTransaction } from '../../lib/db/postgres.js';
import { canonicalTimeZone, normalizePhone } from './validation.js';
import { rescheduleContacts } from '../../core/delivery/reschedule.js';

export interface RowError {
  /** 1-based: the index + 1 of a JSON upload, the data row (after the header) of a CSV. */
  row: number;
  field: string;
  reason: string;
}

export interface UpsertReport {
  created: number;
  updated: number;
  failed: number;
  /** The first MAX_REPORTED_ERRORS errors, by row. */
  errors: RowError[];
  errors_total: number;
}

/** One validated contact. `undefined` fields were not given and leave the stored value alone. */
export interface ContactInput {
  row: number;
  phone: string;
  name?: string;
  time_zone?: string;
  tags?: string[];
  external_id?: string;
  sms_consent?: boolean;
  consent_source: string;
}

const text = (max: number) => z.string().max(max).nullable().optional();

/**
 * One row of an upload as the OpenAPI document shows it. validateContactRow (below)
 * checks rows by hand because it reports every problem of a row and reads CSV cells
 * (all strings) the same way; the fields it knows are this schema's keys.
 */
export const contactRow = z
  .strictObject({
    phone: z.string().max(40).meta({ description: 'Any common notation; read in default_country unless it starts with +', example: '(202) 555-0143' }),
    name: text(200),
    time_zone: text(64).meta({ description: 'IANA zone, e.g. America/Chicago' }),
    tags: z.union([z.array(z.string().max(64)).max(100), z.string()]).nullable().optional().meta({ description: 'An array, or one string separated by semicolons' }),
    external_id: text(200),
    sms_consent: z.union([z.boolean(), z.enum(['true', 'yes', 'y', '1', 'false', 'no', 'n', '0'])]).nullable().optional(),
    consent_source: text(100),
  })
  .meta({ id: 'ContactRow', description: 'null, "" and absent all mean "not given" (the stored value stays)' });

const KNOWN = new Set(Object.keys(contactRow.shape));
const TRUE = new Set(['true', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'no', 'n', '0']);

/**
 * Validate one row of an upload (from JSON, or the cells of a CSV row, which are all
 * strings). Every problem of the row is reported, each naming its field; a row with
 * any problem is not stored. `null`, '' and absent all mean "not given".
 */
export function validateContactRow(
  row: number,
  raw: unknown,
  opts: { defaultCountry: CountryCode; consentSource: string },
): { ok: true; contact: ContactInput } | { ok: false; errors: RowError[] } {
  const errors: RowError[] = [];
  const fail = (field: string, reason: string) => errors.push({ row, field, reason });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, errors: [{ row, field: 'row', reason: 'expected an object' }] };
  }
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!KNOWN.has(key)) fail(key, 'unknown field');
  // PostgreSQL text cannot hold NUL: refuse it here, for this row only.
  const nul = Object.entries(r).filter(([key, v]) => KNOWN.has(key) && (Array.isArray(v) ? v : [v]).some((x) => typeof x === 'string' && x.includes('\u0000')));
  if (nul.length > 0) return { ok: false, errors: [...errors, ...nul.map(([key]) => ({ row, field: key, reason: 'contains a NUL character' }))] };
  const given = (k: string) => r[k] !== undefined && r[k] !== null && r[k] !== '';
  const str = (k: string, max: number): string | undefined => {
    if (!given(k)) return undefined;
    const v = r[k];
    if (typeof v !== 'string') return void fail(k, 'expected a string');
    const t = v.trim();
    if (t.length > max) return void fail(k, `at most ${max} characters`);
    return t === '' ? undefined : t;
  };

  let phone: string | undefined;
  if (!given('phone')) fail('phone', 'required');
  else if (typeof r.phone !== 'string') fail('phone', 'expected a string');
  else {
    const p = normalizePhone(r.phone, opts.defaultCountry);
    if (p.ok) phone = p.e164;
    else fail('phone', p.reason);
  }

  const name = str('name', 200);
  const external_id = str('external_id', 200);
  const consent_source = str('consent_source', 100) ?? opts.consentSource;

  let time_zone: string | undefined;
  const tz = str('time_zone', 64);
  if (tz !== undefined) {
    const canonical = canonicalTimeZone(tz);
    if (canonical) time_zone = canonical;
    else fail('time_zone', `not an IANA time zone: ${tz}`);
  }

  let tags: string[] | undefined;
  if (given('tags')) {
    const v = r.tags;
    const list = typeof v === 'string' ? v.split(';') : Array.isArray(v) && v.every((t) => typeof t === 'string') ? v : null;
    if (!list) fail('tags', 'expected an array of strings or a semicolon-separated string');
    else {
      tags = [...new Set(list.map((t) => t.trim()).filter((t) => t !== ''))];
      if (tags.some((t) => t.length > 64)) fail('tags', 'a tag is at most 64 characters');
      else if (tags.length > 100) fail('tags', 'at most 100 tags');
    }
  }

  let sms_consent: boolean | undefined;
  if (given('sms_consent')) {
    const v = r.sms_consent;
    if (typeof v === 'boolean') sms_consent = v;
    else if (typeof v === 'string' && TRUE.has(v.trim().toLowerCase())) sms_consent = true;
    else if (typeof v === 'string' && FALSE.has(v.trim().toLowerCase())) sms_consent = false;
    else fail('sms_consent', 'expected true or false');
  }

  if (errors.length > 0 || phone === undefined) return { ok: false, errors };
  return { ok: true, contact: { row, phone, name, time_zone, tags, external_id, sms_consent, consent_source } };
}

export interface RowInput {
  row: number;
  value: unknown;
}

/**
 * Validate rows, refuse a number already seen earlier in the same upload (`seen`, kept
 * across calls by an import that comes in batches), and upsert the rest. Returns the
 * counts and an error for every refused row (several for a row with several problems).
 */
export async function importRows(
  pool: Pool,
  tenantId: string,
  input: RowInput[],
  opts: { defaultCountry: CountryCode; consentSource: string },
  now: Date,
  seen: Map<string, number> = new Map(),
): Promise<{ created: number; updated: number; errors: RowError[] }> {
  const errors: RowError[] = [];
  const valid: ContactInput[] = [];
  for (const { row, value } of input) {
    const v = validateContactRow(row, value, opts);
    if (!v.ok) {
      errors.push(...v.errors);
      continue;
    }
    const first = seen.get(v.contact.phone);
    if (first !== undefined) {
      errors.push({ row, field: 'phone', reason: `same number as row ${first}` });
      continue;
    }
    seen.set(v.contact.phone, row);
    valid.push(v.contact);
  }
  const result = await upsertContacts(pool, tenantId, valid, now);
  for (const row of result.missing) errors.push({ row, field: 'phone', reason: 'contact was deleted during the upload; retry' });
  return { created: result.created, updated: result.updated, errors };
}

const CHUNK = 1000;

const RECORDSET = `jsonb_to_recordset($2::jsonb) AS u(ord int, phone text, name text, time_zone text, tags jsonb,
  external_id text, sms_consent boolean, consent_source text)`;

/**
 * Upsert validated contacts of one tenant by (tenant_id, phone), in chunks of 1,000,
 * each its own transaction (an upload is idempotent, so a retried upload after a
 * failure mid-way converges). Insert first (ON CONFLICT DO NOTHING, so a concurrent
 * upload of the same number cannot fail us), then update the rest; a field not given
 * keeps its stored value.
 *
 * Consent: a new contact gets sms_consent (default true: the tenant imports people
 * who agreed), consent_at = now and consent_source. An existing contact's consent_at
 * and consent_source change only when sms_consent is given and differs from what is
 * stored. sms_consent=false means the worker never texts them; an opt-out (opt_outs)
 * is separate and is never cleared by an import.
 */
export async function upsertContacts(pool: Pool, tenantId: string, contacts: ContactInput[], now: Date): Promise<{ created: number; updated: number; missing: number[] }> {
  let created = 0;
  let updated = 0;
  const missing: number[] = [];
  for (let i = 0; i < contacts.length; i += CHUNK) {
    const chunk = contacts.slice(i, i + CHUNK);
    const json = JSON.stringify(chunk.map(({ row, ...rest }) => ({ ord: row, ...rest })));
    await inTransaction(pool, async (c) => {
      const ins = await c.query<{ phone: string }>(
        `INSERT INTO contacts (tenant_id, phone, name, time_zone, tags, external_id, sms_consent, consent_at,
                               consent_source, created_at, updated_at)
         SELECT $1, u.phone, u.name, u.time_zone, ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.external_id,
                coalesce(u.sms_consent, true), $3, u.consent_source, $3, $3
           FROM ${RECORDSET}
         ON CONFLICT (tenant_id, phone) DO NOTHING
         RETURNING phone`,
        [tenantId, json, now],
      );
      const inserted = ins.rows.map((r) => r.phone);
      const upd = await c.query<{ ord: number }>(
        `UPDATE contacts c SET
            name = coalesce(u.name, c.name),
            time_zone = coalesce(u.time_zone, c.time_zone),
            tags = CASE WHEN u.tags IS NULL THEN c.tags ELSE ARRAY(SELECT jsonb_array_elements_text(u.tags)) END,
            external_id = coalesce(u.external_id, c.external_id),
            sms_consent = coalesce(u.sms_consent, c.sms_consent),
            consent_at = CASE WHEN u.sms_consent IS DISTINCT FROM c.sms_consent AND u.sms_consent IS NOT NULL
                              THEN $3 ELSE c.consent_at END,
            consent_source = CASE WHEN u.sms_consent IS DISTINCT FROM c.sms_consent AND u.sms_consent IS NOT NULL
                                  THEN u.consent_source ELSE c.consent_source END,
            updated_at = $3
           FROM ${RECORDSET}
          WHERE c.tenant_id = $1 AND c.phone = u.phone AND u.phone <> ALL($4::text[])
          RETURNING u.ord`,
        [tenantId, json, now, inserted],
      );
      // A changed time zone moves the contact's local-time deliveries not yet sent.
      const updatedOrds = new Set(upd.rows.map((u) => u.ord));
      await rescheduleContacts(c, tenantId, chunk.filter((x) => updatedOrds.has(x.row) && x.time_zone).map((x) => x.phone));
      created += inserted.length;
      updated += upd.rows.length;
      // Neither inserted nor updated: deleted by someone else between the two statements.
      if (inserted.length + upd.rows.length < chunk.length) {
        const insertedPhones = new Set(inserted);
        const updatedRows = new Set(upd.rows.map((u) => u.ord));
        for (const x of chunk) if (!insertedPhones.has(x.phone) && !updatedRows.has(x.row)) missing.push(x.row);
      }
    });
  }
  return { created, updated, missing };
}
