/**
 * The demo data every manifest in examples/ runs against: two tenants (a church that
 * texts its members, a university that pushes to its students), each with a sending
 * number, contacts with tags and time zones, device tokens, and one opt-out.
 *
 * Idempotent: every row has a natural key (tenant id, phone number, token) and is
 * written with ON CONFLICT, so `npm start` seeds on every start and a restart adds
 * nothing. Phone numbers and tokens come from the provider simulator's always-delivered
 * ranges (services/simulator/behaviours.ts), so every demo send is delivered.
 *
 *   tsx scripts/seed-demo.ts        seeds DATABASE_URL (the embedded server is seeded by npm start)
 */
import { pathToFileURL } from 'node:url';
import type { Pool } from '../lib/db/postgres.js';
import { pushTokenOk, smsNumberOk } from '../services/simulator/behaviours.js';

export interface DemoContact {
  phone: string;
  name: string;
  timeZone: string | null;
  tags: string[];
  /** A registered app install (push). */
  deviceToken?: string;
  deviceTags?: string[];
  optedOut?: boolean;
}

export interface DemoTenant {
  id: string;
  name: string;
  defaultTimeZone: string;
  smsPerSecond: number;
  pushPerSecond: number;
  sendingNumber: { phone: string; kind: 'toll_free'; perSecond: number };
  contacts: DemoContact[];
}

/** Zones on both sides of the date line and of the equator (DST at different times of year). */
const ZONES = ['America/Chicago', 'America/New_York', 'America/Denver', 'America/Los_Angeles', 'Europe/London', 'Australia/Sydney', null] as const;

const FIRST = ['Ada', 'Ben', 'Cleo', 'Dan', 'Esther', 'Felix', 'Grace', 'Hugo', 'Iris', 'Jonah', 'Kate', 'Levi', 'Maya', 'Noah', 'Olive', 'Paul', 'Quinn', 'Ruth', 'Silas', 'Tess', 'Uri', 'Vera', 'Wes', 'Zoe'];

function graceChurch(): DemoTenant {
  const contacts: DemoContact[] = [];
  for (let i = 0; i < 24; i++) {
    const tags = ['members'];
    if (i < 8) tags.push('youth');
    else if (i < 14) tags.push('choir');
    else if (i < 20) tags.push('volunteers');
    // Birthdays today in the birthday example: a handful across time zones.
    if (i % 4 === 0) tags.push('birthday');
    contacts.push({
      phone: smsNumberOk(i),
      name: `${FIRST[i]} ${i < 12 ? 'Member' : 'Friend'}`,
      timeZone: ZONES[i % ZONES.length]!,
      tags,
      // Half the members have the church app.
      ...(i % 2 === 1 ? { deviceToken: pushTokenOk(i), deviceTags: ['app'] } : {}),
      // Replied STOP once: stays a contact, never texted again (status shows it as skipped).
      ...(i === 23 ? { optedOut: true } : {}),
    });
  }
  return {
    id: 'grace-church',
    name: 'Grace Church (demo)',
    defaultTimeZone: 'America/Chicago',
    smsPerSecond: 50,
    pushPerSecond: 500,
    sendingNumber: { phone: '+18885550100', kind: 'toll_free', perSecond: 20 },
    contacts,
  };
}

function northfieldUniversity(): DemoTenant {
  const contacts: DemoContact[] = [];
  for (let i = 0; i < 30; i++) {
    const cs101 = i < 12;
    contacts.push({
      phone: smsNumberOk(1000 + i),
      name: `Student ${i + 1}`,
      timeZone: i % 5 === 0 ? 'America/Chicago' : 'America/New_York',
      tags: ['students', 'campus', ...(cs101 ? ['cs101'] : [])],
      deviceToken: pushTokenOk(1000 + i),
      deviceTags: cs101 ? ['cs101'] : [],
    });
  }
  for (let i = 0; i < 6; i++) {
    contacts.push({
      phone: smsNumberOk(1100 + i),
      name: `Staff ${i + 1}`,
      timeZone: 'America/New_York',
      tags: ['staff', 'campus'],
    });
  }
  return {
    id: 'northfield-university',
    name: 'Northfield University (demo)',
    defaultTimeZone: 'America/New_York',
    smsPerSecond: 50,
    pushPerSecond: 500,
    sendingNumber: { phone: '+18885550101', kind: 'toll_free', perSecond: 20 },
    contacts,
  };
}

export const DEMO_TENANTS: readonly DemoTenant[] = [graceChurch(), northfieldUniversity()];

export function demoTenant(id: string): DemoTenant {
  const t = DEMO_TENANTS.find((x) => x.id === id);
  if (!t) throw new Error(`no demo tenant ${id}`);
  return t;
}

/** Contacts of a demo tenant carrying any of `tags` (what an SMS segment selects). */
export function demoSegment(tenantId: string, tags: string[]): DemoContact[] {
  return demoTenant(tenantId).contacts.filter((c) => c.tags.some((t) => tags.includes(t)));
}

/** Device tokens a push segment selects: the token's own tags or its contact's. */
export function demoDevices(tenantId: string, tags: string[]): DemoContact[] {
  return demoTenant(tenantId).contacts.filter(
    (c) => c.deviceToken && [...c.tags, ...(c.deviceTags ?? [])].some((t) => tags.includes(t)),
  );
}

export interface SeedReport {
  tenants: number;
  contacts: number;
  deviceTokens: number;
  optOuts: number;
}

/**
 * Write the demo data (idempotently). Existing rows keep their values: a demo tenant
 * whose rate limits someone raised keeps them.
 */
export async function seedDemo(pool: Pool, tenants: readonly DemoTenant[] = DEMO_TENANTS): Promise<SeedReport> {
  const report: SeedReport = { tenants: 0, contacts: 0, deviceTokens: 0, optOuts: 0 };
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const t of tenants) {
      await client.query(
        `INSERT INTO tenants (id, name, default_time_zone, sms_per_second, push_per_second)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
        [t.id, t.name, t.defaultTimeZone, t.smsPerSecond, t.pushPerSecond],
      );
      report.tenants++;
      await client.query(
        `INSERT INTO sending_numbers (tenant_id, phone_number, kind, per_second)
         VALUES ($1, $2, $3, $4) ON CONFLICT (phone_number) DO NOTHING`,
        [t.id, t.sendingNumber.phone, t.sendingNumber.kind, t.sendingNumber.perSecond],
      );
      for (const c of t.contacts) {
        const { rows } = await client.query<{ id: number }>(
          `INSERT INTO contacts (tenant_id, phone, name, time_zone, tags, consent_source, consent_at)
           VALUES ($1, $2, $3, $4, $5, 'demo-seed', now())
           ON CONFLICT (tenant_id, phone) DO UPDATE SET phone = EXCLUDED.phone
           RETURNING id`,
          [t.id, c.phone, c.name, c.timeZone, c.tags],
        );
        report.contacts++;
        if (c.deviceToken) {
          await client.query(
            `INSERT INTO device_tokens (tenant_id, contact_id, token, platform, tags)
             VALUES ($1, $2, $3, 'android', $4) ON CONFLICT (tenant_id, token) DO NOTHING`,
            [t.id, rows[0]!.id, c.deviceToken, c.deviceTags ?? []],
          );
          report.deviceTokens++;
        }
        if (c.optedOut) {
          await client.query(
            `INSERT INTO opt_outs (tenant_id, phone, opted_out_at, source, keyword)
             VALUES ($1, $2, now(), 'inbound_keyword', 'STOP') ON CONFLICT (tenant_id, phone) DO NOTHING`,
            [t.id, c.phone],
          );
          report.optOuts++;
        }
      }
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
  return report;
}

/**
 * Raise a tenant's SMS rate and its sending numbers' rates to `perSecond` through the
 * admin API (benchmarks and the chaos runs, whose subject is not the rate limits). A
 * sending number's rate is fixed at registration, so each is registered again.
 */
export async function raiseDemoLimits(apiUrl: string, adminToken: string, tenant: string, perSecond: number): Promise<void> {
  const admin = async (method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${apiUrl}${p}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  // Inline numbers that are no contacts of the tenant need its consent (otherwise the planner skips every one).
  const t = await admin('PATCH', `/admin/tenants/${tenant}`, { sms_per_second: perSecond, inline_numbers_consented: true });
  if (t.status !== 200) throw new Error(`raise tenant rate: ${t.status} ${JSON.stringify(t.json)}`);
  const numbers = (await admin('GET', `/admin/tenants/${tenant}/sending-numbers`)).json.items as { id: number; phone_number: string; kind: string }[];
  for (const n of numbers) {
    await admin('DELETE', `/admin/tenants/${tenant}/sending-numbers/${n.id}`);
    const r = await admin('POST', `/admin/tenants/${tenant}/sending-numbers`, { phone_number: n.phone_number, kind: n.kind, per_second: perSecond });
    if (r.status !== 201) throw new Error(`re-register ${n.phone_number}: ${r.status} ${JSON.stringify(r.json)}`);
  }
}

// CLI: seed the database DATABASE_URL names.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { createPool } = await import('../lib/db/postgres.js');
  const { migrate } = await import('../lib/db/migrate.js');
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('seed-demo: set DATABASE_URL (npm start seeds its embedded database by itself)');
    process.exit(2);
  }
  const pool = createPool(url, 2, 'seed');
  await migrate(pool);
  console.log(JSON.stringify(await seedDemo(pool)));
  await pool.end();
}
