import type { Outcome, WaitOutcome } from '../../services/providers/types.js';
import { metrics } from '../../lib/metrics.js';
import { retryDelayMs } from './backoff.js';

interface Queryable {
  query<R = unknown>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}


export interface DeliveryResult {
  deliveryId: number;
  outcome: Outcome | WaitOutcome;
}

const ACTIVE_STATES = `('sending', 'sent')`;

/**
 * Record what happened to a set of deliveries in one statement — for send
 * results and for provider receipts alike, so both follow the same rules:
 * accepted → sent; retryable → retry after backoff (dead-lettered with the
 * reason once maxAttempts is spent); permanent → failed, this row only;
 * opted_out → failed and the number added to the tenant's opt-out list;
 * invalid_token → failed and the device token deactivated; wait → retry without
 * spending an attempt. A retry whose answer was lost (maybeSent) is marked
 * outcome_unknown, so its resend is flagged possible_duplicate when claimed. Only rows still in flight (sending) or sent (a later
 * receipt) change, so a late or repeated report cannot resurrect a finished row.
 */
export async function recordOutcomes(db: Queryable, results: DeliveryResult[], now: Date): Promise<void> {
  if (results.length === 0) return;
  const ids: number[] = [];
  const kinds: string[] = [];
  const providerIds: (string | null)[] = [];
  const codes: (string | null)[] = [];
  const reasons: (string | null)[] = [];
  const delays: number[] = [];
  const maybeSent: boolean[] = [];
  for (const { deliveryId, outcome } of results) {
    maybeSent.push((outcome.kind === 'retryable' || outcome.kind === 'wait') && outcome.maybeSent === true);
    ids.push(deliveryId);
    kinds.push(outcome.kind);
    providerIds.push(outcome.kind === 'accepted' ? outcome.providerMessageId : null);
    codes.push(('code' in outcome ? outcome.code : null) ?? null);
    reasons.push('reason' in outcome ? outcome.reason : null);
    delays.push(outcome.kind === 'retryable' || outcome.kind === 'wait' ? (outcome.retryAfterMs ?? 0) : 0);
  }
  // Backoff is computed here per row (it needs the row's attempt count), so read them
  // first — unless every send was accepted, the common case, which needs nothing.
  const { rows } = kinds.every((k) => k === 'accepted')
    ? { rows: [] }
    : await db.query<{ id: number; attempts: number; max_attempts: number; channel: string; expires_at: Date }>(
        `SELECT d.id, d.attempts, b.max_attempts, d.channel, d.expires_at FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id
          WHERE d.id = ANY($1::bigint[]) AND d.status IN ${ACTIVE_STATES}`,
        [ids],
      );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const nextAt: (Date | null)[] = [];
  const finalKinds: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    const row = byId.get(ids[i]!);
    let kind = kinds[i]!;
    let next: Date | null = null;
    if (row && kind === 'retryable') {
      if (row.attempts >= row.max_attempts) {
        kind = 'dead';
        metrics.deadLetters.inc({ channel: row.channel });
      } else {
        next = new Date(now.getTime() + retryDelayMs(row.attempts, { retryAfterMs: delays[i] }));
        metrics.retries.inc({ channel: row.channel, reason: codes[i] ?? 'unknown' });
      }
    } else if (row && kind === 'wait') {
      next = new Date(now.getTime() + Math.max(delays[i]!, 100));
    }
    // A row never waits past its expiry: it could no longer arrive in time.
    if (row && next && next >= row.expires_at) {
      kind = 'expired';
      next = null;
      metrics.expired.inc({ channel: row.channel });
    } else if (row && kind !== 'accepted') {
      metrics.messagesFailed.inc({ channel: row.channel, reason: kind });
    }
    finalKinds.push(kind);
    nextAt.push(next);
  }

  await db.query(
    `UPDATE deliveries d SET
        status = CASE u.kind WHEN 'accepted' THEN 'sent' WHEN 'retryable' THEN 'retry' WHEN 'wait' THEN 'retry'
                             WHEN 'dead' THEN 'dead' WHEN 'expired' THEN 'expired' ELSE 'failed' END,
        provider_message_id = coalesce(u.pid, d.provider_message_id),
        sent_at = CASE WHEN u.kind = 'accepted' THEN $7::timestamptz ELSE d.sent_at END,
        error_code = CASE WHEN u.kind = 'accepted' THEN NULL ELSE u.code END,
        last_error = CASE WHEN u.kind = 'accepted' THEN NULL
                          WHEN u.kind = 'dead' THEN 'dead-lettered after ' || d.attempts || ' attempts: ' || coalesce(u.reason, '')
                          WHEN u.kind = 'expired' THEN 'expired waiting to retry: ' || coalesce(u.reason, '')
                          ELSE u.reason END,
        attempts = CASE WHEN u.kind = 'wait' THEN greatest(d.attempts - 1, 0) ELSE d.attempts END,
        next_attempt_at = u.next_at,
        -- A resend after a lost answer is a possible duplicate: the next claim flags it.
        outcome_unknown = u.kind IN ('retryable', 'wait') AND u.maybe_sent,
        finalized_at = CASE WHEN u.kind IN ('permanent', 'opted_out', 'invalid_token', 'dead', 'expired') THEN $7::timestamptz ELSE NULL END,
        claimed_by = NULL,
        updated_at = now()
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $8::boolean[])
            AS u(id, kind, pid, code, reason, next_at, maybe_sent)
      WHERE d.id = u.id AND d.status IN ${ACTIVE_STATES}`,
    [ids, finalKinds, providerIds, codes, reasons, nextAt, now, maybeSent],
  );

  const optedOut = results.filter((r) => r.outcome.kind === 'opted_out').map((r) => r.deliveryId);
  if (optedOut.length > 0) {
    await db.query(
      `INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source)
       SELECT tenant_id, address, $2, 'provider_40300' FROM deliveries WHERE id = ANY($1::bigint[]) AND channel = 'sms'
       ON CONFLICT (tenant_id, phone) DO NOTHING`,
      [optedOut, now],
    );
  }
  const deadTokens = results.filter((r) => r.outcome.kind === 'invalid_token');
  if (deadTokens.length > 0) {
    await db.query(
      `UPDATE device_tokens t SET active = false, invalidated_at = $3, invalid_reason = u.reason
         FROM unnest($1::bigint[], $2::text[]) AS u(id, reason)
         JOIN deliveries d ON d.id = u.id
        WHERE t.id = d.device_token_id AND t.active`,
      [deadTokens.map((r) => r.deliveryId), deadTokens.map((r) => ('code' in r.outcome ? r.outcome.code : 'invalid')), now],
    );
  }
}

/** A receipt said the message reached the handset. */
export async function markDelivered(db: Queryable, deliveryId: number, at: Date): Promise<boolean> {
  const r = await db.query(
    `UPDATE deliveries SET status = 'delivered', finalized_at = $2, updated_at = now()
      WHERE id = $1 AND status = 'sent'`,
    [deliveryId, at],
  );
  return (r.rowCount ?? 0) > 0;
}
