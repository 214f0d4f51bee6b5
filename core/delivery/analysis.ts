import type { Pool, PoolClient } from '../../lib/db/postgres.js';

/** One lane's figures over an analysis window, from the attempts it recorded (the truth, not a scrape). */
export interface LaneFigures {
  color: string;
  version: string;
  /** Provider attempts (orphans included): the sample. */
  attempts: number;
  providerFailurePercent: number;
  recipientFailurePercent: number;
  /** Rows this lane claimed in the window that are flagged possibly sent twice. */
  possibleDuplicates: number;
  /** Rows left in flight by this lane's workers that died. */
  orphanedRows: number;
  /** Provider call duration p95 (calls that reached the wire), milliseconds; 0 without calls. */
  callP95Ms: number;
}

export interface AnalysisWindow {
  start: Date;
  end: Date;
  lanes: LaneFigures[];
}

export interface Thresholds {
  minSample: number;
  maxProviderFailurePercent: number;
  maxRecipientFailurePointsOverStable: number;
  maxPossibleDuplicates: number;
  maxOrphanedRows: number;
  maxCallP95Ms: number;
}

export type Verdict = { verdict: 'Passed' | 'Failed'; failedChecks: string[] } | { verdict: 'Inconclusive'; failedChecks: []; reason: string };

const round = (x: number) => Math.round(x * 100) / 100;

/**
 * Per-lane figures for `colors` over the window that ends at the database's now() and
 * starts `seconds` before it, or at `notBefore` if that is later (a step's start): every
 * lane is measured over the same database-clock window, whatever the hosts' clocks say.
 * Attempts are counted by the version that made them, so a color's figures are its new
 * version's only.
 */
export async function laneFigures(db: Pool | PoolClient, lanes: { color: string; version: string }[], seconds: number, notBefore?: Date): Promise<AnalysisWindow> {
  const { rows } = await db.query<{
    color: string; version: string; start: Date; end: Date; attempts: number; provider: number; recipient: number; orphaned: number; p95: number | null; dups: number;
  }>(
    `WITH w AS (SELECT greatest(now() - make_interval(secs => $3), coalesce($4::timestamptz, '-infinity')) AS start, now() AS "end"),
          l AS (SELECT * FROM unnest($1::text[], $2::text[]) AS l(color, version))
     SELECT l.color, l.version, w.start, w."end",
            count(a.id)::int AS attempts,
            count(a.id) FILTER (WHERE a.outcome = 'provider_failure')::int AS provider,
            count(a.id) FILTER (WHERE a.outcome = 'recipient_failure')::int AS recipient,
            count(a.id) FILTER (WHERE a.outcome = 'orphaned')::int AS orphaned,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) FILTER (WHERE a.called) AS p95,
            (SELECT count(*)::int FROM deliveries d
              WHERE d.lane = l.color AND d.possible_duplicate AND d.claimed_at >= w.start
                AND EXISTS (SELECT 1 FROM attempts x WHERE x.delivery_id = d.id AND x.lane = l.color AND x.version = l.version)) AS dups
       FROM l CROSS JOIN w
       LEFT JOIN attempts a ON a.lane = l.color AND a.version = l.version AND a.finished_at >= w.start AND a.finished_at <= w."end"
      GROUP BY l.color, l.version, w.start, w."end"`,
    [lanes.map((l) => l.color), lanes.map((l) => l.version), seconds, notBefore ?? null],
  );
  const start = rows[0]?.start ?? new Date();
  const end = rows[0]?.end ?? new Date();
  return {
    start,
    end,
    lanes: lanes.map((l) => {
      const r = rows.find((x) => x.color === l.color);
      const n = r?.attempts ?? 0;
      return {
        color: l.color,
        version: l.version,
        attempts: n,
        providerFailurePercent: n ? round((100 * r!.provider) / n) : 0,
        recipientFailurePercent: n ? round((100 * r!.recipient) / n) : 0,
        possibleDuplicates: r?.dups ?? 0,
        orphanedRows: r?.orphaned ?? 0,
        callP95Ms: round(r?.p95 ?? 0),
      };
    }),
  };
}

/**
 * Judge the canary lane against the thresholds (and its recipient-level failures against
 * the stable lane's over the same window). Without minSample attempts there is no
 * verdict; crashes and duplicates fail it whatever the sample.
 */
export function judge(canary: LaneFigures, stable: LaneFigures | undefined, t: Thresholds): Verdict {
  const failed: string[] = [];
  if (canary.orphanedRows > t.maxOrphanedRows) failed.push(`orphanedRows ${canary.orphanedRows} > ${t.maxOrphanedRows}`);
  if (canary.possibleDuplicates > t.maxPossibleDuplicates) failed.push(`possibleDuplicates ${canary.possibleDuplicates} > ${t.maxPossibleDuplicates}`);
  if (canary.attempts < t.minSample) {
    if (failed.length > 0) return { verdict: 'Failed', failedChecks: failed };
    return { verdict: 'Inconclusive', failedChecks: [], reason: `${canary.attempts} attempts of ${canary.version}, ${t.minSample} needed` };
  }
  if (canary.providerFailurePercent > t.maxProviderFailurePercent) {
    failed.push(`providerFailurePercent ${canary.providerFailurePercent} > ${t.maxProviderFailurePercent}`);
  }
  const baseline = stable && stable.attempts > 0 ? stable.recipientFailurePercent : 0;
  if (canary.recipientFailurePercent - baseline > t.maxRecipientFailurePointsOverStable) {
    failed.push(`recipientFailurePercent ${canary.recipientFailurePercent} > stable ${baseline} + ${t.maxRecipientFailurePointsOverStable}`);
  }
  if (canary.callP95Ms > t.maxCallP95Ms) failed.push(`callP95Ms ${canary.callP95Ms} > ${t.maxCallP95Ms}`);
  return { verdict: failed.length ? 'Failed' : 'Passed', failedChecks: failed };
}
