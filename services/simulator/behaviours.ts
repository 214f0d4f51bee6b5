/**
 * Magic recipients of the provider simulator, and the error catalogues it speaks.
 *
 * Tests anywhere in Herald generate recipients here instead of hard-coding numbers,
 * so the convention lives in one place:
 *
 *   SMS   +1 AAA EEE NNNN   (valid NANP numbers; libphonenumber-js/max accepts them)
 *         AAA = 505 → the send request fails with a Telnyx error code (only the codes
 *                     Telnyx answers a send with: request errors 10xxx and 40300)
 *         AAA = 575 → the send is accepted, the message.finalized receipt fails with the code
 *                     (carrier errors 40xxx, as Telnyx reports them: later, with `errors`)
 *         AAA = 585 → accepted; message.finalized says delivery_unconfirmed (no errors):
 *                     the carrier never confirmed. smsNumberUnconfirmed(n).
 *         EEE = 620 + index of the code in TELNYX_CODES (620..699)
 *         NNNN = n, 0..9999, so a test can have many distinct failing numbers
 *         Any other number is delivered normally; smsNumberOk(n) gives distinct ones
 *         (area 206, never in the magic ranges).
 *         AAA = 520 / 530 → the FIRST send to the number is accepted (counted, receipts
 *         posted) and then its response is held past the client's timeout (520) or its
 *         connection reset (530); later sends answer normally. smsNumberAfterAccept(mode, n).
 *   Push  simfail-<FCM errorCode>-<n>:APA91b…   fails with that FCM v1 error
 *         simhold-<n>:… / simreset-<n>:…  first send accepted, then held / reset (as above)
 *         anything else (pushTokenOk(n) gives realistic-looking ones) is accepted.
 *
 * Accepted-then-lost answers are what a real provider does to a client on a bad network
 * day (the request reached Telnyx or FCM and was processed, the answer never arrived);
 * they use only the published send endpoints: no field or route of the simulator's own.
 */

export type TelnyxFailMode = 'send' | 'receipt';

export interface TelnyxCodeInfo {
  code: string;
  title: string;
  detail: string;
  /** HTTP status the simulator answers with when the code fails a send request. */
  httpStatus: number;
}

/**
 * Telnyx messaging error codes the simulator can produce. Titles and the 40300 HTTP
 * status follow Telnyx's published references:
 *   https://developers.telnyx.com/docs/messaging/messages/error-codes
 *   https://developers.telnyx.com/api/errors/40300   (HTTP 409 on send)
 *   https://developers.telnyx.com/development/api-fundamentals/api-errors (10xxx)
 * The order is part of the magic-number convention: append, never reorder.
 */
export const TELNYX_CODES: readonly TelnyxCodeInfo[] = [
  { code: '40001', title: 'Not routable', detail: 'The destination number is either a landline or a non-routable wireless number.', httpStatus: 400 },
  { code: '40002', title: 'Blocked as spam - temporary', detail: 'The message was flagged by a SPAM filter and was not delivered. This is a temporary condition.', httpStatus: 400 },
  { code: '40003', title: 'Blocked as spam - permanent', detail: 'The message was flagged by a SPAM filter and was not delivered. The originating phone number is permanently blocked.', httpStatus: 400 },
  { code: '40004', title: 'Rejected by destination', detail: 'The recipient server is rejecting the message for an unknown reason.', httpStatus: 400 },
  { code: '40005', title: 'Message expired during transmission', detail: 'The message expired before it could be fully delivered to the recipient.', httpStatus: 400 },
  { code: '40006', title: 'Recipient server unavailable', detail: 'The recipient server is unavailable or not responding. This may be a temporary issue.', httpStatus: 400 },
  { code: '40007', title: 'Loop detected', detail: 'Infinite loop detected.', httpStatus: 400 },
  { code: '40008', title: 'Undeliverable', detail: 'The recipient carrier did not accept the message.', httpStatus: 400 },
  { code: '40009', title: 'Invalid message body', detail: 'The message body was invalid.', httpStatus: 400 },
  // 40010 is absent from the public tables cited above; the issue lists it with the permanent codes.
  { code: '40010', title: 'Rejected by carrier', detail: 'The carrier rejected the message.', httpStatus: 400 },
  { code: '40011', title: 'Too many requests', detail: 'Exceeded upstream rate limit. This is a temporary condition.', httpStatus: 400 },
  { code: '40012', title: 'Invalid messaging destination number', detail: 'The destination phone number was rejected by the carrier.', httpStatus: 400 },
  { code: '40013', title: 'Invalid messaging source number', detail: 'The sending phone number was rejected by the carrier.', httpStatus: 400 },
  { code: '40014', title: 'Expired in queue', detail: 'The message sat in queue past its validity period.', httpStatus: 400 },
  { code: '40015', title: 'Internal spam filter', detail: 'The message was blocked by the Telnyx spam filter.', httpStatus: 400 },
  { code: '40300', title: 'Blocked due to STOP message', detail: 'Messages cannot be sent from {src} to {dst} due to an existing block rule.', httpStatus: 409 },
  { code: '10002', title: 'Invalid phone number', detail: 'The phone number is invalid.', httpStatus: 400 },
  { code: '10007', title: 'Unexpected error', detail: 'An unexpected error occured.', httpStatus: 500 },
  { code: '10011', title: 'Too many requests', detail: 'You have exceeded the maximum number of allowed requests.', httpStatus: 429 },
];

const CODE_INDEX = new Map(TELNYX_CODES.map((c, i) => [c.code, i]));
const AREA: Record<TelnyxFailMode, string> = { send: '505', receipt: '575' };
const EXCHANGE_BASE = 620;

export function telnyxCodeInfo(code: string | number): TelnyxCodeInfo | undefined {
  const i = CODE_INDEX.get(String(code));
  return i === undefined ? undefined : TELNYX_CODES[i];
}

/**
 * Where Telnyx reports a code: request errors (10xxx) and 40300 on the send itself;
 * carrier errors (40xxx) only later, in message.finalized's `errors`, with the send
 * accepted (40300 can come either way).
 */
export function reportedBy(code: string): readonly TelnyxFailMode[] {
  if (code === '40300') return ['send', 'receipt'];
  return code.startsWith('40') ? ['receipt'] : ['send'];
}

/**
 * The recipient status message.finalized carries with a failing code: sending_failed
 * when Telnyx itself could not hand the message on (its spam filter, the body, the
 * source number), expired when it timed out in Telnyx's queue, else delivery_failed.
 */
export function finalizedStatus(code: string): 'sending_failed' | 'expired' | 'delivery_failed' {
  if (code === '40009' || code === '40013' || code === '40015') return 'sending_failed';
  if (code === '40014') return 'expired';
  return 'delivery_failed';
}

/**
 * A valid E.164 number that always fails with a Telnyx code: on the send request
 * ('send') or accepted and then failed in its message.finalized receipt ('receipt'),
 * only where Telnyx reports that code (reportedBy).
 */
export function smsNumberFailing(code: string | number, mode: TelnyxFailMode, n = 0): string {
  const i = CODE_INDEX.get(String(code));
  if (i === undefined) throw new Error(`the simulator has no Telnyx code ${code}; known: ${[...CODE_INDEX.keys()].join(' ')}`);
  if (!reportedBy(String(code)).includes(mode)) {
    throw new Error(`Telnyx reports ${code} ${mode === 'send' ? 'in message.finalized, not on the send: use mode receipt' : 'on the send request, not in a receipt: use mode send'}`);
  }
  if (!Number.isInteger(n) || n < 0 || n > 9999) throw new Error(`n must be an integer in 0..9999, got ${n}`);
  return `+1${AREA[mode]}${EXCHANGE_BASE + i}${String(n).padStart(4, '0')}`;
}

const UNCONFIRMED_AREA = '585';

/** A valid US number whose messages are accepted and end delivery_unconfirmed. */
export function smsNumberUnconfirmed(n = 0): string {
  if (!Number.isInteger(n) || n < 0 || n > 999_999) throw new Error(`n must be an integer in 0..999999, got ${n}`);
  return `+1${UNCONFIRMED_AREA}${2_000_000 + n}`;
}

export const isUnconfirmed = (to: string): boolean => to.length === 12 && to.startsWith(`+1${UNCONFIRMED_AREA}`);

/** A distinct, valid, always-delivered US number for each n in 0..7,999,999. */
export function smsNumberOk(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= 8_000_000) throw new Error(`n must be an integer in 0..7999999, got ${n}`);
  return `+1206${2_000_000 + n}`;
}

/** What the simulator will do with an SMS recipient (O(1), no allocation for ordinary numbers). */
export function smsBehaviour(to: string): { mode: TelnyxFailMode; info: TelnyxCodeInfo } | null {
  if (to.length !== 12 || !to.startsWith('+1')) return null;
  const area = to.slice(2, 5);
  const mode: TelnyxFailMode | null = area === AREA.send ? 'send' : area === AREA.receipt ? 'receipt' : null;
  if (!mode) return null;
  const info = TELNYX_CODES[Number(to.slice(5, 8)) - EXCHANGE_BASE];
  // A number made for a mode Telnyx does not report the code in behaves as the code does.
  if (!info) return null;
  return { mode: reportedBy(info.code).includes(mode) ? mode : reportedBy(info.code)[0]!, info };
}

export type FcmErrorCode =
  | 'UNREGISTERED'
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'QUOTA_EXCEEDED'
  | 'SENDER_ID_MISMATCH'
  | 'THIRD_PARTY_AUTH_ERROR';

export interface FcmErrorInfo {
  httpStatus: number;
  /** google.rpc.Code name carried in error.status */
  status: string;
  message: string;
  retryAfter: boolean;
}

/**
 * FCM v1 errors as documented at
 * https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
 * (HTTP status and the canonical google.rpc status each one comes with).
 */
export const FCM_ERRORS: Readonly<Record<FcmErrorCode, FcmErrorInfo>> = {
  UNREGISTERED: { httpStatus: 404, status: 'NOT_FOUND', message: 'Requested entity was not found.', retryAfter: false },
  INVALID_ARGUMENT: { httpStatus: 400, status: 'INVALID_ARGUMENT', message: 'The registration token is not a valid FCM registration token', retryAfter: false },
  UNAVAILABLE: { httpStatus: 503, status: 'UNAVAILABLE', message: 'The service is currently unavailable.', retryAfter: true },
  INTERNAL: { httpStatus: 500, status: 'INTERNAL', message: 'Internal error encountered.', retryAfter: false },
  QUOTA_EXCEEDED: { httpStatus: 429, status: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded for quota metric of service fcm.googleapis.com.', retryAfter: true },
  SENDER_ID_MISMATCH: { httpStatus: 403, status: 'PERMISSION_DENIED', message: 'SenderId mismatch', retryAfter: false },
  THIRD_PARTY_AUTH_ERROR: { httpStatus: 401, status: 'UNAUTHENTICATED', message: 'Auth error from APNS or Web Push Service', retryAfter: false },
};

const TOKEN_TAIL = ':APA91b' + 'HeraldSimulatorToken'.repeat(7);

/** A push token that always fails with the given FCM error code. */
export function pushTokenFailing(errorCode: FcmErrorCode, n = 0): string {
  if (!(errorCode in FCM_ERRORS)) throw new Error(`unknown FCM error code ${errorCode}`);
  return `simfail-${errorCode}-${n}${TOKEN_TAIL}`;
}

/** A distinct, always-accepted push token for each n. */
export function pushTokenOk(n: number): string {
  return `simok-${n}${TOKEN_TAIL}`;
}

export function pushBehaviour(token: string): FcmErrorCode | null {
  if (!token.startsWith('simfail-')) return null;
  const code = token.slice(8, token.indexOf('-', 8));
  return code in FCM_ERRORS ? (code as FcmErrorCode) : null;
}

/** What happens to the answer of a request the simulator accepted (first send to the recipient only). */
export type AfterAccept = 'hold' | 'reset';
const AFTER_ACCEPT_AREA: Record<AfterAccept, string> = { hold: '520', reset: '530' };

/** A valid US number whose first send is accepted and then answered late ('hold') or never ('reset'). */
export function smsNumberAfterAccept(mode: AfterAccept, n = 0): string {
  if (!Number.isInteger(n) || n < 0 || n > 999_999) throw new Error(`n must be an integer in 0..999999, got ${n}`);
  return `+1${AFTER_ACCEPT_AREA[mode]}${2_000_000 + n}`;
}

/** A push token whose first send is accepted and then answered late ('hold') or never ('reset'). */
export function pushTokenAfterAccept(mode: AfterAccept, n = 0): string {
  return `sim${mode}-${n}${TOKEN_TAIL}`;
}

export function afterAcceptBehaviour(channel: 'sms' | 'push', to: string): AfterAccept | null {
  if (channel === 'sms') {
    if (to.length !== 12 || !to.startsWith('+1')) return null;
    const area = to.slice(2, 5);
    return area === AFTER_ACCEPT_AREA.hold ? 'hold' : area === AFTER_ACCEPT_AREA.reset ? 'reset' : null;
  }
  return to.startsWith('simhold-') ? 'hold' : to.startsWith('simreset-') ? 'reset' : null;
}
