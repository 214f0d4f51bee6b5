/**
 * The worker's transitions on delivery rows: load what a job names (loadBatch), claim
 * rows right before they are sent (claim: queued → sending), and record rows that are
 * settled without a send (settleUnsent: skipped, deferred, held, cancelled, expired).
 * Outcomes of sends are recorded by outcomes.ts (recordOutcomes).
 */
import type { Pool } from '../../lib/db/postgres.js';
import type { DeliverJob } from '../../lib/queue.js';
import { countSegments } from './segments.js';
import type { RateKey } from './rate-limit.js';

interface Queryable {
  query<R = unknown>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** A delivery row with everything a send decision needs, read when the job runs. */
export interface DeliveryRow {
  id: number;
  channel: 'sms' | 'push';
  address: string;
  recipient_key: string;
  due_at: Date;
  expires_at: Date;
  broadcast_id: string;
  message_text: string;
  message_title: string | null;
  suspended: boolean;
  cancelled_at: Date | null;
  priority: 'normal' | 'urgent';
  rate_per_second: number | null;
  tenant_id: string;
  sms_per_second: number;
  push_per_second: number;
  quiet_start: string | null;
  quiet_end: string | null;
  tz: string;
  messaging_profile_id: string | null;
  opted_out: boolean;
  contact_gone: boolean;
  no_consent: boolean;
  token_active: boolean;
}

export interface SendingNumber {
  phone_number: string;
  kind: 'toll_free' | '10dlc' | 'long_code' | 'short_code';
  campaign_id: string | null;
  per_second: number;
}

const SELECT_ROWS = `
  SELECT d.id, d.channel, d.address, d.recipient_key, d.due_at, d.expires_at,
         b.id AS broadcast_id, b.message_text, b.message_title, b.suspended, b.cancelled_at, b.priority, b.rate_per_second,
         t.id AS tenant_id, t.sms_per_second, t.push_per_second,
         t.quiet_hours_start::text AS quiet_start, t.quiet_hours_end::text AS quiet_end,
         coalesce(c.time_zone, t.default_time_zone) AS tz, t.messaging_profile_id,
         (o.phone IS NOT NULL) AS opted_out,
         (d.contact_id IS NOT NULL AND c.id IS NULL) AS contact_gone,
         (d.channel = 'sms' AND c.id IS NOT NULL AND NOT c.sms_consent) AS no_consent,
         (d.device_token_id IS NULL OR coalesce(dt.active, false)) AS token_active
    FROM deliveries d
    JOIN broadcasts b ON b.id = d.broadcast_id
    JOIN tenants t ON t.id = d.tenant_id
    LEFT JOIN contacts c ON c.id = d.contact_id
    LEFT JOIN opt_outs o ON d.channel = 'sms' AND o.tenant_id = d.tenant_id AND o.phone = d.address
    LEFT JOIN device_tokens dt ON dt.id = d.device_token_id`;

/** A batch job's rows: $1 occurrence, $2 batch number. */
export const SELECT_BATCH_ROWS = `${SELECT_ROWS} WHERE d.occurrence_id = $1 AND d.batch_no = $2 AND d.status = 'queued' ORDER BY d.id`;
/** A sweeper job's rows: $1 delivery ids. */
export const SELECT_ROWS_BY_ID = `${SELECT_ROWS} WHERE d.id = ANY($1::bigint[]) AND d.status = 'queued' ORDER BY d.id`;

/** The queued rows a deliver job names (an occurrence's batch, or delivery ids). */
export async function loadBatch(pool: Queryable, job: DeliverJob): Promise<DeliveryRow[]> {
  if (job.deliveryIds?.length) {
    return (await pool.query<DeliveryRow>(SELECT_ROWS_BY_ID, [job.deliveryIds])).rows;
  }
  if (job.occurrenceId !== undefined && job.batchNo !== undefined) {
    return (await pool.query<DeliveryRow>(SELECT_BATCH_ROWS, [job.occurrenceId, job.batchNo])).rows;
  }
  throw new Error('a deliver job names neither an occurrence batch nor delivery ids');
}

/** The tenant's sending numbers, in a stable order (a batch picks one by its number). */
export async function sendingNumbers(pool: Queryable, tenantId: string): Promise<SendingNumber[]> {
  return (await pool.query<SendingNumber>(
    'SELECT phone_number, kind, campaign_id, per_second FROM sending_numbers WHERE tenant_id = $1 ORDER BY id', [tenantId])).rows;
}

/** A row recorded without a send, and why. */
export type Unsent =
  | { id: number; status: 'cancelled' | 'held' | 'expired' | 'skipped'; reason: string }
  | { id: number; status: 'deferred'; until: Date; reason: string };

/**
 * Record queued rows that are not sent now: skipped, expired and cancelled are final;
 * held waits for a resume, deferred until `until`. Only rows still queued change.
 */
export async function settleUnsent(db: Queryable, rows: Unsent[], now: Date): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `UPDATE deliveries d SET status = u.status, last_error = u.reason, next_attempt_at = u.next_at,
            finalized_at = CASE WHEN u.status IN ('skipped', 'expired', 'cancelled') THEN $5::timestamptz END, updated_at = now()
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, status, reason, next_at)
      WHERE d.id = u.id AND d.status = 'queued'`,
    [rows.map((r) => r.id), rows.map((r) => r.status), rows.map((r) => r.reason), rows.map((r) => (r.status === 'deferred' ? r.until : null)), now],
  );
}

/** A bucket shared fairly: the request is `party` there, weighing `weight` (the tenant's plan when omitted). */
export interface FairLevel {
  key: string;
  party: string;
  weight?: number;
}

/** What a claim asks for: these rows of one broadcast and tenant, for this worker in this lane. */
export interface ClaimRequest {
  ids: number[];
  workerId: string;
  broadcastId: string;
  tenantId: string;
  urgent: boolean;
  lane: string;
  /** The worker lease (seconds): a lane's share counts workers seen within it. */
  leaseSeconds: number;
  /** SMS only: the segments of the text as loaded (to bill it), and the text itself. */
  sms?: { segments: number; encoding: string; text: string };
  /** The buckets the rows' sends take a token each from (times segments); none: no limit. */
  keys?: RateKey[];
  /** Of those, the ones shared fairly, outermost first (the account between tenants first). */
  fair?: FairLevel[];
}

export interface Claim {
  /** Rows this worker now owns (queued → sending). */
  owned: Set<number>;
  /** Of those, rows whose last attempt's answer was lost: flagged possible duplicates. */
  flagged: number;
  /** The message as it is at the instant of the claim: an edit reaches every row not yet claimed. */
  text: string;
  title: string | null;
  /** Set when the broadcast was suspended or cancelled meanwhile: claim nothing more. */
  halt?: 'held' | 'cancelled';
  /**
   * The lane's verdict: 'share' (ahead of its weight: ask again), 'busy' (stayed ahead:
   * offer the rest to the other lanes), 'closed' (takes none of it: hand the rest back);
   * or 'wait': the shared buckets have no tokens for this tenant now (hand the rest back
   * for waitMs); 'slow': only a bucket of these rows has none (a sending number, a
   * campaign, the broadcast's rate): hand back the rows that need it.
   */
  lane: 'ok' | 'share' | 'busy' | 'closed' | 'wait' | 'slow';
  /** With 'wait' or 'slow': how long until asking again is worth it. */
  waitMs?: number;
  /** The tenant's share of the outermost fair bucket among the tenants wanting it now. */
  share?: number;
}

/**
 * $1 ids, $2 worker, $3 segments, $4 encoding, $5 broadcast, $6 lane, $7 tenant, $8 urgent,
 * $9 worker lease seconds, $10 bucket keys, $11 their rates, $12 tokens, $13 fair buckets,
 * $14 parties, $15 weights (null: the tenant's plan weight). The lane's admission, the fair
 * split of the shared buckets (herald_claim_admit) and the claim are one statement, so a
 * weight change reaches the very next chunk and rows are claimed only with their tokens.
 */
export const CLAIM_ROWS = `
  WITH b AS (SELECT message_text, message_title, suspended, cancelled_at IS NOT NULL AS cancelled FROM broadcasts WHERE id = $5),
       w AS (SELECT coalesce(p.fair_share_weight, 1)::float8 AS plan_weight
               FROM (SELECT 1) one LEFT JOIN tenants t ON t.id = $7 LEFT JOIN tenant_plans p ON p.plan = t.plan),
       adm AS (
         SELECT a.verdict, a.wait_s, a.share
           FROM b, w, LATERAL herald_claim_admit($6, $7, cardinality($1::bigint[]), $8, $9, $10::text[], $11::float8[], $12::float8,
                  $13::text[], $14::text[], (SELECT array_agg(coalesce(x, w.plan_weight)) FROM unnest($15::float8[]) x)) a
          WHERE NOT b.suspended AND NOT b.cancelled),
       claimed AS (
         UPDATE deliveries SET status = 'sending', attempts = attempts + 1, claimed_by = $2, claimed_at = now(), lane = $6,
                segments = coalesce($3, segments), encoding = coalesce($4, encoding), updated_at = now(),
                -- the last attempt's answer was lost: this send may be the recipient's second
                possible_duplicate = possible_duplicate OR outcome_unknown, outcome_unknown = false
          WHERE id = ANY($1::bigint[]) AND status = 'queued'
            AND (SELECT verdict FROM adm) = 'ok'
         RETURNING id, possible_duplicate),
       -- rows whose flag this claim set (the snapshot is the one before the update)
       flagged AS (SELECT count(*)::int AS n FROM deliveries WHERE id IN (SELECT id FROM claimed) AND outcome_unknown)
  SELECT (SELECT array_agg(id) FROM claimed) AS ids, (SELECT n FROM flagged) AS flagged,
         coalesce((SELECT verdict FROM adm), 'ok') AS verdict, (SELECT wait_s FROM adm) AS wait_s, (SELECT share FROM adm) AS share, b.* FROM b`;

/**
 * queued → sending for these rows, in the same statement that admits them (lane weight,
 * fair share, tokens) and reads the broadcast, so the text sent is the text at claim time
 * and a suspension or cancellation stops the very next claim.
 */
export async function claim(pool: Pool, r: ClaimRequest): Promise<Claim> {
  const keys = r.keys ?? [];
  const fair = (r.fair ?? []).filter((f) => keys.some((k) => k.key === f.key));
  const tokens = r.ids.length * (r.sms?.segments ?? 1);
  const { rows } = await pool.query<{ ids: number[] | null; flagged: number; verdict: Claim['lane']; wait_s: number | null; share: number | null; message_text: string; message_title: string | null; suspended: boolean; cancelled: boolean }>(
    CLAIM_ROWS,
    [r.ids, r.workerId, r.sms?.segments ?? null, r.sms?.encoding ?? null, r.broadcastId, r.lane, r.tenantId, r.urgent, r.leaseSeconds,
      keys.map((k) => k.key), keys.map((k) => k.perSecond), tokens, fair.map((f) => f.key), fair.map((f) => f.party), fair.map((f) => f.weight ?? null)],
  );
  const row = rows[0];
  if (!row) return { owned: new Set(), flagged: 0, text: '', title: null, halt: 'cancelled', lane: 'ok' };
  const owned = new Set((row.ids ?? []).map(Number));
  // The lane counted, and the buckets gave, every row asked for: give back those not taken.
  if (row.verdict === 'ok' && owned.size < r.ids.length && !row.suspended && !row.cancelled) {
    const missing = r.ids.length - owned.size;
    await pool.query('SELECT herald_claim_refund($1, $2, $3, $4, $5::text[], $6::float8[], $7)',
      [r.lane, r.tenantId, missing, r.urgent, keys.map((k) => k.key), keys.map((k) => k.perSecond), missing * (r.sms?.segments ?? 1)]);
  }
  if (r.sms && owned.size > 0 && row.message_text !== r.sms.text) {
    // Edited since the batch was loaded: bill what is actually sent.
    const now = countSegments(row.message_text);
    await pool.query('UPDATE deliveries SET segments = $2, encoding = $3 WHERE id = ANY($1::bigint[])', [[...owned], now.segments, now.encoding]);
  }
  return {
    owned, flagged: row.flagged, text: row.message_text, title: row.message_title,
    halt: row.cancelled ? 'cancelled' : row.suspended ? 'held' : undefined, lane: row.verdict,
    ...(row.verdict === 'wait' || row.verdict === 'slow' ? { waitMs: Math.max(1, Number(row.wait_s ?? 0) * 1000) } : {}),
    ...(row.share != null ? { share: Number(row.share) } : {}),
  };
}
