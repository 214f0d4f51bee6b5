import { Router } from '@koa/router';
import type { Context } from 'koa';
import { Telnyx } from 'telnyx';
import { TelnyxWebhook, TelnyxWebhookVerificationError } from 'telnyx/lib/webhooks';
import { z } from 'zod';
import { inTransaction, type Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import { maskPhone, type Logger } from '../../lib/logger.js';
import { metrics } from '../../lib/metrics.js';
import { classifyTelnyxReceipt } from '../providers/classify-telnyx.js';
import type { BackgroundTasks } from './background.js';
import type { ApiDeps, ReplySender } from './deps.js';
import { HttpError, readRawBody } from './http.js';
import { classifyInbound, defaultHelpText } from './opt-out-keywords.js';
import { ReceiptWriter, type Inserted } from '../../core/delivery/receipt-writer.js';
import { applyReceipt, changesNothing, insertEvent, receiptEffect, type ClassifyReceipt } from '../../core/delivery/receipts.js';

/** Telnyx webhooks are small; anything larger is not one. */
const WEBHOOK_BODY_LIMIT = 256 * 1024;
/** The SDK helper's fixed window; ours can only be tighter. */
const SDK_TOLERANCE_SECONDS = 300;
const E164 = /^\+[1-9]\d{6,14}$/;

export const eventSchema = z.object({
  data: z.object({
    id: z.string().min(1).max(200),
    event_type: z.string().min(1).max(100),
    occurred_at: z.string().max(64).optional().nullable(),
    payload: z.record(z.string(), z.unknown()).optional().nullable(),
  }),
});
type EventData = z.infer<typeof eventSchema>['data'];

const inboundPayload = z.object({
  from: z.object({ phone_number: z.string() }).loose(),
  to: z.array(z.object({ phone_number: z.string() }).loose()).min(1),
  text: z.string().optional().nullable(),
});

const RECEIPT_TYPES = new Set(['message.sent', 'message.finalized']);
export type { ClassifyReceipt } from '../../core/delivery/receipts.js';

/** One HELP reply per (tenant, number) in this long. */
export const HELP_REPLY_INTERVAL_SECONDS = 3600;

/** A HELP to answer once the event is committed. */
interface HelpReply {
  tenantId: string;
  from: string;
  to: string;
  text: string;
}

function verificationFailure(err: TelnyxWebhookVerificationError): HttpError {
  const m = err.message;
  if (/Missing required header: Telnyx-Timestamp|timestamp format/i.test(m)) return new HttpError(400, 'telnyx-timestamp', m);
  if (/Missing required header|signature format/i.test(m)) return new HttpError(400, 'telnyx-signature-ed25519', m);
  if (/too old or too new/i.test(m)) return new HttpError(401, 'telnyx-timestamp', 'timestamp outside the accepted window');
  return new HttpError(401, 'telnyx-signature-ed25519', 'signature does not match the body');
}

function headerRecord(ctx: Context): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['telnyx-signature-ed25519', 'telnyx-timestamp']) {
    const v = ctx.get(name);
    if (v) out[name] = v;
  }
  return out;
}

// --- what an event does -------------------------------------------------------------

interface EventTimes {
  occurredAt: Date | null;
  now: Date;
}


/**
 * What a receipt came to when it was not applied: a redelivery, or no delivery yet (it
 * may have beaten the worker's commit; matchPendingReceipts retries it).
 */
const unapplied = (ins: Inserted) => (ins ? 'unmatched' : 'duplicate');

/** The provider event of this webhook, recorded once by its id. */
function eventOf(data: EventData, at: EventTimes, about: { tenantId?: string | null; providerMessageId?: string | null }) {
  return { eventId: data.id, eventType: data.event_type, ...about, payload: data, occurredAt: at.occurredAt, receivedAt: at.now };
}

async function resolveInbound(db: Pool, data: EventData) {
  const p = inboundPayload.safeParse(data.payload ?? {});
  if (!p.success) return null;
  const to = p.data.to[0]!.phone_number;
  const r = await db.query<{ tenant_id: string; name: string; help_text: string | null }>(
    `SELECT s.tenant_id, t.name, t.help_text FROM sending_numbers s JOIN tenants t ON t.id = s.tenant_id WHERE s.phone_number = $1`,
    [to],
  );
  return { from: p.data.from.phone_number, to, text: p.data.text ?? '', tenant: r.rows[0] };
}

// --- the endpoint -------------------------------------------------------------------

export interface WebhookOptions {
  pool: Pool;
  clock: Clock;
  log: Logger;
  publicKey: string | undefined;
  toleranceSeconds: number;
  replyToHelp: ReplySender | undefined;
  helpText: (tenant: { id: string; name: string }) => string;
  classify: ClassifyReceipt;
  background: BackgroundTasks;
}

export function webhookOptions(deps: ApiDeps, background: BackgroundTasks, classify: ClassifyReceipt = classifyTelnyxReceipt): WebhookOptions {
  return {
    pool: deps.pool,
    clock: deps.clock,
    log: deps.log,
    publicKey: deps.telnyxPublicKey,
    toleranceSeconds: Math.min(deps.webhookToleranceSeconds ?? SDK_TOLERANCE_SECONDS, SDK_TOLERANCE_SECONDS),
    replyToHelp: deps.replyToHelp,
    helpText: deps.defaultHelpText ?? defaultHelpText,
    classify,
    background,
  };
}

/**
 * POST /webhooks/telnyx. The raw body is verified with the telnyx SDK's webhook
 * helper (ed25519 over `${telnyx-timestamp}|${body}`, timestamp within 300 s); a
 * failure records nothing. A verified event is inserted into provider_events under
 * its event id and applied in the same transaction, so a redelivery (same id) is
 * acknowledged and changes nothing, and a crash before commit leaves Telnyx to
 * redeliver. The inline work is a few indexed statements; the HELP reply (a provider
 * call) runs after the answer, never inside it.
 */
export function telnyxWebhookRoutes(o: WebhookOptions): Router {
  const router = new Router();
  // Fail at start, not on the first event, when the configured key is unusable.
  if (o.publicKey) new TelnyxWebhook(o.publicKey);
  const telnyx = o.publicKey ? new Telnyx({ apiKey: null, publicKey: o.publicKey, maxRetries: 0 }) : null;

  router.post('/webhooks/telnyx', async (ctx) => {
    if (!telnyx) {
      metrics.webhookEvents.inc({ provider: 'telnyx', type: 'unknown', result: 'unconfigured' });
      throw new HttpError(503, 'telnyx-signature-ed25519', 'webhook verification is not configured (TELNYX_PUBLIC_KEY)');
    }
    const raw = (await readRawBody(ctx, WEBHOOK_BODY_LIMIT)).toString('utf8');
    const headers = headerRecord(ctx);
    let body: unknown;
    try {
      body = await telnyx.webhooks.unwrap(raw, { headers });
    } catch (err) {
      if (err instanceof TelnyxWebhookVerificationError) {
        metrics.webhookEvents.inc({ provider: 'telnyx', type: 'unknown', result: 'rejected' });
        throw verificationFailure(err);
      }
      // Verified, but not JSON.
      metrics.webhookEvents.inc({ provider: 'telnyx', type: 'unknown', result: 'invalid' });
      throw new HttpError(400, 'body', 'malformed JSON');
    }
    const age = Math.abs(Date.now() / 1000 - Number(headers['telnyx-timestamp']));
    if (age > o.toleranceSeconds) {
      metrics.webhookEvents.inc({ provider: 'telnyx', type: 'unknown', result: 'rejected' });
      throw new HttpError(401, 'telnyx-timestamp', 'timestamp outside the accepted window');
    }
    const parsed = eventSchema.safeParse(body);
    if (!parsed.success) {
      metrics.webhookEvents.inc({ provider: 'telnyx', type: 'unknown', result: 'invalid' });
      const issue = parsed.error.issues[0]!;
      throw new HttpError(400, issue.path.join('.') || 'body', issue.message);
    }
    const result = await recordEvent(o, parsed.data.data);
    metrics.webhookEvents.inc({ provider: 'telnyx', type: parsed.data.data.event_type, result: result.result });
    ctx.body = { status: result.result === 'duplicate' ? 'duplicate' : 'recorded', effect: result.result };
    if (result.help) {
      const help = result.help;
      o.background.run(() => sendHelp(o, help));
    }
  });

  return router;
}

async function sendHelp(o: WebhookOptions, help: HelpReply): Promise<void> {
  if (!o.replyToHelp) {
    o.log.warn({ tenantId: help.tenantId, from: maskPhone(help.from) }, 'HELP received but no reply sender is configured');
    return;
  }
  try {
    const outcome = await o.replyToHelp.send({ from: help.to, to: help.from, text: help.text });
    if (outcome.kind !== 'accepted') o.log.warn({ tenantId: help.tenantId, outcome: outcome.kind, code: outcome.code }, 'HELP reply not accepted');
  } catch (err) {
    o.log.warn({ err, tenantId: help.tenantId }, 'HELP reply failed');
  }
}

/** Insert the event (deduplicated by its id) and apply it, in one transaction. */
export async function recordEvent(o: WebhookOptions, data: EventData): Promise<{ result: string; help?: HelpReply }> {
  const at = { now: o.clock.now(), occurredAt: data.occurred_at && !Number.isNaN(Date.parse(data.occurred_at)) ? new Date(data.occurred_at) : null };
  if (RECEIPT_TYPES.has(data.event_type)) return recordReceipt(o, data, at);

  // Resolve who the event is about before taking the transaction (a plain indexed read).
  const inbound = data.event_type === 'message.received' ? await resolveInbound(o.pool, data) : null;
  return inTransaction(o.pool, async (c) => {
    if (!(await insertEvent(c, eventOf(data, at, { tenantId: inbound?.tenant?.tenant_id })))) return { result: 'duplicate' };

    if (data.event_type === 'message.received') {
      if (!inbound) return { result: 'ignored' };
      if (!inbound.tenant) {
        o.log.info({ to: maskPhone(inbound.to) }, 'inbound message to a number no tenant owns');
        return { result: 'unknown_number' };
      }
      const tenant = inbound.tenant;
      const kw = classifyInbound(inbound.text);
      if (kw.action === 'none') return { result: 'inbound' };
      if (!E164.test(inbound.from)) return { result: 'ignored' };
      if (kw.action === 'opt_out') {
        await c.query(
          `INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source, keyword) VALUES ($1, $2, $3, 'inbound_keyword', $4)
           ON CONFLICT (tenant_id, phone) DO UPDATE SET opted_out_at = EXCLUDED.opted_out_at, source = EXCLUDED.source,
                                                        keyword = EXCLUDED.keyword`,
          [tenant.tenant_id, inbound.from, at.now, kw.keyword],
        );
        o.log.info({ tenantId: tenant.tenant_id, from: maskPhone(inbound.from), keyword: kw.keyword }, 'opt-out recorded');
        return { result: 'opted_out' };
      }
      if (kw.action === 'opt_in') {
        await c.query('DELETE FROM opt_outs WHERE tenant_id = $1 AND phone = $2', [tenant.tenant_id, inbound.from]);
        o.log.info({ tenantId: tenant.tenant_id, from: maskPhone(inbound.from), keyword: kw.keyword }, 'opt-in recorded');
        return { result: 'opted_in' };
      }
      // At most one HELP reply an hour per (tenant, number), whichever api replica takes the event.
      const due = await c.query(
        `INSERT INTO help_replies (tenant_id, phone, replied_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, phone) DO UPDATE SET replied_at = EXCLUDED.replied_at
          WHERE help_replies.replied_at <= EXCLUDED.replied_at - make_interval(secs => $4)
         RETURNING 1`,
        [tenant.tenant_id, inbound.from, at.now, HELP_REPLY_INTERVAL_SECONDS],
      );
      if (due.rowCount === 0) return { result: 'help_throttled' };
      const text = tenant.help_text ?? o.helpText({ id: tenant.tenant_id, name: tenant.name });
      return { result: 'help', help: { tenantId: tenant.tenant_id, from: inbound.from, to: inbound.to, text } };
    }
    return { result: 'recorded' };
  });
}

// One writer per pool: it groups the receipts that arrive while its statements run.
const writers = new WeakMap<Pool, ReceiptWriter>();
function receiptWriter(pool: Pool): ReceiptWriter {
  let w = writers.get(pool);
  if (!w) writers.set(pool, (w = new ReceiptWriter(pool)));
  return w;
}

/**
 * Receipts are two webhooks per message, so their common cases — one that changes
 * nothing (message.sent), a delivered one — are written by the ReceiptWriter, many to
 * a statement under load: the insert, and the delivery made delivered, in one
 * transaction. A failure goes through recordOutcomes in the transaction of its insert.
 */
async function recordReceipt(o: WebhookOptions, data: EventData, at: EventTimes): Promise<{ result: string }> {
  const receipt = o.classify(data);
  const effect = receiptEffect(receipt);
  const providerMessageId = typeof data.payload?.id === 'string' ? data.payload.id : null;
  if (changesNothing(effect) || effect === 'delivered') {
    const ins = await receiptWriter(o.pool).record({
      eventId: data.id,
      eventType: data.event_type,
      providerMessageId,
      payload: data,
      occurredAt: at.occurredAt,
      receivedAt: at.now,
      delivered: effect === 'delivered',
    });
    return { result: ins?.deliveryId == null ? unapplied(ins) : effect };
  }
  return inTransaction(o.pool, async (c) => {
    const ins = await insertEvent(c, eventOf(data, at, { providerMessageId }));
    if (ins?.deliveryId == null) return { result: unapplied(ins) };
    return { result: await applyReceipt(c, ins.deliveryId, receipt, at.now) };
  });
}

