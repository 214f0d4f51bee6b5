/**
 * What the worker needs from a provider, whatever the provider. Adapters turn SDK
 * results and errors into these shapes; every error goes through the provider's
 * classifier so send errors and later receipts are judged by the same rules.
 */

/**
 * Whose trouble a retryable failure is, decided once by the provider's classifier:
 * 'provider' (its servers erroring or overloaded, timeouts, connection errors, our own
 * credentials refused: nothing about this recipient, so it spends no attempt and counts
 * against the provider's circuit) or 'recipient' (a temporary answer about this one
 * recipient: retried with backoff, bounded by maxAttempts).
 */
export type Fault = 'provider' | 'recipient';

export type Outcome =
  /** Accepted by the provider; a receipt may still report a failure later. */
  | { kind: 'accepted'; providerMessageId: string }
  /**
   * A temporary problem: try again later (after retryAfterMs if the provider said).
   * maybeSent: the request reached the provider and its answer was lost (timeout, reset
   * after the request was written, a 5xx other than 503): the provider may have sent it,
   * so the next attempt is a possible duplicate (neither Telnyx nor FCM takes an id that
   * would let it drop the second one).
   */
  | { kind: 'retryable'; code: string; reason: string; fault: Fault; retryAfterMs?: number; maybeSent?: boolean }
  /** This delivery can never succeed: fail it, and only it. */
  | { kind: 'permanent'; code: string; reason: string }
  /** The recipient opted out at the carrier (Telnyx 40300): record the opt-out. */
  | { kind: 'opted_out'; code: string; reason: string }
  /** The device token is dead (FCM UNREGISTERED / invalid): deactivate it. */
  | { kind: 'invalid_token'; code: string; reason: string };

/**
 * An outcome the worker decides without the provider's answer: the provider's circuit is
 * open, or the failure is the provider's (fault 'provider'), so the row waits without
 * spending an attempt.
 */
/** code 'provider_outage': it waits out the provider's outage, and is due again the moment the provider is back. */
export type WaitOutcome = { kind: 'wait'; reason: string; retryAfterMs: number; maybeSent?: boolean; code?: typeof PROVIDER_OUTAGE };
export const PROVIDER_OUTAGE = 'provider_outage';

export interface SmsMessage {
  from: string;
  to: string;
  text: string;
  messagingProfileId?: string;
  webhookUrl?: string;
}

export interface PushMessage {
  /** Exactly one of token or topic. */
  token?: string;
  topic?: string;
  title?: string;
  body: string;
  data?: Record<string, string>;
}

export interface SmsProvider {
  readonly name: 'telnyx';
  send(message: SmsMessage): Promise<Outcome>;
}

export interface PushProvider {
  readonly name: 'fcm';
  /** At most 500 messages, one outcome per message in the same order. */
  sendEach(messages: PushMessage[]): Promise<Outcome[]>;
}

/** Thrown by a provider wrapper when its circuit is open: the work waits, it does not fail. */
export class CircuitOpenError extends Error {
  constructor(
    readonly provider: string,
    readonly retryAfterMs: number,
  ) {
    super(`${provider} circuit is open; retry in ${retryAfterMs} ms`);
    this.name = 'CircuitOpenError';
  }
}
