/**
 * What a provider receipt does to its delivery, and the provider_events rows that tie
 * receipts to deliveries (by the provider's message id). The api's webhook verifies
 * and parses; everything here is the delivery core's. The common receipts, grouped
 * many to a statement, go through ./receipt-writer.ts.
 */
import { inTransaction, type Pool, type PoolClient } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import { classifyTelnyxReceipt, type TelnyxReceipt } from '../../services/providers/classify-telnyx.js';
import { markDelivered, recordOutcomes } from './outcomes.js';
import type { Inserted } from './receipt-writer.js';

/** Reads a receipt with the same code table as send errors (services/providers/classify-telnyx.ts). */
export type ClassifyReceipt = (event: unknown) => TelnyxReceipt | null;

/**
 * What a receipt does to its delivery, named as the webhook reports it: delivered;
 * a failure's outcome kind (the same classifier as send errors); 'unconfirmed' (final,
 * the carrier will never say); 'progress' and 'ignored' change nothing.
 */
export function receiptEffect(receipt: TelnyxReceipt | null): string {
  if (!receipt) return 'ignored';
  if (receipt.delivered) return 'delivered';
  if (receipt.outcome && receipt.outcome.kind !== 'accepted') return receipt.outcome.kind;
  if (receipt.final && receipt.status === 'delivery_unconfirmed') return 'unconfirmed';
  return 'progress';
}

export const changesNothing = (effect: string) => effect === 'progress' || effect === 'ignored';

/**
 * Apply a receipt to its delivery: delivered → delivered; a failure → the outcome of
 * the same classifier as send errors, recorded by the same recordOutcomes (retry with
 * backoff, dead-letter at maxAttempts, permanent failure, 40300 opt-out). Only rows
 * still sending or sent change, so a late receipt cannot resurrect a finished row.
 */
export async function applyReceipt(db: PoolClient, deliveryId: number, receipt: TelnyxReceipt | null, now: Date): Promise<string> {
  const effect = receiptEffect(receipt);
  if (effect === 'delivered') {
    await markDelivered(db, deliveryId, now);
  } else if (effect === 'unconfirmed') {
    // The carrier will never say; the message left us and stays "sent", but it is final.
    await db.query(`UPDATE deliveries SET finalized_at = $2, updated_at = now() WHERE id = $1 AND status = 'sent' AND finalized_at IS NULL`, [
      deliveryId,
      now,
    ]);
  } else if (!changesNothing(effect)) {
    await recordOutcomes(db, [{ deliveryId, outcome: receipt!.outcome! }], now);
  }
  return effect;
}

/** An event under its id, with the delivery a receipt is about (by the provider's message id) resolved in the same statement. */
export const INSERT_EVENT = `
  INSERT INTO provider_events (provider, event_id, event_type, tenant_id, delivery_id, payload, occurred_at, received_at)
  SELECT 'telnyx', $1, $2, coalesce(d.tenant_id, $3), d.id, $5::jsonb, $6::timestamptz, $7::timestamptz
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN (SELECT id, tenant_id FROM deliveries WHERE provider_message_id = $4 LIMIT 1) d ON true
  ON CONFLICT (provider, event_id) DO NOTHING RETURNING delivery_id`;


export interface ProviderEvent {
  eventId: string;
  eventType: string;
  tenantId?: string | null;
  providerMessageId?: string | null;
  payload: unknown;
  occurredAt: Date | null;
  receivedAt: Date;
}

/** Record a provider event once (by its id). */
export async function insertEvent(db: PoolClient | Pool, e: ProviderEvent): Promise<Inserted> {
  const r = await db.query<{ delivery_id: number | null }>(INSERT_EVENT, [
    e.eventId, e.eventType, e.tenantId ?? null, e.providerMessageId ?? null, e.payload, e.occurredAt, e.receivedAt,
  ]);
  return r.rowCount === 0 ? null : { deliveryId: r.rows[0]!.delivery_id };
}

/**
 * Receipts recorded before their delivery carried the provider message id (the
 * provider fired the webhook before the worker committed the send) are matched
 * again here: the api process runs this every few seconds. SKIP LOCKED lets several
 * replicas share it; a receipt older than the window is no longer expected to match
 * (it was for a message Herald did not send).
 */
export async function matchPendingReceipts(
  pool: Pool,
  clock: Clock,
  opts: { classify?: ClassifyReceipt; windowSeconds?: number; limit?: number } = {},
): Promise<number> {
  const classify = opts.classify ?? classifyTelnyxReceipt;
  const now = clock.now();
  const since = new Date(now.getTime() - (opts.windowSeconds ?? 3600) * 1000);
  return inTransaction(pool, async (c) => {
    const { rows } = await c.query<{ id: number; payload: unknown; delivery_id: number; tenant_id: string }>(
      `SELECT e.id, e.payload, d.id AS delivery_id, d.tenant_id
         FROM provider_events e
         JOIN deliveries d ON d.provider_message_id = e.payload->'payload'->>'id'
        WHERE e.provider = 'telnyx' AND e.delivery_id IS NULL
          AND e.event_type IN ('message.sent', 'message.finalized') AND e.received_at > $1
        ORDER BY e.occurred_at NULLS LAST, e.id
        LIMIT $2
        FOR UPDATE OF e SKIP LOCKED`,
      [since, opts.limit ?? 500],
    );
    for (const r of rows) {
      await applyReceipt(c, r.delivery_id, classify(r.payload), now);
      await c.query('UPDATE provider_events SET delivery_id = $2, tenant_id = $3 WHERE id = $1', [r.id, r.delivery_id, r.tenant_id]);
    }
    return rows.length;
  });
}
