/**
 * Faults under a running local platform (devenv/local-platform.ts), each during one SMS
 * Broadcast of the demo church, and what they cost, counted from the provider
 * simulator's own record of what it received against the Broadcast's audience (the
 * contacts carrying its tag), never from Herald's flags:
 *
 *   lost                  audience members the simulator never received (a delivery that
 *                         expired or failed because of the fault is lost too)
 *   duplicates_counted    members received more than once whose delivery row Herald
 *                         flagged possible_duplicate
 *   duplicates_uncounted  members received more than once with no such flag
 *   recovery_seconds      from the fault's end until the simulator's receive rate is back to
 *                         half the rate before the fault (over a 1 s window), or until the
 *                         Broadcast completed if that came first
 *
 * npm run chaos (scripts/chaos.ts) runs the scenarios at full size; devenv/chaos.test.ts
 * runs smaller ones in npm test with the same counting. Everything stays on loopback.
 */
import { randomBytes } from 'node:crypto';
import { createPool, type Pool } from '../lib/db/postgres.js';
import { seedContacts } from '../core/delivery/testing/fixtures.js';
import { broadcastIdFor } from '../core/delivery/ids.js';
import type { LocalPlatform } from './local-platform.js';
import { httpOk, waitFor } from './poll.js';
import { raiseDemoLimits } from './seed-demo.js';

export const CHAOS_TENANT = 'grace-church';

export interface ChaosRow {
  scenario: string;
  broadcasts: number;
  recipients: number;
  lost: number;
  duplicates_counted: number;
  duplicates_uncounted: number;
  recovery_seconds: number;
}

export interface ChaosContext {
  platform: LocalPlatform;
  pool: Pool;
  /** Each Broadcast's contacts get phone numbers of their own: the next free offset. */
  nextOffset: number;
  log: (line: string) => void;
}

/** Raise the demo church's limits out of the way (the faults are the subject, not the rate limits). */
export async function prepareChaos(platform: LocalPlatform, log: (line: string) => void = () => {}): Promise<ChaosContext> {
  await raiseDemoLimits(platform.apiUrl, platform.adminToken, CHAOS_TENANT, 100_000);
  await simulator(platform, '/_sim/config', { receipts: 'none', latencyMs: 0, down: false });
  // Offsets past the demo contacts, distinct per run (a data directory kept across runs).
  return { platform, pool: createPool(platform.databaseUrl, 2, 'chaos'), nextOffset: 3_000_000 + (randomBytes(2).readUInt16BE() % 40) * 100_000, log };
}

export async function simulator(platform: Pick<LocalPlatform, 'simulatorUrl'>, p: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${platform.simulatorUrl}${p}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`simulator ${p}: ${res.status} ${await res.text()}`);
  return res.json();
}

interface Received {
  sms: { accepted: number; perRecipient?: Record<string, number> };
}

export interface ChaosBroadcast {
  name: string;
  tag: string;
  /** deliveries.broadcast_id */
  deliveryId: string;
  recipients: number;
}

/** Seed `recipients` contacts tagged for this Broadcast and apply it (sent at once). */
export async function startBroadcast(ctx: ChaosContext, scenario: string, recipients: number): Promise<ChaosBroadcast> {
  const name = `chaos-${scenario}-${randomBytes(3).toString('hex')}`;
  const tag = name;
  await seedContacts(ctx.pool, CHAOS_TENANT, recipients, { tags: [tag], offset: ctx.nextOffset });
  ctx.nextOffset += recipients;
  const manifest = {
    apiVersion: 'herald.dev/v1alpha1',
    kind: 'Broadcast',
    metadata: { name, namespace: CHAOS_TENANT },
    spec: { tenant: CHAOS_TENANT, channel: 'sms', message: { text: `Chaos ${scenario}: service at 10am. Reply STOP to opt out.` }, audience: { segment: { tags: [tag] } } },
  };
  const r = await ctx.platform.kubectl(['apply', '-o', 'json', '-f', '-'], JSON.stringify(manifest));
  if (r.code !== 0) throw new Error(`kubectl apply ${name}: ${r.stderr}`);
  const uid = (JSON.parse(r.stdout) as { metadata: { uid: string } }).metadata.uid;
  return { name, tag, deliveryId: broadcastIdFor(uid), recipients };
}

/** Rows of the Broadcast by status (PostgreSQL, read only). */
export async function rowCounts(ctx: ChaosContext, bc: ChaosBroadcast): Promise<Record<string, number>> {
  const { rows } = await ctx.pool.query<{ status: string; n: number }>('SELECT status, count(*)::int n FROM deliveries WHERE broadcast_id = $1 GROUP BY 1', [bc.deliveryId]);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Wait until at least `fraction` of the audience has reached the simulator. */
export async function waitForShare(ctx: ChaosContext, bc: ChaosBroadcast, fraction: number, since: number, timeoutMs = 300_000): Promise<void> {
  await waitFor(`${Math.round(fraction * 100)} % of ${bc.name} received`, async () => (await accepted(ctx)) - since >= fraction * bc.recipients, { timeoutMs, everyMs: 100 });
}

export async function accepted(ctx: ChaosContext): Promise<number> {
  return ((await simulator(ctx.platform, '/_sim/received')) as Received).sms.accepted;
}

/** The Broadcast's phase as the operator reports it. */
async function phase(ctx: ChaosContext, bc: ChaosBroadcast): Promise<string | undefined> {
  const r = await ctx.platform.kubectl(['-n', CHAOS_TENANT, 'get', 'broadcast', bc.name, '-o', 'jsonpath={.status.phase}']);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Samples the simulator's accepted count (for recovery_seconds) until stopped. */
export class RateSampler {
  readonly samples: { at: number; accepted: number }[] = [];
  private timer?: NodeJS.Timeout;
  private busy = false;
  constructor(private readonly ctx: ChaosContext, private readonly everyMs = 250) {}
  start(): this {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      accepted(this.ctx)
        .then((n) => this.samples.push({ at: Date.now(), accepted: n }))
        .catch(() => {}) // a sample missed while the machine is busy: the next one counts
        .finally(() => (this.busy = false));
    }, this.everyMs);
    return this;
  }
  stop(): void {
    clearInterval(this.timer);
  }
  /** Messages a second over [from, to] (ms), from the samples nearest both ends. */
  rate(from: number, to: number): number {
    const a = this.samples.find((s) => s.at >= from);
    const b = [...this.samples].reverse().find((s) => s.at <= to);
    if (!a || !b || b.at <= a.at) return 0;
    return ((b.accepted - a.accepted) * 1000) / (b.at - a.at);
  }
  /** Seconds from faultEnd to the first 1 s window at half the rate before faultStart (or to `done`). */
  recovery(faultStart: number, faultEnd: number, done: number): number {
    const before = this.rate(faultStart - 2_000, faultStart);
    for (const s of this.samples) {
      if (s.at < faultEnd || s.at + 1_000 > done) continue;
      if (this.rate(s.at, s.at + 1_000) >= before / 2) return (s.at - faultEnd) / 1000;
    }
    return Math.max(0, (done - faultEnd) / 1000);
  }
}

/**
 * Wait for the Broadcast to complete, then count against its audience what the
 * simulator received. `timeoutMs`: give up waiting (the row still counts what is missing as lost).
 */
export async function tally(ctx: ChaosContext, bc: ChaosBroadcast, timeoutMs: number): Promise<Omit<ChaosRow, 'scenario' | 'recovery_seconds' | 'broadcasts'> & { completedAt: number; completed: boolean; rows: Record<string, number> }> {
  let completed = true;
  await waitFor(`${bc.name} Completed`, async () => (await phase(ctx, bc)) === 'Completed', { timeoutMs, everyMs: 250 }).catch((err: Error) => {
    completed = false;
    ctx.log(`${bc.name}: ${err.message}`);
  });
  const completedAt = Date.now();
  const got = (await simulator(ctx.platform, '/_sim/received?recipients=1')) as Received;
  const per = got.sms.perRecipient ?? {};
  const { rows: audience } = await ctx.pool.query<{ phone: string; flagged: boolean }>(
    `SELECT c.phone, coalesce(bool_or(d.possible_duplicate), false) AS flagged
       FROM contacts c LEFT JOIN deliveries d ON d.broadcast_id = $3 AND d.address = c.phone
      WHERE c.tenant_id = $1 AND $2 = ANY(c.tags) GROUP BY c.phone`,
    [CHAOS_TENANT, bc.tag, bc.deliveryId],
  );
  let lost = 0;
  let counted = 0;
  let uncounted = 0;
  for (const m of audience) {
    const n = per[m.phone] ?? 0;
    if (n === 0) lost++;
    else if (n > 1) {
      if (m.flagged) counted++;
      else uncounted++;
    }
  }
  return { recipients: audience.length, lost, duplicates_counted: counted, duplicates_uncounted: uncounted, completedAt, completed, rows: await rowCounts(ctx, bc) };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

export interface ScenarioOptions {
  recipients: number;
  /** How long the fault lasts (provider 503, latency, PostgreSQL down). */
  faultMs: number;
  /** worker-kill: time between kills, and how many at most (operator-kill: how many, default 3). */
  killEveryMs?: number;
  kills?: number;
  /** The simulator's latency outside the fault (latency ×10 multiplies it). */
  baseLatencyMs?: number;
  /** Give up waiting for completion after this long. */
  timeoutMs?: number;
  /** Called while the fault is on (e.g. readiness checks). */
  duringFault?: () => Promise<void>;
}

export type ScenarioName = 'worker-kill' | 'postgres-restart' | 'provider-503' | 'provider-latency-x10' | 'operator-kill';
export const SCENARIOS: readonly ScenarioName[] = ['worker-kill', 'postgres-restart', 'provider-503', 'provider-latency-x10', 'operator-kill'];

export interface ScenarioResult extends ChaosRow {
  completed: boolean;
  rows: Record<string, number>;
  /** Pids killed (worker-kill, operator-kill). */
  killed: number[];
}

export async function runScenario(ctx: ChaosContext, scenario: ScenarioName, o: ScenarioOptions): Promise<ScenarioResult> {
  const base = o.baseLatencyMs ?? 5;
  await simulator(ctx.platform, '/_sim/config', { latencyMs: base, down: false });
  const sampler = new RateSampler(ctx).start();
  const killed: number[] = [];
  let faultStart = 0;
  let faultEnd = 0;
  try {
    const before = await accepted(ctx);
    const bc = await startBroadcast(ctx, scenario, o.recipients);
    await waitForShare(ctx, bc, 0.2, before);
    faultStart = Date.now();
    switch (scenario) {
      case 'worker-kill': {
        const every = o.killEveryMs ?? 10_000;
        for (let i = 0; i < (o.kills ?? Infinity); i++) {
          if ((await accepted(ctx)) - before >= bc.recipients) break;
          const pid = ctx.platform.pids.worker;
          process.kill(pid, 'SIGKILL');
          killed.push(pid);
          ctx.log(`${scenario}: kill -9 worker pid ${pid}`);
          faultEnd = Date.now();
          await waitFor('the worker restarted', async () => ctx.platform.pids.worker !== pid && httpOk(`http://127.0.0.1:${ctx.platform.ports.worker}/readyz`), { timeoutMs: 120_000 });
          await o.duringFault?.();
          const wait = faultEnd + every - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        break;
      }
      case 'operator-kill':
        // The leader (the only operator), each time it is back: kills - 1 quick exits in a row.
        for (let i = 0; i < (o.kills ?? 3); i++) {
          const pid = ctx.platform.pids.operator;
          process.kill(pid, 'SIGKILL');
          killed.push(pid);
          ctx.log(`${scenario}: kill -9 operator pid ${pid}`);
          await waitFor('the operator restarted', async () => ctx.platform.pids.operator !== pid && httpOk(`http://127.0.0.1:${ctx.platform.ports.operator}/readyz`), { timeoutMs: 120_000 });
        }
        faultEnd = Date.now();
        await o.duringFault?.();
        break;
      case 'postgres-restart':
        await ctx.platform.database.stop();
        await o.duringFault?.();
        await new Promise((r) => setTimeout(r, Math.max(0, faultStart + o.faultMs - Date.now())));
        await ctx.platform.database.start();
        faultEnd = Date.now();
        break;
      case 'provider-503':
      case 'provider-latency-x10':
        await simulator(ctx.platform, '/_sim/config', scenario === 'provider-503' ? { down: true } : { latencyMs: base * 10 });
        await o.duringFault?.();
        await new Promise((r) => setTimeout(r, Math.max(0, faultStart + o.faultMs - Date.now())));
        await simulator(ctx.platform, '/_sim/config', { down: false, latencyMs: base });
        faultEnd = Date.now();
        break;
    }
    const t = await tally(ctx, bc, o.timeoutMs ?? 600_000);
    sampler.stop();
    return {
      scenario,
      broadcasts: 1,
      recipients: t.recipients,
      lost: t.lost,
      duplicates_counted: t.duplicates_counted,
      duplicates_uncounted: t.duplicates_uncounted,
      recovery_seconds: Number(sampler.recovery(faultStart, faultEnd, t.completedAt).toFixed(1)),
      completed: t.completed,
      rows: t.rows,
      killed,
    };
  } finally {
    sampler.stop();
    await simulator(ctx.platform, '/_sim/config', { down: false, latencyMs: base }).catch(() => {});
  }
}

const COLUMNS: (keyof ChaosRow)[] = ['scenario', 'broadcasts', 'recipients', 'lost', 'duplicates_counted', 'duplicates_uncounted', 'recovery_seconds'];

/** The rows as a fixed-width table. */
export function chaosTable(rows: ChaosRow[]): string {
  const cells = [COLUMNS.map(String), ...rows.map((r) => COLUMNS.map((c) => String(r[c])))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ')).join('\n');
}

/** One JSON line per scenario, with the field names. */
export function chaosJson(r: ChaosRow): string {
  return JSON.stringify({ scenario: r.scenario, recipients: r.recipients, lost: r.lost, duplicates_counted: r.duplicates_counted, duplicates_uncounted: r.duplicates_uncounted, recovery_seconds: r.recovery_seconds });
}
