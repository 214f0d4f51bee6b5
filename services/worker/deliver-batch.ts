import { isValidPhoneNumber } from 'libphonenumber-js/max';
import type { Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { metrics } from '../../lib/metrics.js';
import type { DeliverJob } from '../../lib/queue.js';
import { CircuitOpenError, type Outcome, type PushProvider, type SmsProvider } from '../providers/types.js';
import { countSegments, MAX_SEGMENTS, type SegmentCount as Segments } from '../delivery/segments.js';

type SegmentCount = Segments & { text: string };
import { quietUntil } from '../delivery/quiet-hours.js';
import { RateLimiter, type RateKey } from '../delivery/rate-limit.js';
import type { WaitOutcome } from '../delivery/outcomes.js';
import { retryDelayMs } from '../delivery/backoff.js';
import type { OutcomeRecorder } from './outcome-recorder.js';
import type { Semaphore } from '../../lib/semaphore.js';

export interface DeliverDeps {
  pool: Pool;
  sms?: SmsProvider;
  push?: PushProvider;
  /**
   * Tenants whose sends always go to the provider simulator, whatever credentials
   * the worker has (the synthetic tenant of scheduled load tests: never real texts).
   */
  simulated?: { tenants: Set<string>; sms?: SmsProvider; push?: PushProvider };
  /**
   * Each provider's circuit state. A retryable failure while a circuit is not closed
   * is the outage's, not the recipient's: the row waits without spending an attempt,
   * so a long outage ends in delivery (or expiry), never in "failed".
   */
  circuitState?: { sms?: () => string; push?: () => string };
  limiter: RateLimiter;
  recorder: OutcomeRecorder;
  inFlight: Semaphore;
  clock: Clock;
  log: Logger;
  workerId: string;
  accountSmsPerSecond: number;
  longCodeInternationalPerSecond?: number;
  webhookUrl?: string;
  /** Rows claimed per round trip; also the largest sendEach call. */
  chunkSize?: number;
  /** Set when the worker drains: claim nothing more, finish what is in flight. */
  draining?: AbortSignal;
}

/** Thrown when a drain left rows of the batch unclaimed: pg-boss retries the job elsewhere. */
export class DrainedError extends Error {
  constructor(readonly left: number) {
    super(`worker draining: ${left} rows of this batch left for another worker`);
    this.name = 'DrainedError';
  }
}

interface Row {
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

interface SendingNumber {
  phone_number: string;
  kind: 'toll_free' | '10dlc' | 'long_code' | 'short_code';
  campaign_id: string | null;
  per_second: number;
}

type Decision =
  | { status: 'send' }
  | { status: 'cancelled' | 'held' | 'expired' | 'skipped'; reason: string }
  | { status: 'deferred'; until: Date; reason: string };

export interface BatchSummary {
  /** The broadcast whose rows this batch moved (undefined when it found none to move). */
  broadcastId?: string;
  sent: number;
  retry: number;
  failed: number;
  skipped: number;
  deferred: number;
  expired: number;
  held: number;
  cancelled: number;
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

/**
 * The job handler: deliver the rows a job names. Everything about the message is
 * read now, not when the job was made, so edits, suspensions and cancellations
 * apply to every row not yet sent. A row is sent only by the worker whose claim
 * (queued → sending) succeeded, so a retried job, a crash or a second worker never
 * sends a row already recorded as sent.
 */
export async function deliverBatch(deps: DeliverDeps, job: DeliverJob): Promise<BatchSummary> {
  const rows = await loadRows(deps.pool, job);
  const summary: BatchSummary = { sent: 0, retry: 0, failed: 0, skipped: 0, deferred: 0, expired: 0, held: 0, cancelled: 0 };
  if (rows.length === 0) return summary;
  summary.broadcastId = rows[0]!.broadcast_id;
  const now = deps.clock.now();

  const sendable: Row[] = [];
  const settled: { row: Row; d: Exclude<Decision, { status: 'send' }> }[] = [];
  for (const row of rows) {
    const d = decide(row, now);
    if (d.status === 'send') sendable.push(row);
    else settled.push({ row, d });
  }
  await settleWithoutSending(deps.pool, settled, now);
  for (const { row, d } of settled) {
    summary[d.status === 'deferred' ? 'deferred' : d.status]++;
    if (d.status === 'skipped') metrics.skipped.inc({ channel: row.channel, reason: d.reason });
    if (d.status === 'expired') metrics.expired.inc({ channel: row.channel });
    if (d.status === 'deferred' || d.status === 'held') metrics.deferred.inc({ reason: d.status === 'held' ? 'suspended' : 'quiet_hours' });
  }
  if (sendable.length === 0) return summary;

  const first = sendable[0]!;
  const sim = deps.simulated?.tenants.has(first.tenant_id) ? deps.simulated : undefined;
  const via = sim ? { ...deps, sms: sim.sms, push: sim.push } : deps;
  const outcomes = first.channel === 'sms' ? await sendSms(via, sendable, job) : await sendPush(via, sendable);
  for (const o of outcomes) {
    if (o === 'accepted') summary.sent++;
    else if (o === 'retryable' || o === 'wait') summary.retry++;
    else summary.failed++;
  }
  return summary;
}

async function loadRows(pool: Pool, job: DeliverJob): Promise<Row[]> {
  if (job.deliveryIds?.length) {
    return (await pool.query<Row>(SELECT_ROWS_BY_ID, [job.deliveryIds])).rows;
  }
  if (job.occurrenceId !== undefined && job.batchNo !== undefined) {
    return (await pool.query<Row>(SELECT_BATCH_ROWS, [job.occurrenceId, job.batchNo])).rows;
  }
  throw new Error('a deliver job names neither an occurrence batch nor delivery ids');
}

export function decide(row: Row, now: Date): Decision {
  if (row.cancelled_at) return { status: 'cancelled', reason: 'broadcast cancelled' };
  if (row.suspended) return { status: 'held', reason: 'broadcast suspended' };
  if (now >= row.expires_at) return { status: 'expired', reason: 'expired before it could be sent' };
  if (row.channel === 'sms') {
    if (row.opted_out) return { status: 'skipped', reason: 'opted out' };
    if (row.contact_gone) return { status: 'skipped', reason: 'contact deleted' };
    if (row.no_consent) return { status: 'skipped', reason: 'no SMS consent' };
    if (!isValidPhoneNumber(row.address)) return { status: 'skipped', reason: 'invalid phone number' };
  } else if (!row.token_active) {
    return { status: 'skipped', reason: 'device token inactive' };
  }
  // Urgent messages (a campus emergency) ignore quiet hours.
  if (row.priority !== 'urgent' && row.quiet_start && row.quiet_end) {
    const until = quietUntil(now, row.tz, { start: row.quiet_start, end: row.quiet_end });
    if (until) {
      if (until >= row.expires_at) return { status: 'expired', reason: 'quiet hours last past expiry' };
      return { status: 'deferred', until, reason: 'quiet hours' };
    }
  }
  return { status: 'send' };
}

async function settleWithoutSending(pool: Pool, settled: { row: Row; d: Exclude<Decision, { status: 'send' }> }[], now: Date): Promise<void> {
  if (settled.length === 0) return;
  await pool.query(
    `UPDATE deliveries d SET status = u.status, last_error = u.reason, next_attempt_at = u.next_at,
            finalized_at = CASE WHEN u.status IN ('skipped', 'expired', 'cancelled') THEN $5::timestamptz END, updated_at = now()
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, status, reason, next_at)
      WHERE d.id = u.id AND d.status = 'queued'`,
    [settled.map((s) => s.row.id), settled.map((s) => s.d.status), settled.map((s) => s.d.reason),
      settled.map((s) => (s.d.status === 'deferred' ? s.d.until : null)), now],
  );
}

interface Claim {
  /** Rows this worker now owns (queued → sending). */
  owned: Set<number>;
  /** The message as it is at the instant of the claim: an edit reaches every row not yet claimed. */
  text: string;
  title: string | null;
  /** Set when the broadcast was suspended or cancelled meanwhile: claim nothing more. */
  halt?: 'held' | 'cancelled';
}

/** $1 ids, $2 worker, $3 segments, $4 encoding, $5 broadcast. */
export const CLAIM_ROWS = `
  WITH b AS (SELECT message_text, message_title, suspended, cancelled_at IS NOT NULL AS cancelled FROM broadcasts WHERE id = $5),
       claimed AS (
         UPDATE deliveries SET status = 'sending', attempts = attempts + 1, claimed_by = $2, claimed_at = now(),
                segments = coalesce($3, segments), encoding = coalesce($4, encoding), updated_at = now(),
                -- the last attempt's answer was lost: this send may be the recipient's second
                possible_duplicate = possible_duplicate OR outcome_unknown, outcome_unknown = false
          WHERE id = ANY($1::bigint[]) AND status = 'queued'
            AND (SELECT NOT suspended AND NOT cancelled FROM b)
         RETURNING id, possible_duplicate),
       -- rows whose flag this claim set (the snapshot is the one before the update)
       flagged AS (SELECT count(*)::int AS n FROM deliveries WHERE id IN (SELECT id FROM claimed) AND outcome_unknown)
  SELECT (SELECT array_agg(id) FROM claimed) AS ids, (SELECT n FROM flagged) AS flagged, b.* FROM b`;

/**
 * queued → sending for these rows, in the same statement that reads the broadcast,
 * so the text sent is the text at claim time and a suspension or cancellation
 * stops the very next claim.
 */
async function claim(deps: DeliverDeps, broadcastId: string, ids: number[], seg: SegmentCount | null): Promise<Claim> {
  const { rows } = await deps.pool.query<{ ids: number[] | null; flagged: number; message_text: string; message_title: string | null; suspended: boolean; cancelled: boolean }>(
    CLAIM_ROWS,
    [ids, deps.workerId, seg?.segments ?? null, seg?.encoding ?? null, broadcastId],
  );
  const r = rows[0];
  if (!r) return { owned: new Set(), text: '', title: null, halt: 'cancelled' };
  const owned = new Set((r.ids ?? []).map(Number));
  if (r.flagged > 0) metrics.possibleDuplicates.inc({ channel: seg ? 'sms' : 'push' }, r.flagged);
  if (seg && owned.size > 0 && r.message_text !== seg.text) {
    // Edited since the batch was loaded: bill what is actually sent.
    const now = countSegments(r.message_text);
    await deps.pool.query('UPDATE deliveries SET segments = $2, encoding = $3 WHERE id = ANY($1::bigint[])', [[...owned], now.segments, now.encoding]);
  }
  return { owned, text: r.message_text, title: r.message_title, halt: r.cancelled ? 'cancelled' : r.suspended ? 'held' : undefined };
}

/**
 * Take in-flight slots and rate tokens for a chunk, then claim its rows, then send at
 * once. Claimed rows never wait: a suspension or cancellation stops everything not yet
 * claimed, tokens are spent when the sends go out (so a provider stall cannot bunch
 * them into a burst over the carrier's rate), and rows flagged possible duplicates
 * after a crash are only those really in flight. The slots of rows not claimed
 * (another worker was first, or the broadcast was paused) are given back at once; the
 * caller releases the rest as each send finishes.
 */
async function reserveAndClaim(deps: DeliverDeps, chunk: Row[], keys: RateKey[], seg: SegmentCount | null): Promise<Claim> {
  await deps.inFlight.acquire(chunk.length);
  let c: Claim;
  try {
    await deps.limiter.take(keys, chunk.length * (seg?.segments ?? 1));
    c = await claim(deps, chunk[0]!.broadcast_id, chunk.map((r) => r.id), seg);
  } catch (err) {
    deps.inFlight.release(chunk.length);
    throw err;
  }
  deps.inFlight.release(chunk.length - c.owned.size);
  return c;
}

/** Claim every row and record one outcome for all (no provider call was possible). */
async function settleAll(deps: DeliverDeps, rows: Row[], seg: SegmentCount | null, outcome: Outcome | WaitOutcome): Promise<string[]> {
  const c = await claim(deps, rows[0]!.broadcast_id, rows.map((r) => r.id), seg);
  if (c.halt) {
    await haltRest(deps, rows, c.halt);
    return [];
  }
  await Promise.all([...c.owned].map((id) => deps.recorder.add({ deliveryId: id, outcome })));
  return [...c.owned].map(() => outcome.kind);
}

const waitAll = (deps: DeliverDeps, rows: Row[], reason: string) => settleAll(deps, rows, null, { kind: 'wait', reason, retryAfterMs: 60_000 });

/** The broadcast was paused or cancelled mid-batch: record the rows not yet claimed accordingly. */
async function haltRest(deps: DeliverDeps, rest: Row[], halt: 'held' | 'cancelled'): Promise<void> {
  const reason = halt === 'held' ? 'broadcast suspended' : 'broadcast cancelled';
  await settleWithoutSending(deps.pool, rest.map((row) => ({ row, d: { status: halt, reason } })), deps.clock.now());
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Failures that are the provider's (or the network's), not this recipient's: its
 * servers erroring or overloaded, timeouts, connection errors, our own credentials
 * refused. They say nothing about the recipient, so they never spend an attempt.
 */
const PROVIDER_LEVEL_CODES = new Set([
  'timeout', 'connection', 'network', 'exception', 'circuit_open', // transport
  '10007', '10008', '10009', '10010', '10011', // Telnyx: their side, auth, rate limit
  'UNAVAILABLE', 'INTERNAL', 'QUOTA_EXCEEDED', // FCM
]);
const isProviderLevel = (code: string) => PROVIDER_LEVEL_CODES.has(code) || /^http_(5\d\d|429|408|401|403|0)$/.test(code);

/**
 * A provider outage waits, it does not fail: a provider-level failure, or any
 * retryable failure while the provider's circuit is not closed, becomes a wait that
 * spends no attempt. The wait still ends at expireAfter, so nothing waits forever.
 */
function duringOutage(deps: DeliverDeps, channel: 'sms' | 'push', outcome: Outcome | WaitOutcome): Outcome | WaitOutcome {
  if (outcome.kind !== 'retryable') return outcome;
  const state = deps.circuitState?.[channel]?.() ?? 'closed';
  if (state === 'closed' && !isProviderLevel(outcome.code)) return outcome;
  const why = state === 'closed' ? 'provider-level failure' : `provider circuit ${state}`;
  const backoff = retryDelayMs(1, { retryAfterMs: outcome.retryAfterMs });
  return { kind: 'wait', reason: `${outcome.reason} (${why})`, retryAfterMs: Math.max(backoff, 1_000), ...(outcome.maybeSent ? { maybeSent: true } : {}) };
}

function errorOutcome(err: unknown): Outcome | WaitOutcome {
  if (err instanceof CircuitOpenError) return { kind: 'wait', reason: err.message, retryAfterMs: err.retryAfterMs };
  return { kind: 'retryable', code: 'exception', reason: err instanceof Error ? err.message : String(err) };
}

export function smsRateKeys(deps: DeliverDeps, row: Row, from: SendingNumber): RateKey[] {
  const keys: RateKey[] = [
    { key: 'account:telnyx:sms', perSecond: deps.accountSmsPerSecond },
    { key: `tenant:${row.tenant_id}:sms`, perSecond: row.sms_per_second },
  ];
  const domestic = row.address.startsWith('+1');
  if (from.kind === '10dlc' && from.campaign_id) keys.push({ key: `campaign:${from.campaign_id}`, perSecond: from.per_second });
  else keys.push({ key: `number:${from.phone_number}`, perSecond: from.per_second });
  if (from.kind === 'long_code' && !domestic) {
    keys.push({ key: `number:${from.phone_number}:international`, perSecond: deps.longCodeInternationalPerSecond ?? 0.1 });
  }
  if (row.rate_per_second) keys.push({ key: `broadcast:${row.broadcast_id}`, perSecond: row.rate_per_second });
  return keys;
}

async function sendSms(deps: DeliverDeps, rows: Row[], job: DeliverJob): Promise<string[]> {
  const first = rows[0]!;
  const numbers = (await deps.pool.query<SendingNumber>(
    'SELECT phone_number, kind, campaign_id, per_second FROM sending_numbers WHERE tenant_id = $1 ORDER BY id', [first.tenant_id])).rows;
  if (!deps.sms || numbers.length === 0) {
    // Not this row's fault and fixable by configuration: wait, do not fail.
    const reason = deps.sms ? `tenant ${first.tenant_id} has no sending number` : 'no SMS provider configured';
    deps.log.warn({ tenant: first.tenant_id, broadcast: first.broadcast_id }, reason);
    return waitAll(deps, rows, reason);
  }
  // One number per batch, spread over the tenant's numbers.
  const from = numbers[(job.batchNo ?? first.id) % numbers.length]!;
  const seg = countSegments(first.message_text);
  if (seg.segments > MAX_SEGMENTS) {
    const outcome: Outcome = { kind: 'permanent', code: 'too_long', reason: `message needs ${seg.segments} segments; the limit is ${MAX_SEGMENTS}` };
    return settleAll(deps, rows, { ...seg, text: first.message_text }, outcome);
  }

  // Rows that share rate keys go together (international long-code rows have an extra key).
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = smsRateKeys(deps, r, from).map((x) => x.key).join('|');
    const group = groups.get(k);
    if (group) group.push(r);
    else groups.set(k, [r]);
  }
  const results: Promise<string>[] = [];
  let left = 0;
  const segText: SegmentCount = { ...seg, text: first.message_text };
  const queue = [...groups.values()];
  outer: for (let g = 0; g < queue.length; g++) {
    const group = queue[g]!;
    const keys = smsRateKeys(deps, group[0]!, from);
    // Never more than the process may have in flight, or the chunk could wait forever.
    const want = Math.min(deps.chunkSize ?? 50, deps.inFlight.capacity) * seg.segments;
    const perChunk = Math.max(1, Math.floor(RateLimiter.grantSize(keys, want) / seg.segments));
    const parts = chunks(group, perChunk);
    for (let i = 0; i < parts.length; i++) {
      const chunk = parts[i]!;
      if (deps.draining?.aborted) {
        left += chunk.length;
        continue;
      }
      const c = await reserveAndClaim(deps, chunk, keys, segText);
      if (c.halt) {
        await haltRest(deps, [...parts.slice(i).flat(), ...queue.slice(g + 1).flat()], c.halt);
        break outer;
      }
      for (const row of chunk) {
        if (c.owned.has(row.id)) results.push(sendOneSms(deps, row, from, c.text));
      }
    }
  }
  const done = await Promise.all(results);
  if (left > 0) throw new DrainedError(left);
  return done;
}

async function sendOneSms(deps: DeliverDeps, row: Row, from: SendingNumber, text: string): Promise<string> {
  const started = performance.now();
  let outcome: Outcome | WaitOutcome;
  try {
    outcome = await deps.sms!.send({
      from: from.phone_number,
      to: row.address,
      text,
      messagingProfileId: row.messaging_profile_id ?? undefined,
      webhookUrl: deps.webhookUrl,
    });
  } catch (err) {
    outcome = errorOutcome(err);
  } finally {
    deps.inFlight.release(1);
  }
  outcome = duringOutage(deps, 'sms', outcome);
  observe(row, outcome, 'telnyx', started, deps.clock);
  await deps.recorder.add({ deliveryId: row.id, outcome });
  return outcome.kind;
}

async function sendPush(deps: DeliverDeps, rows: Row[]): Promise<string[]> {
  const first = rows[0]!;
  const push = deps.push;
  if (!push) {
    return waitAll(deps, rows, 'no push provider configured');
  }
  const keys: RateKey[] = [{ key: `tenant:${first.tenant_id}:push`, perSecond: first.push_per_second }];
  if (first.rate_per_second) keys.push({ key: `broadcast:${first.broadcast_id}`, perSecond: first.rate_per_second });
  const perChunk = RateLimiter.grantSize(keys, Math.min(deps.chunkSize ?? 100, 500, deps.inFlight.capacity));
  const results: Promise<string[]>[] = [];
  let left = 0;
  const parts = chunks(rows, perChunk);
  for (let i = 0; i < parts.length; i++) {
    const chunk = parts[i]!;
    if (deps.draining?.aborted) {
      left += chunk.length;
      continue;
    }
    const c = await reserveAndClaim(deps, chunk, keys, null);
    if (c.halt) {
      await haltRest(deps, parts.slice(i).flat(), c.halt);
      break;
    }
    const mine = chunk.filter((r) => c.owned.has(r.id));
    if (mine.length === 0) continue;
    results.push(
      (async () => {
        const started = performance.now();
        let outcomes: (Outcome | WaitOutcome)[];
        try {
          outcomes = await push.sendEach(
            mine.map((r) => ({
              ...(r.recipient_key.startsWith('t:') ? { topic: r.address } : { token: r.address }),
              title: c.title ?? undefined,
              body: c.text,
              data: { broadcast: r.broadcast_id, delivery: String(r.id) },
            })),
          );
        } catch (err) {
          outcomes = mine.map(() => errorOutcome(err));
        } finally {
          deps.inFlight.release(mine.length);
        }
        await Promise.all(
          mine.map((r, i) => {
            const outcome = duringOutage(deps, 'push', outcomes[i] ?? errorOutcome(new Error('provider returned fewer results than messages')));
            observe(r, outcome, 'fcm', started, deps.clock);
            return deps.recorder.add({ deliveryId: r.id, outcome });
          }),
        );
        return outcomes.map((o) => o.kind);
      })(),
    );
  }
  const done = (await Promise.all(results)).flat();
  if (left > 0) throw new DrainedError(left);
  return done;
}

function observe(row: Row, outcome: Outcome | WaitOutcome, provider: string, startedMs: number, clock: Clock): void {
  metrics.messagesSent.inc({ channel: row.channel, provider, outcome: outcome.kind });
  metrics.sendDuration.observe({ channel: row.channel, provider }, (performance.now() - startedMs) / 1000);
  if (outcome.kind === 'accepted') {
    metrics.deliveryDuration.observe({ channel: row.channel }, Math.max(0, (clock.now().getTime() - row.due_at.getTime()) / 1000));
  }
}
