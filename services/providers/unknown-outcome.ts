/**
 * Was a failed request possibly carried out by the provider? Neither Telnyx nor FCM
 * takes a client-supplied id that would let it drop a repeat, so a resend after an
 * unknown outcome is always a possible duplicate. Per error:
 *   - timeout after the request went out                        → unknown (maybe sent)
 *   - connection reset / hang-up after the request was written  → unknown
 *   - connection refused, DNS, TLS, reset before the request was fully written → not sent
 *   - HTTP 503 (RFC 9110: the server could not handle the request) and 429 → refused, not sent
 *   - any other 5xx (500, 502, 504, ...): the server or a gateway failed while handling it → unknown
 *   - 4xx, or any answer with a body that names the outcome                → known
 */

/** Error codes that mean the request never reached the provider. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED',
  'EHERALD_CIRCUIT_OPEN',
]);

/** For a transport error (with its cause chain): false only when the request surely never left. */
export function requestMaybeSent(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const sent = (e as { requestSent?: unknown }).requestSent;
    if (typeof sent === 'boolean') return sent;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_SENT_CODES.has(code)) return false;
  }
  return true;
}

/** For an HTTP answer without a usable outcome. */
export const statusMaybeSent = (status: number | undefined): boolean => status !== undefined && status >= 500 && status !== 503;
