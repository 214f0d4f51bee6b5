import { isValidPhoneNumber } from 'libphonenumber-js/max';
import type { Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { metrics } from '../../lib/metrics.js';
import type { DeliverJob } from '../../lib/queue.js';
import { CircuitOpenError, PROVIDER_OUTAGE, type Outcome, type PushProvider, type SmsProvider, type WaitOutcome } from '../providers/types.js';
import { countSegments, MAX_SEGMENTS, type SegmentCount as Segments } from '../../core/delivery/segments.js';

type SegmentCount = Segments & { text: string };
import { quietUntil } from '../../core/delivery/quiet-hours.js';
import { RateLimiter, type RateKey } from '../../core/delivery/rate-limit.js';
import type { HandBack } from '../../core/delivery/hand-back.js';
import { deliverGroup } from '../../lib/queue.js';
import { ACCOUNT_BUCKETS } from '../../core/delivery/capacity.js';
import { retryDelayMs } from '../../core/delivery/backoff.js';
import type { OutcomeRecorder } from '../../core/delivery/outcome-recorder.js';
import type { Semaphore } from '../../lib/semaphore.js';
import type { LaneGate } from './lane-gate.js';
import { claim as claimRows, loadBatch, sendingNumbers, settleUnsent, type Claim, type DeliveryRow as Row, type FairLevel, type SendingNumber } from '../../core/delivery/claims.js';
import { attemptClass, type Attempt } from '../../core/delivery/attempts.js';

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
  recorder: OutcomeRecorder;
  inFlight: Semaphore;
  clock: Clock;
  log: Logger;
  workerId: string;
  accountSmsPerSecond: number;
  /** The push project's limit, shared fairly between tenants (none: push has no account bucket). */
  accountPushPerSecond?: number;
  longCodeInternationalPerSecond?: number;
  webhookUrl?: string;
  /** Rows claimed per round trip; also the largest sendEach call. */
  chunkSize?: number;
  /** Set when the worker drains: claim nothing more, finish what is in flight. */
  draining?: AbortSignal;
  /** This worker's lane (its color) and version: every claim is admitted by the lane's weight. */
  lane: string;
  version: string;
  /** Waits until the lane may claim a tenant's rows, or says it takes none of them now. */
  gate: LaneGate;
  /** Puts unclaimed rows back on the queue as a new job: a hand-back spends no pg-boss retry. */
  handBack: (ids: number[], o: HandBack) => Promise<void>;
  /** The shared limits have no tokens for this group (a tenant's normal or urgent work) for `ms`. */
  onCapacityWait?: (group: string, ms: number) => void;
}

type Decision =
  | { status: 'send' }
  | { status: 'cancelled' | 'held' | 'expired' | 'skipped'; reason: string }
  | { status: 'deferred'; until: Date; reason: string };

export interface BatchSummary {
  /** The broadcast whose rows this batch moved (undefined when it found none to move). */
  broadcastId?: string;
  /** Rows put back on the queue unclaimed (a drain, the lane takes none of them now, or no tokens for them now). */
  handedBack?: number;
  /** Set when the rest was handed back for capacity: the wait the shared limits gave (ms). */
  capacityWaitMs?: number;
  sent: number;
  retry: number;
  failed: number;
  skipped: number;
  deferred: number;
  expired: number;
  held: number;
  cancelled: number;
}

/**
 * The job handler: deliver the rows a job names. Everything about the message is
 * read now, not when the job was made, so edits, suspensions and cancellations
 * apply to every row not yet sent. A row is sent only by the worker whose claim
 * (queued → sending) succeeded, so a retried job, a crash or a second worker never
 * sends a row already recorded as sent.
 */
export async function deliverBatch(deps: DeliverDeps, job: DeliverJob): Promise<BatchSummary> {
  const rows = await loadBatch(deps.pool, job);
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
  await settleUnsent(deps.pool, settled.map(({ row, d }) => ({ id: row.id, ...d })), now);
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
  const back: Back = { handedBack: 0 };
  const outcomes = first.channel === 'sms' ? await sendSms(via, sendable, back) : await sendPush(via, sendable, back);
  if (back.handedBack > 0) summary.handedBack = back.handedBack;
  if (back.capacityWaitMs !== undefined) summary.capacityWaitMs = back.capacityWaitMs;
  for (const o of outcomes) {
    if (o === 'accepted') summary.sent++;
    else if (o === 'retryable' || o === 'wait') summary.retry++;
    else summary.failed++;
  }
  return summary;
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

interface Back {
  handedBack: number;
  capacityWaitMs?: number;
}

/** The buckets a send takes tokens from, and which of them are shared fairly (outermost first). */
interface Limits {
  keys: RateKey[];
  fair: FairLevel[];
}

/**
 * Claim these rows of the batch for this worker and lane, with their tokens; count the
 * possible duplicates it flagged. Without limits (a claim that sends nothing) no tokens.
 */
async function claim(deps: DeliverDeps, first: Row, ids: number[], seg: SegmentCount | null, limits?: Limits): Promise<Claim> {
  const c = await claimRows(deps.pool, {
    ids, workerId: deps.workerId, broadcastId: first.broadcast_id, tenantId: first.tenant_id, urgent: first.priority === 'urgent',
    lane: deps.lane, leaseSeconds: deps.gate.leaseSeconds, ...(seg ? { sms: { segments: seg.segments, encoding: seg.encoding, text: seg.text } } : {}),
    ...(limits ? { keys: limits.keys, fair: limits.fair } : {}),
  });
  if (c.flagged > 0) metrics.possibleDuplicates.inc({ channel: seg ? 'sms' : 'push' }, c.flagged);
  return c;
}

/**
 * Take in-flight slots for a chunk, then claim its rows with their tokens (one statement:
 * lane weight, fair share of the shared buckets, tokens, claim), then send at once. Claimed
 * rows never wait: a suspension or cancellation stops everything not yet claimed, tokens
 * are spent when the sends go out (so a provider stall cannot bunch them into a burst over
 * the carrier's rate), and rows flagged possible duplicates after a crash are only those
 * really in flight. A claim refused tokens ('wait') takes nothing: the caller hands the
 * rest back for the wait, so the slot never sleeps on tokens. The slots of rows not
 * claimed are given back at once; the caller releases the rest as each send finishes.
 */
async function reserveAndClaim(deps: DeliverDeps, chunk: Row[], limits: Limits, seg: SegmentCount | null): Promise<Claim> {
  const first = chunk[0]!;
  for (;;) {
    // Asked before the claim, so a lane ahead of its weight does not even ask for tokens.
    const open = await deps.gate.admit(first.tenant_id, chunk.length, first.priority === 'urgent', deps.draining);
    if (open !== 'ok') return { owned: new Set(), flagged: 0, text: '', title: null, lane: open };
    // While the database lags behind the sends, claim nothing more: every outcome not yet
    // written is a resend (a possible duplicate) if this worker dies.
    await deps.recorder.whenBelow(deps.inFlight.capacity);
    await deps.inFlight.acquire(chunk.length);
    let c: Claim;
    try {
      c = await claim(deps, first, chunk.map((r) => r.id), seg, limits);
    } catch (err) {
      deps.inFlight.release(chunk.length);
      throw err;
    }
    deps.inFlight.release(chunk.length - c.owned.size);
    // Another worker of the lane claimed in between: ask again.
    if (c.lane !== 'share') return c;
  }
}

/**
 * How long rows a lane refuses ('closed') wait before any worker may take them again:
 * a second, so a tenant no live lane serves (a preview lane not up yet) is not passed
 * around in a loop, plus up to a second at random, so the moment they are offered again
 * is not in step with the refusing worker's own polling (with a fixed delay, the lane
 * that refused them took them back nearly every time). A preview lane does not wait
 * for them at all: it takes its tenants' queued rows itself (worker.ts).
 */
export const refusedDelayMs = (): number => 1_000 + Math.floor(Math.random() * 1_000);

/**
 * Put the rows not claimed back on the queue: the job then completes, spending no retry.
 * Rows a lane is too far ahead to claim ('busy') go back at once in chunk-sized jobs, so
 * the lanes behind, which hold none of this tenant's rows, can take their share of them.
 * Rows a lane refuses ('closed') wait before they are offered again (refusedDelayMs).
 * Rows refused tokens ('wait') go back for the wait the shared limits gave, and this
 * process fetches none of the tenant's jobs meanwhile (onCapacityWait).
 */
async function handBackRest(deps: DeliverDeps, rest: Row[], summary: Back, c: Claim | undefined): Promise<void> {
  if (rest.length === 0) return;
  const why = !c ? 'drain' : c.lane === 'busy' ? 'busy' : c.lane === 'wait' || c.lane === 'slow' ? c.lane : 'closed';
  const first = rest[0]!;
  const urgent = first.priority === 'urgent';
  const waitMs = why === 'wait' || why === 'slow' ? Math.ceil(c?.waitMs ?? 1) : why === 'closed' ? refusedDelayMs() : 0;
  await deps.handBack(rest.map((r) => r.id), {
    urgent, tenantId: first.tenant_id,
    startAfterMs: waitMs,
    jobSize: why === 'busy' ? deps.chunkSize ?? 25 : undefined,
  });
  summary.handedBack += rest.length;
  if (why === 'wait') {
    summary.capacityWaitMs = waitMs;
    metrics.capacityWaits.inc({ tenant: first.tenant_id });
    deps.onCapacityWait?.(deliverGroup(first.tenant_id, urgent).id, waitMs);
  }
}

/** Claim every row and record one outcome for all (no provider call was possible). */
async function settleAll(deps: DeliverDeps, rows: Row[], seg: SegmentCount | null, outcome: Outcome | WaitOutcome): Promise<string[]> {
  const c = await claim(deps, rows[0]!, rows.map((r) => r.id), seg);
  if (c.lane !== 'ok') {
    await deps.handBack(rows.map((r) => r.id), { urgent: rows[0]!.priority === 'urgent', tenantId: rows[0]!.tenant_id, startAfterMs: refusedDelayMs() });
    return [];
  }
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
  await settleUnsent(deps.pool, rest.map((row) => ({ id: row.id, status: halt, reason })), deps.clock.now());
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * A provider outage waits, it does not fail: a provider-level failure, or any
 * retryable failure while the provider's circuit is not closed, becomes a wait that
 * spends no attempt. The wait still ends at expireAfter, so nothing waits forever.
 */
function duringOutage(deps: DeliverDeps, channel: 'sms' | 'push', outcome: Outcome | WaitOutcome): Outcome | WaitOutcome {
  if (outcome.kind !== 'retryable') return outcome;
  const state = deps.circuitState?.[channel]?.() ?? 'closed';
  if (state === 'closed' && outcome.fault !== 'provider') return outcome;
  const why = state === 'closed' ? 'provider-level failure' : `provider circuit ${state}`;
  const backoff = retryDelayMs(1, { retryAfterMs: outcome.retryAfterMs });
  return { kind: 'wait', code: PROVIDER_OUTAGE, reason: `${outcome.reason} (${why})`, retryAfterMs: Math.max(backoff, 1_000), ...(outcome.maybeSent ? { maybeSent: true } : {}) };
}

function errorOutcome(err: unknown): Outcome | WaitOutcome {
  if (err instanceof CircuitOpenError) return { kind: 'wait', code: PROVIDER_OUTAGE, reason: err.message, retryAfterMs: err.retryAfterMs };
  return { kind: 'retryable', code: 'exception', reason: err instanceof Error ? err.message : String(err), fault: 'provider' };
}

/**
 * The shared buckets of an SMS, fairly split: the provider account between tenants (by
 * their plans' weights), the tenant's own allowance between its broadcasts.
 */
function smsFair(row: Row): FairLevel[] {
  return [
    { key: ACCOUNT_BUCKETS.sms, party: row.tenant_id },
    { key: `tenant:${row.tenant_id}:sms`, party: row.broadcast_id, weight: 1 },
  ];
}

export function smsRateKeys(deps: DeliverDeps, row: Row, from: SendingNumber): RateKey[] {
  const keys: RateKey[] = [
    { key: ACCOUNT_BUCKETS.sms, perSecond: deps.accountSmsPerSecond },
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

async function sendSms(deps: DeliverDeps, rows: Row[], summary: Back): Promise<string[]> {
  const first = rows[0]!;
  const numbers = await sendingNumbers(deps.pool, first.tenant_id);
  if (!deps.sms || numbers.length === 0) {
    // Not this row's fault and fixable by configuration: wait, do not fail.
    const reason = deps.sms ? `tenant ${first.tenant_id} has no sending number` : 'no SMS provider configured';
    deps.log.warn({ tenant: first.tenant_id, broadcast: first.broadcast_id }, reason);
    return waitAll(deps, rows, reason);
  }
  const seg = countSegments(first.message_text);
  if (seg.segments > MAX_SEGMENTS) {
    const outcome: Outcome = { kind: 'permanent', code: 'too_long', reason: `message needs ${seg.segments} segments; the limit is ${MAX_SEGMENTS}` };
    return settleAll(deps, rows, { ...seg, text: first.message_text }, outcome);
  }

  // Each recipient's own sending number (sticky across broadcasts); rows that share rate
  // keys go together: one group per number (and international long-code rows apart).
  const groups = new Map<string, { from: SendingNumber; keys: RateKey[]; rows: Row[] }>();
  for (const r of rows) {
    const from = senderFor(numbers, r.address);
    const keys = smsRateKeys(deps, r, from);
    const k = keys.map((x) => x.key).join('|');
    const group = groups.get(k);
    if (group) group.rows.push(r);
    else groups.set(k, { from, keys, rows: [r] });
  }
  // Never more than the process may have in flight, or the chunk could wait forever.
  const want = Math.min(deps.chunkSize ?? 50, deps.inFlight.capacity) * seg.segments;
  let live = [...groups.values()].map((g) => ({ ...g, parts: chunks(g.rows, Math.max(1, Math.floor(RateLimiter.grantSize(g.keys, want) / seg.segments))), next: 0 }));
  const rest = (of: typeof live) => of.flatMap((g) => g.parts.slice(g.next).flat());
  const results: Promise<string>[] = [];
  const segText: SegmentCount = { ...seg, text: first.message_text };
  // A chunk of each number in turn, so a tenant's numbers send side by side within its allowance.
  while (live.length > 0) {
    for (const g of [...live]) {
      const chunk = g.parts[g.next]!;
      const c = deps.draining?.aborted ? undefined : await reserveAndClaim(deps, chunk, { keys: g.keys, fair: smsFair(chunk[0]!) }, segText);
      if (c?.lane === 'slow') {
        // Only this number (or campaign) is spent: its rows wait, the tenant's others go on.
        await handBackRest(deps, rest([g]), summary, c);
        live = live.filter((x) => x !== g);
        continue;
      }
      if (!c || c.lane !== 'ok') {
        await handBackRest(deps, rest(live), summary, c);
        return Promise.all(results);
      }
      if (c.halt) {
        await haltRest(deps, rest(live), c.halt);
        return Promise.all(results);
      }
      for (const row of chunk) {
        if (c.owned.has(row.id)) results.push(sendOneSms(deps, row, g.from, c.text));
      }
      g.next++;
      if (g.next >= g.parts.length) live = live.filter((x) => x !== g);
    }
  }
  return Promise.all(results);
}

/**
 * A recipient's sending number among the tenant's: the highest hash of (recipient, number)
 * (rendezvous hashing), so a person's texts come from the same number broadcast after
 * broadcast, and adding or removing a number moves only the recipients it takes or had.
 */
export function senderFor(numbers: SendingNumber[], address: string): SendingNumber {
  let best = numbers[0]!;
  let bestScore = -1;
  for (const n of numbers) {
    const score = fnv1a(`${address}|${n.phone_number}`);
    if (score > bestScore) {
      best = n;
      bestScore = score;
    }
  }
  return best;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
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
  const attempt = attemptOf(deps, row, outcome, started, performance.now());
  outcome = duringOutage(deps, 'sms', outcome);
  observe(row, outcome, 'telnyx', started, deps.clock);
  await deps.recorder.add({ deliveryId: row.id, outcome }, attempt);
  return outcome.kind;
}

async function sendPush(deps: DeliverDeps, rows: Row[], summary: Back): Promise<string[]> {
  const first = rows[0]!;
  const push = deps.push;
  if (!push) {
    return waitAll(deps, rows, 'no push provider configured');
  }
  const keys: RateKey[] = [{ key: `tenant:${first.tenant_id}:push`, perSecond: first.push_per_second }];
  const fair: FairLevel[] = [{ key: `tenant:${first.tenant_id}:push`, party: first.broadcast_id, weight: 1 }];
  if (deps.accountPushPerSecond) {
    keys.unshift({ key: ACCOUNT_BUCKETS.push, perSecond: deps.accountPushPerSecond });
    fair.unshift({ key: ACCOUNT_BUCKETS.push, party: first.tenant_id });
  }
  if (first.rate_per_second) keys.push({ key: `broadcast:${first.broadcast_id}`, perSecond: first.rate_per_second });
  const perChunk = RateLimiter.grantSize(keys, Math.min(deps.chunkSize ?? 100, 500, deps.inFlight.capacity));
  const results: Promise<string[]>[] = [];
  const parts = chunks(rows, perChunk);
  for (let i = 0; i < parts.length; i++) {
    const chunk = parts[i]!;
    const c = deps.draining?.aborted ? undefined : await reserveAndClaim(deps, chunk, { keys, fair }, null);
    if (!c || c.lane !== 'ok') {
      await handBackRest(deps, parts.slice(i).flat(), summary, c);
      break;
    }
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
        const ended = performance.now();
        await Promise.all(
          mine.map((r, i) => {
            const raw = outcomes[i] ?? errorOutcome(new Error('provider returned fewer results than messages'));
            const attempt = attemptOf(deps, r, raw, started, ended);
            const outcome = duringOutage(deps, 'push', raw);
            observe(r, outcome, 'fcm', started, deps.clock);
            return deps.recorder.add({ deliveryId: r.id, outcome }, attempt);
          }),
        );
        return outcomes.map((o) => o.kind);
      })(),
    );
  }
  return (await Promise.all(results)).flat();
}

/** What the rollout analysis needs of one provider attempt. A raw wait is our own open circuit's refusal: it never reached the wire. */
function attemptOf(deps: DeliverDeps, row: Row, raw: Outcome | WaitOutcome, startedMs: number, endedMs: number): Attempt {
  const called = raw.kind !== 'wait';
  return {
    deliveryId: row.id, tenantId: row.tenant_id, broadcastId: row.broadcast_id, channel: row.channel,
    lane: deps.lane, version: deps.version, workerId: deps.workerId,
    outcome: attemptClass(raw), code: ('code' in raw ? raw.code : null) ?? null, called, startedMs, endedMs,
  };
}

function observe(row: Row, outcome: Outcome | WaitOutcome, provider: string, startedMs: number, clock: Clock): void {
  metrics.messagesSent.inc({ channel: row.channel, provider, outcome: outcome.kind });
  if (outcome.kind === 'accepted') metrics.tenantSent.inc({ tenant: row.tenant_id, channel: row.channel });
  metrics.sendDuration.observe({ channel: row.channel, provider }, (performance.now() - startedMs) / 1000);
  if (outcome.kind === 'accepted') {
    metrics.deliveryDuration.observe({ channel: row.channel }, Math.max(0, (clock.now().getTime() - row.due_at.getTime()) / 1000));
  }
}
