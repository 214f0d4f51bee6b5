import type { Outcome, WaitOutcome } from '../../services/providers/types.js';

interface Queryable {
  query<R = unknown>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** How the rollout analysis counts an attempt (the `attempts.outcome` column). */
export type AttemptClass = 'accepted' | 'recipient_failure' | 'provider_failure' | 'orphaned';

/** One provider attempt as the worker saw it; times are the process's monotonic clock (performance.now()). */
export interface Attempt {
  deliveryId: number;
  tenantId: string;
  broadcastId: string;
  channel: 'sms' | 'push';
  lane: string;
  version: string;
  workerId: string;
  outcome: AttemptClass;
  code: string | null;
  /** Whether a request reached the wire (false: refused by an open circuit). */
  called: boolean;
  startedMs: number;
  endedMs: number;
}

/** The class of what the provider answered (before an outage turns a failure into a wait). */
export function attemptClass(outcome: Outcome | WaitOutcome): AttemptClass {
  if (outcome.kind === 'accepted') return 'accepted';
  if (outcome.kind === 'wait') return 'provider_failure';
  if (outcome.kind === 'retryable' && outcome.fault === 'provider') return 'provider_failure';
  return 'recipient_failure';
}

/**
 * Insert attempts, their times on the database's clock: each is placed that long
 * before the statement's now() as it ended before this call, so every lane's
 * attempts share one clock whatever the hosts' clocks say.
 */
export async function recordAttempts(db: Queryable, attempts: Attempt[], nowMs = performance.now()): Promise<void> {
  if (attempts.length === 0) return;
  await db.query(
    `INSERT INTO attempts (delivery_id, tenant_id, broadcast_id, channel, lane, version, worker_id, outcome, code, called, duration_ms, started_at, finished_at)
     SELECT u.delivery_id, u.tenant_id, u.broadcast_id, u.channel, u.lane, u.version, u.worker_id, u.outcome, u.code, u.called,
            CASE WHEN u.called THEN u.started_ago - u.ended_ago END,
            now() - make_interval(secs => u.started_ago / 1000), now() - make_interval(secs => u.ended_ago / 1000)
       FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::float8[], $12::float8[])
            AS u(delivery_id, tenant_id, broadcast_id, channel, lane, version, worker_id, outcome, code, called, started_ago, ended_ago)`,
    [attempts.map((a) => a.deliveryId), attempts.map((a) => a.tenantId), attempts.map((a) => a.broadcastId), attempts.map((a) => a.channel),
      attempts.map((a) => a.lane), attempts.map((a) => a.version), attempts.map((a) => a.workerId), attempts.map((a) => a.outcome),
      attempts.map((a) => a.code), attempts.map((a) => a.called),
      attempts.map((a) => Math.max(0, nowMs - a.startedMs)), attempts.map((a) => Math.max(0, nowMs - a.endedMs))],
  );
}
