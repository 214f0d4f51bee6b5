import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import { contactRow } from '../contacts-upsert.js';
import { CSV_COLUMNS } from '../contacts-csv.js';
import { DEFAULT_MAX_BODY_BYTES, SMALL_BODY_BYTES } from '../deps.js';
import { DEFAULT_IMPORT_LIMITS, MAX_JOB_ERRORS } from '../import-jobs.js';
import { MB } from '../http.js';
import { pageQuery } from '../pagination.js';
import { createKeyBody, namespaceQuery, rotateBody, sendingNumberCreate, slug, tenantCreate, tenantPatch } from '../routes/admin.js';
import { contactsQuery } from '../routes/contacts.js';
import { registerBody, unregisterBody } from '../routes/device-tokens.js';
import { deliveriesQuery, optOutBody } from '../routes/queries.js';
import { eventSchema } from '../telnyx-webhook.js';
import * as s from './schemas.js';

/**
 * The OpenAPI 3.1 description of the api, rendered by zod-openapi from the zod schemas
 * the routes validate with (request bodies and parameters) and from ./schemas.ts
 * (responses). services/api/openapi.json is this document, committed; a test keeps the
 * two equal and another checks every mounted route is described here.
 */

const ERRORS = {
  400: 'The request is invalid: `error.field` names the body path, query parameter or header, `error.reason` says why',
  401: 'No credential, or not a valid one (`WWW-Authenticate: Bearer` when none was given)',
  403: 'The API key lacks the scope this route needs (`error.reason` names it)',
  404: 'Not found (for this tenant: another tenant\u2019s rows are not found either)',
  409: 'Conflicts with what exists (`error.field` says with what)',
  413: 'The body is larger than this route accepts',
  415: 'The body\u2019s Content-Type is not one this route reads',
  429: 'The tenant is over its plan\u2019s API requests a minute (free 100, standard 300, pro 1,000, counted across api replicas); `Retry-After` says how many seconds to wait',
  503: 'The server is not configured for this route (admin token or webhook key missing)',
} as const;
type ErrorStatus = keyof typeof ERRORS;

const errorResponses = (...statuses: ErrorStatus[]): ZodOpenApiResponsesObject =>
  Object.fromEntries(statuses.map((code) => [code, { description: ERRORS[code], content: { 'application/json': { schema: s.errorBody } } }]));

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const noContent = { description: 'Done; no body' };

const tenantSecurity = [{ TenantApiKey: [] }];
const adminSecurity = [{ AdminToken: [] }];

const retryAfter = { 'Retry-After': { description: 'Seconds until the tenant may send another request', schema: { type: 'integer' as const, minimum: 1 } } };

/** Tenant routes: the API key's tenant only; every one may answer 401, 403 (scope) and 429 (plan allowance). */
function tenantOp(op: ZodOpenApiOperationObject, ...statuses: ErrorStatus[]): ZodOpenApiOperationObject {
  const limited = { description: ERRORS[429], headers: retryAfter, content: { 'application/json': { schema: s.errorBody } } };
  return { security: tenantSecurity, ...op, responses: { ...op.responses, ...errorResponses(401, 403, ...statuses), 429: limited } };
}
/** Admin routes: the admin token; 401 without it, 503 when the server has none configured. */
function adminOp(op: ZodOpenApiOperationObject, ...statuses: ErrorStatus[]): ZodOpenApiOperationObject {
  return { security: adminSecurity, tags: ['admin'], ...op, responses: { ...op.responses, ...errorResponses(401, 503, ...statuses) } };
}

const jsonBody = <T extends z.ZodType>(schema: T, required = true) => ({ required, content: { 'application/json': { schema } } });
const smallBodyNote = `JSON, at most ${SMALL_BODY_BYTES / 1024} KB.`;

/** A numeric id in a path: the routes read digits (anything else is a 404); shown as the integer it is. */
const integerId = (description: string) =>
  z
    .string()
    .regex(/^\d{1,15}$/)
    .meta({
      description,
      override: ({ jsonSchema }) => {
        delete jsonSchema.pattern;
        Object.assign(jsonSchema, { type: 'integer', minimum: 1 });
      },
    });
const contactId = z.object({ id: integerId('Contact id') });
const broadcastId = z.object({ id: z.uuid().meta({ description: 'Broadcast id' }) });
const tenantId = z.object({ tenantId: slug.meta({ description: 'Tenant id (a DNS label)' }) });
const numericParam = (name: string, description: string) =>
  z.object({ [name]: integerId(description) });

const tenantPaths = {
  '/v1/contacts': {
    post: tenantOp(
      {
        operationId: 'upsertContacts',
        tags: ['contacts'],
        summary: 'Create or update contacts in bulk (JSON or CSV)',
        description:
          `Upsert by phone number (E.164 after normalisation). Each row is checked on its own: a row with a problem is ` +
          `not stored and is reported in \`errors\` (row number, field, reason); the others are. The answer is 200 with the ` +
          `report even when some rows failed. CSV: a header row naming columns from ${CSV_COLUMNS.join(', ')} (phone required). ` +
          `JSON bodies at most ${DEFAULT_MAX_BODY_BYTES / MB} MB.\n\n` +
          `**Large imports.** A CSV body over ${DEFAULT_IMPORT_LIMITS.thresholdBytes / MB} MB becomes an import job: the upload is ` +
          `stored as it arrives and answered \`202 Accepted\` with the job (its URL also in \`Location\`); GET that URL for its ` +
          `progress (rows read, created, updated, failed, the first ${MAX_JOB_ERRORS} errors) and, once it is \`succeeded\` or ` +
          `\`failed\`, its report. A job is at most ${DEFAULT_IMPORT_LIMITS.maxBytes / MB} MB and ` +
          `${DEFAULT_IMPORT_LIMITS.maxRows.toLocaleString('en-US')} rows; a tenant has one import open at a time (409 meanwhile).`,
        requestParams: { query: contactsQuery.pick({ default_country: true, consent_source: true }) },
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: z.union([z.array(contactRow), z.strictObject({ contacts: z.array(contactRow) })]),
            },
            'text/csv': { schema: z.string().meta({ example: 'phone,name,tags\n+12025550143,Ada,choir;youth\n' }) },
          },
        },
        responses: {
          200: json(s.upsertReport, 'What was created, updated and refused (row by row)'),
          202: {
            ...json(s.importJob, 'A large CSV, stored: it is imported in the background (GET the job for progress)'),
            headers: z.object({ location: z.string().meta({ description: 'The job\u2019s URL' }) }),
          },
        },
      },
      400, 409, 413, 415,
    ),
    get: tenantOp(
      {
        operationId: 'listContacts',
        tags: ['contacts'],
        summary: 'List contacts (oldest first)',
        requestParams: { query: pageQuery },
        responses: { 200: json(s.pageOf(s.contact, 'ContactPage'), 'A page of contacts') },
      },
      400,
    ),
    delete: tenantOp(
      {
        operationId: 'deleteContactByPhone',
        tags: ['contacts'],
        summary: 'Delete a contact by phone number',
        description: 'Deletes the contact and its device tokens; its opt-out (if any) stays.',
        requestParams: { query: contactsQuery.pick({ phone: true, default_country: true }) },
        responses: { 204: noContent },
      },
      400, 404,
    ),
  },
  '/v1/contact-imports/{id}': {
    get: tenantOp(
      {
        operationId: 'getContactImport',
        tags: ['contacts'],
        summary: 'A contact import job: progress while it runs, its report after',
        requestParams: { path: z.object({ id: z.uuid().meta({ description: 'Import job id' }) }) },
        responses: { 200: json(s.importJob, 'The job') },
      },
      404,
    ),
  },
  '/v1/contacts/{id}': {
    get: tenantOp(
      { operationId: 'getContact', tags: ['contacts'], summary: 'One contact', requestParams: { path: contactId }, responses: { 200: json(s.contact, 'The contact') } },
      404,
    ),
    delete: tenantOp(
      {
        operationId: 'deleteContact',
        tags: ['contacts'],
        summary: 'Delete a contact',
        description: 'Deletes the contact and its device tokens; its opt-out (if any) stays.',
        requestParams: { path: contactId },
        responses: { 204: noContent },
      },
      404,
    ),
  },
  '/v1/device-tokens': {
    post: tenantOp(
      {
        operationId: 'registerDeviceToken',
        tags: ['device tokens'],
        summary: 'Register (or refresh) a push token',
        description:
          `Upsert by token: registering again refreshes last_seen_at and reactivates it. \`replaces\` names the token this ` +
          `one refreshes (deactivated; its contact, tags and platform carry over unless given). ${smallBodyNote}`,
        requestBody: jsonBody(registerBody),
        responses: { 200: json(s.deviceToken, 'Refreshed an existing token'), 201: json(s.deviceToken, 'Registered a new token') },
      },
      400, 404, 409, 413, 415,
    ),
  },
  '/v1/device-tokens/unregister': {
    post: tenantOp(
      {
        operationId: 'unregisterDeviceToken',
        tags: ['device tokens'],
        summary: 'Deactivate a push token (the app signed out)',
        description: smallBodyNote,
        requestBody: jsonBody(unregisterBody),
        responses: { 200: json(s.unregistered, 'The token, now inactive') },
      },
      400, 404, 413, 415,
    ),
  },
  '/v1/broadcasts': {
    get: tenantOp(
      {
        operationId: 'listBroadcasts',
        tags: ['broadcasts'],
        summary: 'List broadcasts (newest first) with delivery counts',
        requestParams: { query: pageQuery },
        responses: { 200: json(s.pageOf(s.broadcast, 'BroadcastPage'), 'A page of broadcasts') },
      },
      400,
    ),
  },
  '/v1/broadcasts/{id}': {
    get: tenantOp(
      { operationId: 'getBroadcast', tags: ['broadcasts'], summary: 'One broadcast with delivery counts', requestParams: { path: broadcastId }, responses: { 200: json(s.broadcast, 'The broadcast') } },
      404,
    ),
  },
  '/v1/broadcasts/{id}/deliveries': {
    get: tenantOp(
      {
        operationId: 'listDeliveries',
        tags: ['broadcasts'],
        summary: 'Deliveries of a broadcast (recipients masked), by status',
        requestParams: { path: broadcastId, query: pageQuery.extend(deliveriesQuery.shape) },
        responses: { 200: json(s.pageOf(s.delivery, 'DeliveryPage'), 'A page of deliveries') },
      },
      400, 404,
    ),
  },
  '/v1/opt-outs': {
    get: tenantOp(
      {
        operationId: 'listOptOuts',
        tags: ['opt-outs'],
        summary: 'The tenant\u2019s opt-out list (newest first, full numbers)',
        requestParams: { query: pageQuery },
        responses: { 200: json(s.pageOf(s.optOut, 'OptOutPage'), 'A page of opt-outs') },
      },
      400,
    ),
    post: tenantOp(
      {
        operationId: 'addOptOut',
        tags: ['opt-outs'],
        summary: 'Record an opt-out heard elsewhere (idempotent)',
        description: smallBodyNote,
        requestBody: jsonBody(optOutBody),
        responses: { 201: json(s.optOut, 'The opt-out (new or existing)') },
      },
      400, 413, 415,
    ),
  },
};

const adminPaths = {
  '/admin/tenants': {
    post: adminOp(
      { operationId: 'createTenant', summary: 'Create a tenant', description: smallBodyNote, requestBody: jsonBody(tenantCreate), responses: { 201: json(s.tenant, 'The tenant') } },
      400, 409, 413, 415,
    ),
    get: adminOp(
      { operationId: 'listTenants', summary: 'List tenants (by id)', requestParams: { query: pageQuery }, responses: { 200: json(s.pageOf(s.tenant, 'TenantPage'), 'A page of tenants') } },
      400,
    ),
  },
  '/admin/tenants/{tenantId}': {
    get: adminOp({ operationId: 'getTenant', summary: 'One tenant', requestParams: { path: tenantId }, responses: { 200: json(s.tenant, 'The tenant') } }, 404),
    patch: adminOp(
      {
        operationId: 'updateTenant',
        summary: 'Change a tenant (fields given only)',
        description: smallBodyNote,
        requestParams: { path: tenantId },
        requestBody: jsonBody(tenantPatch, false),
        responses: { 200: json(s.tenant, 'The tenant') },
      },
      400, 404, 413, 415,
    ),
  },
  '/admin/tenants/{tenantId}/namespace': {
    get: adminOp(
      {
        operationId: 'getTenantNamespace',
        summary: "The tenant's namespace manifest (Namespace bound by herald.dev/tenant, ResourceQuota), for a platform admin to apply",
        requestParams: { path: tenantId, query: namespaceQuery },
        responses: { 200: { description: 'YAML for kubectl apply -f -', content: { 'application/yaml': { schema: s.tenantNamespace } } } },
      },
      400, 404,
    ),
  },
  '/admin/tenants/{tenantId}/sending-numbers': {
    post: adminOp(
      {
        operationId: 'addSendingNumber',
        summary: 'Register a sending number',
        description: `per_second defaults by kind (toll_free 20, 10dlc 1, long_code 1, short_code 100). ${smallBodyNote}`,
        requestParams: { path: tenantId },
        requestBody: jsonBody(sendingNumberCreate),
        responses: { 201: json(s.sendingNumber, 'The number') },
      },
      400, 404, 409, 413, 415,
    ),
    get: adminOp(
      {
        operationId: 'listSendingNumbers',
        summary: 'The tenant\u2019s sending numbers',
        requestParams: { path: tenantId },
        responses: { 200: json(z.object({ items: z.array(s.sendingNumber) }), 'All of them') },
      },
      404,
    ),
  },
  '/admin/tenants/{tenantId}/sending-numbers/{numberId}': {
    delete: adminOp(
      {
        operationId: 'deleteSendingNumber',
        summary: 'Remove a sending number',
        requestParams: { path: tenantId.extend(numericParam('numberId', 'Sending number id').shape) },
        responses: { 204: noContent },
      },
      404,
    ),
  },
  '/admin/tenants/{tenantId}/api-keys': {
    post: adminOp(
      {
        operationId: 'createApiKey',
        summary: 'Make an API key (shown once, in this answer)',
        description: `${smallBodyNote} Without a body the key gets every scope.`,
        requestParams: { path: tenantId },
        requestBody: jsonBody(createKeyBody, false),
        responses: { 201: json(s.newApiKey, 'The key, with its secret') },
      },
      400, 404, 413, 415,
    ),
    get: adminOp(
      {
        operationId: 'listApiKeys',
        summary: 'The tenant\u2019s API keys (without secrets)',
        requestParams: { path: tenantId },
        responses: { 200: json(z.object({ items: z.array(s.apiKey) }), 'All of them') },
      },
      404,
    ),
  },
  '/admin/tenants/{tenantId}/api-keys/{keyId}/rotate': {
    post: adminOp(
      {
        operationId: 'rotateApiKey',
        summary: 'Replace an API key; the old one works for grace_seconds more',
        description: smallBodyNote,
        requestParams: { path: tenantId.extend(numericParam('keyId', 'API key id').shape) },
        requestBody: jsonBody(rotateBody, false),
        responses: { 201: json(s.rotatedApiKey, 'The new key, with its secret') },
      },
      400, 404, 409, 413, 415,
    ),
  },
  '/admin/tenants/{tenantId}/api-keys/{keyId}/revoke': {
    post: adminOp(
      {
        operationId: 'revokeApiKey',
        summary: 'Revoke an API key now',
        requestParams: { path: tenantId.extend(numericParam('keyId', 'API key id').shape) },
        responses: { 200: json(s.apiKey, 'The key, revoked') },
      },
      404,
    ),
  },
};

const otherPaths = {
  '/webhooks/telnyx': {
    post: {
      operationId: 'telnyxWebhook',
      tags: ['webhooks'],
      summary: 'Telnyx message events (receipts, inbound STOP/HELP)',
      description:
        'Signed by Telnyx: ed25519 over `<telnyx-timestamp>|<body>`, verified against TELNYX_PUBLIC_KEY; a timestamp ' +
        'outside the accepted window is refused. Each event id is recorded once (a redelivery answers `duplicate`).',
      security: [{ TelnyxSignature: [], TelnyxTimestamp: [] }],
      requestBody: jsonBody(eventSchema),
      responses: { 200: json(s.webhookAck, 'Recorded (or a duplicate)'), ...errorResponses(400, 401, 413, 503) },
    },
  },
  '/healthz': {
    get: { operationId: 'healthz', tags: ['operations'], summary: 'Liveness', security: [], responses: { 200: json(s.health, 'The process is up') } },
  },
  '/readyz': {
    get: {
      operationId: 'readyz',
      tags: ['operations'],
      summary: 'Readiness (database reachable, not draining)',
      security: [],
      responses: { 200: json(s.readiness, 'Ready'), 503: json(s.readiness, 'Draining, or the database is unreachable') },
    },
  },
  '/metrics': {
    get: {
      operationId: 'metrics',
      tags: ['operations'],
      summary: 'Prometheus metrics',
      security: [],
      responses: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: z.string() } } } },
    },
  },
  '/openapi.json': {
    get: {
      operationId: 'openapi',
      tags: ['operations'],
      summary: 'This document',
      security: [],
      responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: z.looseObject({ openapi: z.string() }) } } } },
    },
  },
  '/docs': {
    get: {
      operationId: 'reference',
      tags: ['operations'],
      summary: 'This document as a reference page',
      security: [],
      responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } } },
    },
  },
};

let rendered: ReturnType<typeof createDocument> | undefined;

/** The document, rendered once per process. */
export function openApiDocument() {
  rendered ??= render();
  return rendered;
}

function render() {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Herald API',
      version: '1',
      description:
        'Contacts, device tokens, opt-outs and broadcast status for each tenant (under /v1, with the tenant\u2019s API key); ' +
        'tenants, sending numbers and API keys for operators (under /admin, with the admin token); the Telnyx webhook.\n\n' +
        'Errors: every 4xx/5xx body is `{"error": {"field": ..., "reason": ...}}`.\n\n' +
        'Pagination: listings return `{items, next_cursor}`; pass `next_cursor` back as `cursor` until it is null. ' +
        'Pages are keyset pages, stable while rows are added.',
      license: { name: 'UNLICENSED', identifier: 'UNLICENSED' },
    },
    servers: [{ url: '/', description: 'This server' }],
    security: tenantSecurity,
    tags: [
      { name: 'contacts', description: 'The tenant\u2019s contacts' },
      { name: 'device tokens', description: 'Push tokens of the tenant\u2019s app installs' },
      { name: 'broadcasts', description: 'Broadcasts and their deliveries (read-only; made through Kubernetes)' },
      { name: 'opt-outs', description: 'Numbers never to text' },
      { name: 'admin', description: 'Operator routes (admin token)' },
      { name: 'webhooks', description: 'Provider callbacks' },
      { name: 'operations', description: 'Health, metrics and this document' },
    ],
    paths: { ...tenantPaths, ...adminPaths, ...otherPaths },
    components: {
      securitySchemes: {
        TenantApiKey: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'hk_<12 hex prefix>_<43 char secret>',
          description: 'A tenant API key (made by POST /admin/tenants/{tenantId}/api-keys). It scopes every /v1 route to its tenant.',
        },
        AdminToken: { type: 'http', scheme: 'bearer', description: 'HERALD_ADMIN_TOKEN, for the /admin routes' },
        TelnyxSignature: { type: 'apiKey', in: 'header', name: 'telnyx-signature-ed25519', description: 'base64 ed25519 signature of `<timestamp>|<body>`' },
        TelnyxTimestamp: { type: 'apiKey', in: 'header', name: 'telnyx-timestamp', description: 'Unix seconds the event was signed at' },
      },
    },
  });
}
