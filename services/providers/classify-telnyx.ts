import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'telnyx';
import type { Fault, Outcome } from './types.js';
import { requestMaybeSent, statusMaybeSent } from './unknown-outcome.js';

/**
 * One classifier for Telnyx, used for send errors (the SDK's exceptions) and for
 * delivery receipts (message.finalized errors[]) alike, so a code means the same
 * thing wherever it shows up.
 *
 * Sources:
 *   Delivery errors 40xxx — https://developers.telnyx.com/docs/messaging/messages/error-codes
 *     ("Blocked as spam (temporary)", "Recipient unavailable: retry with exponential
 *     backoff", "Rejected by destination: retry after delay", "Rate limit exceeded
 *     (upstream)", "Expired in queue" are temporary; "Not routable", "Blocked as spam
 *     (permanent)", "Invalid message body", invalid destination/source are not).
 *   40300 "Blocked due to STOP message", HTTP 409 — https://developers.telnyx.com/api/errors/40300
 *   API errors 10xxx — https://developers.telnyx.com/development/api-fundamentals/api-errors
 *   Issue #2 of this project: 40002, 40004, 40006 retry; 40001, 40003, 40009 are permanent;
 *   40300 means the recipient replied STOP.
 */

type Kind = 'retryable' | 'permanent' | 'opted_out';

const CODES: Record<string, Kind> = {
  // delivery errors
  '40001': 'permanent', // not routable (landline / non-routable wireless)
  '40002': 'retryable', // blocked as spam — temporary
  '40003': 'permanent', // blocked as spam — permanent (the sending number is blocked)
  '40004': 'retryable', // rejected by destination, unknown reason: retry after delay
  '40005': 'retryable', // expired during transmission
  '40006': 'retryable', // recipient server unavailable
  '40007': 'permanent', // loop detected
  '40008': 'retryable', // undeliverable, "general purpose": bounded by maxAttempts
  '40009': 'permanent', // invalid message body
  '40010': 'permanent', // (not in the public table; the issue lists it as permanent)
  '40011': 'retryable', // upstream rate limit, "a temporary condition"
  '40012': 'permanent', // invalid destination number
  '40013': 'permanent', // invalid source number
  '40014': 'retryable', // expired in queue
  '40015': 'permanent', // Telnyx spam filter
  '40300': 'opted_out', // the recipient sent STOP to this sender
  // API request errors
  '10001': 'permanent', // inactive phone number
  '10002': 'permanent', // invalid phone number
  '10004': 'permanent', // missing required parameter
  '10007': 'retryable', // unexpected error (their side)
  '10008': 'retryable', // request timeout
  '10009': 'retryable', // authentication failed: our configuration, not this recipient — hold the work
  '10010': 'retryable', // authorization failed: likewise
  '10011': 'retryable', // too many requests
  '10015': 'permanent', // bad request
  '10016': 'permanent', // not +E.164
};

export interface TelnyxErrorObject {
  code?: string | number;
  title?: string;
  detail?: string;
}

/** API errors that are Telnyx's side or our account's (their servers, auth, rate limit): never this recipient's. */
const PROVIDER_CODES = new Set(['10007', '10008', '10009', '10010', '10011']);

function byCode(code: string, reason: string, httpStatus?: number, retryAfterMs?: number): Outcome {
  let kind = CODES[code];
  let fault: Fault = PROVIDER_CODES.has(code) ? 'provider' : 'recipient';
  if (!kind) {
    // Unknown code: let the HTTP status decide; an unknown delivery error is not retried
    // (each attempt is billed and nothing says it would do better).
    kind = httpStatus !== undefined && (httpStatus >= 500 || httpStatus === 429 || httpStatus === 408) ? 'retryable' : 'permanent';
    fault = 'provider';
  }
  if (kind === 'retryable') return retryAfterMs !== undefined ? { kind, code, reason, fault, retryAfterMs } : { kind, code, reason, fault };
  return { kind, code, reason };
}

function firstError(body: unknown): TelnyxErrorObject | undefined {
  if (Array.isArray(body)) return body[0] as TelnyxErrorObject | undefined;
  if (body && typeof body === 'object' && Array.isArray((body as { errors?: unknown }).errors)) {
    return (body as { errors: TelnyxErrorObject[] }).errors[0];
  }
  return undefined;
}

function describe(e: TelnyxErrorObject | undefined, fallback: string): string {
  if (!e) return fallback;
  return [e.title, e.detail].filter(Boolean).join(': ') || fallback;
}

/** Retry-After in ms from a Headers object or a plain record (seconds or HTTP date). */
export function retryAfterMs(headers: Headers | Record<string, unknown> | undefined): number | undefined {
  if (!headers) return undefined;
  const raw = headers instanceof Headers ? headers.get('retry-after') : (headers['retry-after'] as string | undefined);
  if (raw === null || raw === undefined || raw === '') return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(String(raw));
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * Classify what Telnyx said went wrong: an exception thrown by the SDK, the errors
 * array of a message (receipt payload), or a message.finalized event/payload.
 */
export function classifyTelnyx(source: unknown): Outcome {
  // Telnyx takes no idempotency key: an answer lost after the request went out leaves the
  // send unknown (unknown-outcome.ts says per error), and the next attempt is flagged.
  if (source instanceof APIConnectionTimeoutError) return { kind: 'retryable', code: 'timeout', reason: 'Telnyx request timed out', fault: 'provider', maybeSent: true };
  if (source instanceof APIConnectionError) {
    const cause = (source as { cause?: unknown }).cause;
    const outcome: Outcome = { kind: 'retryable', code: 'connection', reason: `Telnyx connection failed: ${cause instanceof Error ? cause.message : source.message}`, fault: 'provider' };
    return requestMaybeSent(cause) ? { ...outcome, maybeSent: true } : outcome;
  }
  if (source instanceof APIError) {
    const status = source.status;
    const e = firstError(source.error);
    const after = retryAfterMs(source.headers);
    if (e?.code !== undefined) {
      const o = byCode(String(e.code), describe(e, source.message), status, after);
      return o.kind === 'retryable' && statusMaybeSent(status) ? { ...o, maybeSent: true } : o;
    }
    const reason = source.message;
    if (status === undefined || status >= 500 || status === 429 || status === 408) {
      const o: Outcome = after !== undefined ? { kind: 'retryable', code: `http_${status ?? 0}`, reason, fault: 'provider', retryAfterMs: after } : { kind: 'retryable', code: `http_${status ?? 0}`, reason, fault: 'provider' };
      return statusMaybeSent(status) ? { ...o, maybeSent: true } : o;
    }
    if (status === 401 || status === 403) return { kind: 'retryable', code: `http_${status}`, reason, fault: 'provider' };
    return { kind: 'permanent', code: `http_${status}`, reason };
  }
  // A receipt: the event envelope, its data, the payload, or the errors array itself.
  const payload = receiptPayload(source);
  const e = firstError(payload ?? source);
  if (e?.code !== undefined) return byCode(String(e.code), describe(e, 'Telnyx delivery error'));
  if (payload) {
    const status = recipientStatus(payload);
    if (status === 'expired') return { kind: 'retryable', code: 'expired', reason: 'Telnyx reports the message expired', fault: 'recipient' };
    return { kind: 'retryable', code: status ?? 'unknown', reason: `Telnyx reports ${status ?? 'a failure'} without an error code`, fault: 'recipient' };
  }
  if (source instanceof Error) return { kind: 'retryable', code: 'exception', reason: source.message, fault: 'provider' };
  return { kind: 'retryable', code: 'unknown', reason: String(source), fault: 'recipient' };
}

export interface TelnyxReceipt {
  eventType: string;
  eventId?: string;
  messageId: string;
  /** the recipient's status: queued, sending, sent, delivered, delivery_failed, sending_failed, expired, … */
  status: string;
  /** true for message.finalized: nothing more will be reported for this message */
  final: boolean;
  delivered: boolean;
  /** what the failure means for the delivery; null when delivered or not yet final */
  outcome: Outcome | null;
}

const FAILED = new Set(['delivery_failed', 'sending_failed', 'expired', 'delivery_unconfirmed_failed']);

/**
 * Read a Telnyx message webhook (envelope `{data:{event_type,payload}}`, or its `data`)
 * and judge it with the same code table as send errors.
 */
export function classifyTelnyxReceipt(event: unknown): TelnyxReceipt | null {
  const data = eventData(event);
  if (!data) return null;
  const payload = data.payload as Record<string, unknown> | undefined;
  if (!payload || typeof payload.id !== 'string') return null;
  const eventType = typeof data.event_type === 'string' ? data.event_type : '';
  const status = recipientStatus(payload) ?? 'unknown';
  const final = eventType === 'message.finalized';
  const delivered = status === 'delivered';
  const failed = FAILED.has(status) || (final && !delivered && Array.isArray(payload.errors) && payload.errors.length > 0);
  return {
    eventType,
    eventId: typeof data.id === 'string' ? data.id : undefined,
    messageId: payload.id,
    status,
    final,
    delivered,
    outcome: failed ? classifyTelnyx(payload) : null,
  };
}

function eventData(event: unknown): Record<string, unknown> | null {
  if (!event || typeof event !== 'object') return null;
  const o = event as Record<string, unknown>;
  if (o.data && typeof o.data === 'object' && 'event_type' in o.data) return o.data;
  if ('event_type' in o) return o;
  return null;
}

function receiptPayload(source: unknown): Record<string, unknown> | null {
  const data = eventData(source);
  if (data?.payload && typeof data.payload === 'object') return data.payload as Record<string, unknown>;
  if (source && typeof source === 'object' && !Array.isArray(source) && ('to' in source || 'record_type' in source)) {
    return source;
  }
  return null;
}

function recipientStatus(payload: Record<string, unknown>): string | undefined {
  const to = payload.to;
  if (Array.isArray(to) && to[0] && typeof to[0] === 'object') return (to[0] as { status?: string }).status;
  return undefined;
}
