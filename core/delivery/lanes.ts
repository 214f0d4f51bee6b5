import type { Pool, PoolClient } from '../../lib/db/postgres.js';
import { inTransaction } from '../../lib/db/postgres.js';
import { BATCH_SIZE } from './plan.js';

export type LaneRole = 'stable' | 'canary' | 'preview';

/** A worker color and what it serves (the `lanes` table, migration 005). */
export interface Lane {
  color: string;
  version: string;
  /** Share (0-100) of every tenant's work this lane claims. */
  weight: number;
  role: LaneRole;
  /** Preview lanes only: the (synthetic) tenants it serves, and no one else does. */
  tenants: string[];
  epoch: number;
}

export interface LaneChange {
  color: string;
  weight?: number;
  role?: LaneRole;
  version?: string;
  tenants?: string[];
}

type Db = Pool | PoolClient;

const SELECT = 'SELECT color, version, weight, role, tenants, epoch::float8 AS epoch FROM lanes';

export async function readLanes(db: Db): Promise<Lane[]> {
  return (await db.query<Lane>(`${SELECT} ORDER BY color`)).rows;
}

export async function readLane(db: Db, color: string): Promise<Lane | undefined> {
  return (await db.query<Lane>(`${SELECT} WHERE color = $1`, [color])).rows[0];
}

/** Why a set of lanes cannot be served: the field and the reason, or undefined when it can. */
export function laneProblem(lanes: Lane[]): string | undefined {
  for (const l of lanes) {
    if (!Number.isInteger(l.weight) || l.weight < 0 || l.weight > 100) return `lanes.${l.color}.weight: ${l.weight} is not an integer from 0 to 100`;
    if (l.role === 'preview' && l.weight !== 0) return `lanes.${l.color}.weight: a preview lane serves only its tenants and has weight 0, not ${l.weight}`;
    if (l.role === 'preview' && l.tenants.length === 0) return `lanes.${l.color}.tenants: a preview lane needs at least one (synthetic) tenant`;
  }
  const sum = lanes.filter((l) => l.role !== 'preview').reduce((s, l) => s + l.weight, 0);
  if (sum !== 100) return `lanes: the weights of stable and canary lanes add up to ${sum}, not 100`;
  const stable = lanes.filter((l) => l.role === 'stable');
  if (stable.length !== 1) return `lanes: exactly one lane is stable, not ${stable.length}`;
  return undefined;
}

/**
 * Change lanes in one transaction, so every claim sees either the old split or the new
 * one (an abort moves the canary to 0 and the stable lane to 100 at once). A weight
 * change starts a new epoch: shares are counted afresh from it. Refused, with the
 * field and the reason, when the result could not be served.
 */
export async function updateLanes(pool: Pool, changes: LaneChange[]): Promise<Lane[]> {
  return inTransaction(pool, async (tx) => {
    const lanes = (await tx.query<Lane>(`${SELECT} ORDER BY color FOR UPDATE`)).rows;
    const byColor = new Map(lanes.map((l) => [l.color, l]));
    let weightsChanged = false;
    for (const c of changes) {
      let l = byColor.get(c.color);
      if (!l) {
        if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(c.color)) throw new Error(`lanes.${c.color}: a color is lower-case letters, digits and dashes`);
        l = { color: c.color, version: '', weight: 0, role: 'canary', tenants: [], epoch: 0 };
        byColor.set(c.color, l);
        lanes.push(l);
      }
      if (c.weight !== undefined && c.weight !== l.weight) weightsChanged = true;
      if (c.role !== undefined && c.role !== l.role) weightsChanged = true;
      Object.assign(l, Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)));
    }
    const problem = laneProblem(lanes);
    if (problem) throw new Error(problem);
    const epoch = Math.max(0, ...lanes.map((l) => l.epoch)) + (weightsChanged ? 1 : 0);
    for (const l of lanes) {
      await tx.query(
        `INSERT INTO lanes (color, version, weight, role, tenants, epoch) VALUES ($1, $2, $3, $4, $5::text[], $6)
         ON CONFLICT (color) DO UPDATE SET version = excluded.version, weight = excluded.weight, role = excluded.role,
           tenants = excluded.tenants, epoch = excluded.epoch, updated_at = now()`,
        [l.color, l.version, l.weight, l.role, l.tenants, weightsChanged || l.epoch === 0 ? epoch : l.epoch],
      );
    }
    return (await tx.query<Lane>(`${SELECT} ORDER BY color`)).rows;
  });
}

export interface LaneReadiness {
  color: string;
  version: string;
  wanted: number;
  /** Workers of this color and version that heartbeat and say they are ready. */
  ready: number;
  /** Workers of this color heart-beating, any version. */
  live: number;
  isReady: boolean;
}

/**
 * A color is ready when `wanted` of its workers of `version` heartbeat and report
 * ready. The same reading in a cluster (the Deployment's pods) and on the local
 * platform (processes): both are workers that write the `workers` table.
 */
export async function laneReadiness(db: Db, color: string, version: string, wanted: number, leaseSeconds = 15): Promise<LaneReadiness> {
  const { rows } = await db.query<{ ready: number; live: number }>(
    `SELECT count(*) FILTER (WHERE version = $2 AND ready)::int AS ready, count(*)::int AS live
       FROM workers WHERE lane = $1 AND stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $3)`,
    [color, version, leaseSeconds],
  );
  const ready = rows[0]?.ready ?? 0;
  return { color, version, wanted, ready, live: rows[0]?.live ?? 0, isReady: ready >= wanted };
}

/**
 * A preview lane's own work: queued rows of its tenants, a list of ids per broadcast and
 * channel (what one delivery job names), up to `limit` rows each. The tenants' latest
 * `broadcasts` broadcasts are looked at, so the query stays small however many load
 * tests a synthetic tenant has run; rows of older ones still arrive by their queue jobs.
 */
export async function previewWork(db: Db, tenants: string[], o: { limit?: number; broadcasts?: number } = {}): Promise<{ deliveryIds: number[] }[]> {
  const { rows } = await db.query<{ ids: string[] }>(
    `SELECT array_agg(d.id ORDER BY d.id)::text[] AS ids
       FROM (SELECT id FROM broadcasts WHERE tenant_id = ANY($1::text[]) AND NOT suspended AND cancelled_at IS NULL
              ORDER BY created_at DESC LIMIT $3) b
       CROSS JOIN LATERAL (SELECT id, channel FROM deliveries WHERE broadcast_id = b.id AND status = 'queued' ORDER BY id LIMIT $2) d
      GROUP BY b.id, d.channel`,
    [tenants, o.limit ?? BATCH_SIZE, o.broadcasts ?? 100],
  );
  return rows.map((r) => ({ deliveryIds: r.ids.map(Number) }));
}
