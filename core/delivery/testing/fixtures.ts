import { randomUUID } from 'node:crypto';
import type { Pool } from '../../../lib/db/postgres.js';
import { upsertBroadcast, type BroadcastRecord } from '../broadcasts.js';
import { smsNumberOk } from '../../../services/simulator/behaviours.js';

/** Test data written straight into PostgreSQL (the api is tested on its own). */
export async function seedTenant(
  pool: Pool,
  id: string,
  o: {
    smsPerSecond?: number; pushPerSecond?: number; tz?: string; quiet?: [string, string];
    numbers?: { phone: string; kind?: string; perSecond?: number; campaign?: string }[];
    /**
     * The tenant holds consent for the numbers it names inline. True by default here: the
     * delivery tests text inline numbers that are not contacts; consent has its own tests.
     */
    inlineNumbersConsented?: boolean;
  } = {},
): Promise<void> {
  await pool.query(
    `INSERT INTO tenants (id, name, default_time_zone, sms_per_second, push_per_second, quiet_hours_start, quiet_hours_end, inline_numbers_consented)
     VALUES ($1, $1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
    [id, o.tz ?? 'America/Chicago', o.smsPerSecond ?? 100_000, o.pushPerSecond ?? 100_000, o.quiet?.[0] ?? null, o.quiet?.[1] ?? null, o.inlineNumbersConsented ?? true],
  );
  for (const n of o.numbers ?? [{ phone: `+1888555${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}` }]) {
    await pool.query(
      `INSERT INTO sending_numbers (tenant_id, phone_number, kind, per_second, campaign_id) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (phone_number) DO NOTHING`,
      [id, n.phone, n.kind ?? 'toll_free', n.perSecond ?? 100_000, n.campaign ?? null],
    );
  }
}

/**
 * `count` contacts with the simulator's always-delivered numbers (smsNumberOk), via generate_series, so a
 * million takes seconds), tagged with `tags`, optionally with a device token each.
 */
export async function seedContacts(
  pool: Pool,
  tenantId: string,
  count: number,
  o: { tags?: string[]; tz?: string | null; offset?: number; tokens?: boolean; tokenPrefix?: string } = {},
): Promise<void> {
  const offset = o.offset ?? 0;
  await pool.query(
    `INSERT INTO contacts (tenant_id, phone, tags, time_zone)
     SELECT $1, '+1206' || (2000000 + $4 + g)::text, $2::text[], $3
       FROM generate_series(0, $5 - 1) g
     ON CONFLICT (tenant_id, phone) DO NOTHING`,
    [tenantId, o.tags ?? [], o.tz ?? null, offset, count],
  );
  if (o.tokens) {
    await pool.query(
      `INSERT INTO device_tokens (tenant_id, contact_id, token, tags)
       SELECT c.tenant_id, c.id, $2 || c.id, c.tags FROM contacts c WHERE c.tenant_id = $1
       ON CONFLICT (tenant_id, token) DO NOTHING`,
      [tenantId, o.tokenPrefix ?? 'tok-'],
    );
  }
}

/** The phone of the i-th seeded contact (offsets included). */
export const phoneOf = smsNumberOk;

export async function seedBroadcast(pool: Pool, o: Partial<BroadcastRecord> & { tenantId: string }): Promise<BroadcastRecord> {
  const b: BroadcastRecord = {
    id: randomUUID(),
    generation: 1,
    channel: 'sms',
    text: 'Service starts at 10am. Reply STOP to opt out.',
    audience: { segment: { all: true } },
    priority: 'normal',
    maxAttempts: 5,
    expireAfterSeconds: 6 * 3600,
    suspended: false,
    ...o,
  };
  await upsertBroadcast(pool, b);
  return b;
}
