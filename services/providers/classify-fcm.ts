import type { Outcome } from './types.js';
import { retryAfterMs } from './classify-telnyx.js';
import { requestMaybeSent, statusMaybeSent } from './unknown-outcome.js';

/**
 * Classify an error firebase-admin reports for one message.
 *
 * FCM v1 error codes — https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
 *   UNREGISTERED (404)            the token is dead                       → invalid_token
 *   INVALID_ARGUMENT (400)        on message.token: a malformed token      → invalid_token
 *                                 anything else (payload too big, …)       → permanent
 *   UNAVAILABLE (503)             overloaded: retry, honour Retry-After    → retryable
 *   INTERNAL (500)                unknown server error                     → retryable
 *   QUOTA_EXCEEDED (429)          rate limit: retry after Retry-After      → retryable
 *   SENDER_ID_MISMATCH (403)      token belongs to another sender          → permanent
 *   THIRD_PARTY_AUTH_ERROR (401)  APNs/web-push credential rejected        → permanent
 * firebase-admin surfaces these as FirebaseMessagingError codes
 * (messaging/registration-token-not-registered, messaging/invalid-argument, …) with the
 * raw response in `httpResponse` — which is where the FcmError detail and Retry-After are.
 */

export const CIRCUIT_OPEN_ERROR_CODE = 'EHERALD_CIRCUIT_OPEN';

interface FirebaseLikeError {
  code?: string;
  message?: string;
  cause?: unknown;
  httpResponse?: { status?: number; headers?: Record<string, unknown>; data?: unknown };
}

interface GoogleErrorBody {
  error?: {
    code?: number;
    message?: string;
    status?: string;
    details?: { '@type'?: string; errorCode?: string; fieldViolations?: { field?: string; description?: string }[] }[];
  };
}

const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';
const BAD_REQUEST_TYPE = 'type.googleapis.com/google.rpc.BadRequest';

/** SDK code (without the messaging/ prefix) → the FCM server code it stands for. */
const SDK_TO_SERVER: Record<string, string> = {
  'registration-token-not-registered': 'UNREGISTERED',
  'installation-id-not-registered': 'UNREGISTERED',
  'invalid-registration-token': 'INVALID_ARGUMENT',
  'invalid-argument': 'INVALID_ARGUMENT',
  'invalid-recipient': 'INVALID_ARGUMENT',
  'invalid-payload': 'INVALID_ARGUMENT',
  'invalid-data-payload-key': 'INVALID_ARGUMENT',
  'payload-size-limit-exceeded': 'INVALID_ARGUMENT',
  'invalid-options': 'INVALID_ARGUMENT',
  'invalid-package-name': 'INVALID_ARGUMENT',
  'server-unavailable': 'UNAVAILABLE',
  'internal-error': 'INTERNAL',
  'message-rate-exceeded': 'QUOTA_EXCEEDED',
  'device-message-rate-exceeded': 'QUOTA_EXCEEDED',
  'topics-message-rate-exceeded': 'QUOTA_EXCEEDED',
  'mismatched-credential': 'SENDER_ID_MISMATCH',
  'third-party-auth-error': 'THIRD_PARTY_AUTH_ERROR',
  'authentication-error': 'AUTHENTICATION_ERROR',
};

function serverCode(body: GoogleErrorBody | undefined): string | undefined {
  return body?.error?.details?.find((d) => d['@type'] === FCM_ERROR_TYPE)?.errorCode;
}

function isTokenViolation(body: GoogleErrorBody | undefined, sdkCode: string, message: string): boolean {
  if (sdkCode === 'invalid-registration-token') return true;
  const violations = body?.error?.details?.filter((d) => d['@type'] === BAD_REQUEST_TYPE).flatMap((d) => d.fieldViolations ?? []) ?? [];
  if (violations.some((v) => v.field === 'message.token')) return true;
  return /registration token/i.test(message);
}

function findCircuitOpen(err: unknown): { retryAfterMs?: number } | null {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: string }).code === CIRCUIT_OPEN_ERROR_CODE) return { retryAfterMs: (e as { retryAfterMs?: number }).retryAfterMs };
  }
  return null;
}

export function classifyFcm(error: unknown): Outcome {
  const err = (error ?? {}) as FirebaseLikeError;
  const fullCode = typeof err.code === 'string' ? err.code : '';
  const message = typeof err.message === 'string' ? err.message : String(error);

  const open = findCircuitOpen(error);
  if (open) {
    return open.retryAfterMs !== undefined
      ? { kind: 'retryable', code: 'circuit_open', reason: 'FCM circuit opened while the request was retrying', fault: 'provider', retryAfterMs: open.retryAfterMs }
      : { kind: 'retryable', code: 'circuit_open', reason: 'FCM circuit opened while the request was retrying', fault: 'provider' };
  }
  // FCM takes no idempotency key either: a lost answer leaves the send unknown (unknown-outcome.ts).
  if (fullCode === 'app/network-timeout') return { kind: 'retryable', code: 'timeout', reason: message, fault: 'provider', maybeSent: true };
  if (fullCode === 'app/network-error') {
    // firebase-admin keeps only the message of the socket error ("... Error code: ECONNRESET").
    const socketCode = /Error code: ([A-Z_]+)/.exec(message)?.[1];
    const sent = requestMaybeSent({ code: socketCode, cause: err.cause });
    return sent ? { kind: 'retryable', code: 'network', reason: message, fault: 'provider', maybeSent: true } : { kind: 'retryable', code: 'network', reason: message, fault: 'provider' };
  }

  const sdkCode = fullCode.startsWith('messaging/') ? fullCode.slice('messaging/'.length) : fullCode;
  const body = (err.httpResponse?.data && typeof err.httpResponse.data === 'object' ? err.httpResponse.data : undefined) as GoogleErrorBody | undefined;
  const status = err.httpResponse?.status;
  const code = serverCode(body) ?? SDK_TO_SERVER[sdkCode] ?? (sdkCode || 'unknown');
  const after = retryAfterMs(err.httpResponse?.headers);
  const maybeSent = statusMaybeSent(status) ? { maybeSent: true } : {};
  // Every retryable FCM answer is the service's or our project's (unavailable, internal,
  // quota, our credential refused): none is about this one token.
  const retryable = (c: string): Outcome => (after !== undefined ? { kind: 'retryable', code: c, reason: message, fault: 'provider', retryAfterMs: after, ...maybeSent } : { kind: 'retryable', code: c, reason: message, fault: 'provider', ...maybeSent });

  // firebase-admin names every UNAUTHENTICATED "third-party-auth-error"; without FCM's own
  // error detail it is our access token that was refused (expired, revoked, another
  // project's): nobody's message is at fault, so the work waits, like any provider outage.
  if (status === 401 && serverCode(body) === undefined && body?.error?.status === 'UNAUTHENTICATED') return retryable('UNAUTHENTICATED');

  switch (code) {
    case 'UNREGISTERED':
      return { kind: 'invalid_token', code, reason: message };
    case 'INVALID_ARGUMENT':
      return isTokenViolation(body, sdkCode, message) ? { kind: 'invalid_token', code, reason: message } : { kind: 'permanent', code, reason: message };
    case 'UNAVAILABLE':
    case 'INTERNAL':
    case 'QUOTA_EXCEEDED':
      return retryable(code);
    case 'SENDER_ID_MISMATCH':
    case 'THIRD_PARTY_AUTH_ERROR':
      return { kind: 'permanent', code, reason: message };
    case 'AUTHENTICATION_ERROR':
      // Our own credential was refused: not this message's fault; hold the work.
      return retryable(code);
  }
  // Anything else: the HTTP status decides; no status means it never got an answer.
  if (status === undefined || status >= 500 || status === 429 || status === 408) return retryable(code);
  return { kind: 'permanent', code, reason: message };
}
