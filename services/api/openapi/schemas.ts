import { z } from 'zod';
import { DELIVERY_STATUSES } from '../routes/queries.js';
import { API_SCOPES } from '../auth.js';

/**
 * What the api answers, as zod schemas rendered into the OpenAPI document. Request
 * bodies and parameters are the routes' own validators (imported where they live);
 * these describe responses, which schemathesis checks against what the api really
 * sends. Response objects render with additionalProperties: false, so a column that
 * leaks into a response without being documented fails that check.
 */

const timestamp = z.iso.datetime({ offset: true }).meta({ description: 'RFC 3339 timestamp (UTC)' });
const id = z.number().int().positive();
const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/).meta({ description: 'E.164 phone number', example: '+12025550143' });

export const errorBody = z
  .object({
    error: z.object({
      field: z.string().nullable().meta({
        description: 'What to fix: a dotted path into the body (`contacts.0.phone`), a query parameter or a header; null when no one field is at fault',
      }),
      reason: z.string().meta({ description: 'Why, for a person to read' }),
    }),
  })
  .meta({ id: 'Error', description: 'Every 4xx and 5xx answer has this body.' });

/** A keyset page: the items, and the cursor for the next page (null on the last). */
export function pageOf<T extends z.ZodType>(item: T, id: string) {
  return z
    .object({
      items: z.array(item),
      next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page' }),
    })
    .meta({ id });
}

export const contact = z
  .object({
    id,
    external_id: z.string().nullable(),
    phone: e164,
    name: z.string().nullable(),
    time_zone: z.string().nullable(),
    tags: z.array(z.string()),
    sms_consent: z.boolean(),
    consent_at: timestamp.nullable(),
    consent_source: z.string().nullable(),
    opted_out: z.boolean().meta({ description: 'The number is on the tenant\u2019s opt-out list: it is never texted' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Contact' });

export const rowError = z
  .object({
    row: z.number().int().nonnegative().meta({ description: '1-based: index + 1 in a JSON upload, the data row after the header in a CSV' }),
    field: z.string(),
    reason: z.string(),
  })
  .meta({ id: 'RowError' });

export const upsertReport = z
  .object({
    created: z.number().int().nonnegative(),
    updated: z.number().int().nonnegative(),
    failed: z.number().int().nonnegative().meta({ description: 'Rows not stored (each has at least one entry in errors)' }),
    errors: z.array(rowError).max(100).meta({ description: 'The first 100 errors, by row' }),
    errors_total: z.number().int().nonnegative().meta({ description: 'How many errors there were in all' }),
  })
  .meta({ id: 'UpsertReport' });

export const deviceToken = z
  .object({
    id,
    platform: z.enum(['android', 'ios', 'web']),
    tags: z.array(z.string()),
    contact_id: id.nullable(),
    active: z.boolean(),
    last_seen_at: timestamp,
    created_at: timestamp,
    created: z.boolean().meta({ description: 'true when this registration made the token (201), false when it refreshed it (200)' }),
    replaced_token_id: id.nullable().meta({ description: 'The token `replaces` named, now deactivated' }),
  })
  .meta({ id: 'DeviceToken' });

export const unregistered = z
  .object({ id, active: z.literal(false), invalidated_at: timestamp.nullable(), invalid_reason: z.string().nullable() })
  .meta({ id: 'UnregisteredDeviceToken' });

const deliveryCounts = z
  .object({ total: z.number().int().nonnegative() })
  .catchall(z.number().int().nonnegative())
  .meta({ description: 'Deliveries by status, and their total' });

export const broadcast = z
  .object({
    id: z.uuid(),
    namespace: z.string().nullable(),
    name: z.string().nullable(),
    channel: z.enum(['sms', 'push']),
    priority: z.enum(['normal', 'urgent']),
    generation: z.number().int(),
    message_text: z.string(),
    message_title: z.string().nullable(),
    suspended: z.boolean(),
    cancelled_at: timestamp.nullable(),
    max_attempts: z.number().int(),
    expire_after_seconds: z.number().int(),
    created_at: timestamp,
    updated_at: timestamp,
    counts: deliveryCounts,
  })
  .meta({ id: 'Broadcast' });

export const delivery = z
  .object({
    id,
    occurrence_id: z.uuid(),
    channel: z.enum(['sms', 'push']),
    recipient: z.string().meta({ description: 'Masked: never a whole number or device token' }),
    contact_id: id.nullable(),
    device_token_id: id.nullable(),
    status: z.enum(DELIVERY_STATUSES),
    attempts: z.number().int().nonnegative(),
    segments: z.number().int().nullable(),
    provider_message_id: z.string().nullable(),
    error_code: z.string().nullable(),
    last_error: z.string().nullable(),
    possible_duplicate: z.boolean(),
    due_at: timestamp,
    next_attempt_at: timestamp.nullable(),
    sent_at: timestamp.nullable(),
    finalized_at: timestamp.nullable(),
    updated_at: timestamp,
  })
  .meta({ id: 'Delivery' });

export const optOut = z
  .object({ phone: e164, opted_out_at: timestamp, source: z.string(), keyword: z.string().nullable() })
  .meta({ id: 'OptOut' });

export const tenant = z
  .object({
    id: z.string(),
    name: z.string(),
    default_time_zone: z.string(),
    quiet_hours_start: z.string().nullable(),
    quiet_hours_end: z.string().nullable(),
    sms_per_second: z.number(),
    push_per_second: z.number(),
    messaging_profile_id: z.string().nullable(),
    help_text: z.string().nullable(),
    plan: z.string().meta({ description: 'A row of tenant_plans (free 100, standard 300, pro 1000 API requests a minute)' }),
    inline_numbers_consented: z.boolean().meta({ description: 'The tenant holds consent for its inline numbers; otherwise those that are no consenting contact are skipped' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Tenant' });

export const tenantNamespace = z
  .object({
    apiVersion: z.literal('v1'),
    kind: z.literal('List'),
    items: z.array(
      z.looseObject({ apiVersion: z.string(), kind: z.enum(['Namespace', 'ResourceQuota']), metadata: z.looseObject({ name: z.string() }) }),
    ),
  })
  .meta({ id: 'TenantNamespace', description: 'A v1 List: the Namespace (labels herald.dev/tenant, pod security) and its ResourceQuota' });

export const sendingNumber = z
  .object({
    id,
    tenant_id: z.string(),
    phone_number: z.string(),
    kind: z.enum(['toll_free', '10dlc', 'long_code', 'short_code']),
    campaign_id: z.string().nullable(),
    per_second: z.number(),
    created_at: timestamp,
  })
  .meta({ id: 'SendingNumber' });

const apiKeyFields = {
  id,
  tenant_id: z.string(),
  prefix: z.string(),
  scopes: z.array(z.enum(API_SCOPES)).meta({ description: 'What the key may do; a route outside them answers 403' }),
  created_at: timestamp,
  revoked_at: timestamp.nullable(),
};
export const apiKey = z.object(apiKeyFields).meta({ id: 'ApiKey', description: 'An API key without its secret' });
export const newApiKey = z
  .object({ ...apiKeyFields, key: z.string().meta({ description: 'The key itself, shown only in this response' }) })
  .meta({ id: 'NewApiKey' });
export const rotatedApiKey = z
  .object({ ...apiKeyFields, key: z.string(), replaces: z.object({ id, revoked_at: timestamp }) })
  .meta({ id: 'RotatedApiKey' });

export const webhookAck = z
  .object({
    status: z.enum(['recorded', 'duplicate']),
    effect: z.string().meta({ description: 'What the event did (delivered, a failure kind, opt_out, help, ignored, duplicate, ...)' }),
  })
  .meta({ id: 'WebhookAck' });

export const health = z.object({ status: z.literal('ok') });
export const readiness = z.object({ status: z.string(), database: z.string().optional() });

const count = z.number().int().nonnegative();
export const importJob = z
  .object({
    id: z.uuid(),
    url: z.string().meta({ description: 'Where to GET this job' }),
    status: z.enum(['receiving', 'queued', 'running', 'succeeded', 'failed']).meta({
      description: 'queued once the upload arrived whole; running while rows are read; succeeded (a report) or failed (`error` says why; counts say how far it got)',
    }),
    bytes: count,
    rows_read: count.meta({ description: 'Data rows read so far' }),
    created: count,
    updated: count,
    failed: count.meta({ description: 'Rows refused so far (all of them, though `errors` keeps only the first)' }),
    errors: z.array(rowError),
    error: z.string().nullable().meta({ description: 'Why a failed job stopped' }),
    created_at: timestamp,
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'ImportJob' });
