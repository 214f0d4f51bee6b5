import type { Pool } from '../../lib/db/postgres.js';
import { metrics } from '../../lib/metrics.js';

/** One receipt that changes at most its delivery's status to delivered. */
export interface CommonReceipt {
  eventId: string;
  eventType: string;
  providerMessageId: string | null;
  payload: unknown;
  occurredAt: Date | null;
  receivedAt: Date;
  /** Make the matched delivery delivered (only a row still 'sent' changes). */
  delivered: boolean;
}

/** A new event's matched delivery (null: none yet); null for a redelivery (the id is already recorded). */
export type Inserted = { deliveryId: number | null } | null;

/**
 * Writes the common receipts (message.sent, delivered: two webhooks per message) in
 * groups: a receipt that arrives while the connections given to this are busy joins
 * the next statement, so under load one INSERT … SELECT FROM unnest records many
 * events, and makes their deliveries delivered, in one transaction; at low load each
 * is written alone, at once. Each caller is answered only once its statement has
 * committed, so a webhook is acknowledged only when durable, as before.
 */
export class ReceiptWriter {
  private pending: { r: CommonReceipt; resolve: (v: Inserted) => void; reject: (e: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: Pool,
    private readonly opts: { maxInFlight?: number; maxBatch?: number } = {},
  ) {}

  record(r: CommonReceipt): Promise<Inserted> {
    return new Promise((resolve, reject) => {
      this.pending.push({ r, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.pending.length > 0 && this.inFlight < (this.opts.maxInFlight ?? 4)) {
      const batch = this.pending.splice(0, this.opts.maxBatch ?? 200);
      this.inFlight++;
      void this.write(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async write(batch: ReceiptWriter['pending']): Promise<void> {
    metrics.receiptsPerStatement.observe(batch.length);
    try {
      const { rows } = await this.pool.query<{ event_id: string; delivery_id: number | null }>(WRITE_RECEIPTS, [
        batch.map((b) => b.r.eventId),
        batch.map((b) => b.r.eventType),
        batch.map((b) => b.r.providerMessageId),
        batch.map((b) => JSON.stringify(b.r.payload)),
        batch.map((b) => b.r.occurredAt),
        batch.map((b) => b.r.receivedAt),
        batch.map((b) => b.r.delivered),
      ]);
      const inserted = new Map(rows.map((row) => [row.event_id, row.delivery_id]));
      for (const b of batch) {
        // The same event twice in one group: the first is the new one, the rest are redeliveries.
        if (inserted.has(b.r.eventId)) {
          b.resolve({ deliveryId: inserted.get(b.r.eventId)! });
          inserted.delete(b.r.eventId);
        } else b.resolve(null);
      }
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      // One receipt (or a deadlock with another group) must not fail the others: each alone.
      for (const b of batch) await this.write([b]);
    }
  }
}

/**
 * Each event under its id, its delivery (by the provider's message id) resolved in the
 * same statement; the delivered ones make their delivery delivered if the event is new.
 * The UPDATE is markDelivered's (./outcomes.ts): only a row still
 * 'sent' changes, so a late receipt never resurrects a finished row.
 */
export const WRITE_RECEIPTS = `
  WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::boolean[])
                  WITH ORDINALITY AS i (event_id, event_type, provider_message_id, payload, occurred_at, received_at, delivered, ord)
  ),
  event AS (
    INSERT INTO provider_events (provider, event_id, event_type, tenant_id, delivery_id, payload, occurred_at, received_at)
    SELECT DISTINCT ON (i.event_id) 'telnyx', i.event_id, i.event_type, d.tenant_id, d.id, i.payload, i.occurred_at, i.received_at
      FROM input i
      LEFT JOIN LATERAL (SELECT id, tenant_id FROM deliveries WHERE provider_message_id = i.provider_message_id LIMIT 1) d ON true
     ORDER BY i.event_id, i.ord
    ON CONFLICT (provider, event_id) DO NOTHING
    RETURNING event_id, delivery_id, received_at
  ),
  delivered AS (
    UPDATE deliveries d SET status = 'delivered', finalized_at = e.received_at, updated_at = now()
      FROM event e
     WHERE d.id = e.delivery_id AND d.status = 'sent'
       AND EXISTS (SELECT 1 FROM input i WHERE i.event_id = e.event_id AND i.delivered)
  )
  SELECT event_id, delivery_id FROM event`;
