import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { pino } from 'pino';
import type { Clock } from '../../lib/clock.js';
import type { Pool } from '../../lib/db/postgres.js';
import type { Outcome, SmsMessage } from '../providers/types.js';
import { createApiApp, type ApiApp, type ApiDeps } from './app.js';
import { startHttpServer, type RunningServer } from './server.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export interface TestApi {
  app: ApiApp;
  server: RunningServer;
  base: string;
  request(method: string, path: string, opts?: RequestOpts): Promise<{ status: number; body: any; headers: Headers }>;
  admin(method: string, path: string, json?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export interface RequestOpts {
  token?: string;
  json?: unknown;
  body?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

/** The api on an ephemeral port, spoken to over real HTTP. */
export async function startTestApi(pool: Pool, clock: Clock, extra: Partial<ApiDeps> = {}): Promise<TestApi> {
  const app = createApiApp({
    pool,
    clock,
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    adminToken: ADMIN_TOKEN,
    ...extra,
  });
  const server = await startHttpServer(app, 0, '127.0.0.1');
  const base = `http://127.0.0.1:${server.port}`;
  const request: TestApi['request'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | Buffer | undefined = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    if (opts.contentType) headers['content-type'] = opts.contentType;
    const res = await fetch(base + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (metrics)
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    app,
    server,
    base,
    request,
    admin: (method, path, json) => request(method, path, { token: ADMIN_TOKEN, json }),
    stop: async () => {
      await server.stop(1000);
    },
  };
}

/**
 * A tenant with a sending number and an API key, made through the admin routes. Its plan
 * is the synthetic one unless given, so a test's requests stay inside the API allowance
 * (tenant-allowance.test.ts tests the allowances themselves).
 */
export async function makeTenant(api: TestApi, id: string, number?: string, plan = 'synthetic'): Promise<{ id: string; key: string; keyId: number }> {
  const t = await api.admin('POST', '/admin/tenants', { id, name: `Tenant ${id}`, default_time_zone: 'America/Chicago', plan });
  if (t.status !== 201) throw new Error(`tenant: ${t.status} ${JSON.stringify(t.body)}`);
  if (number) {
    const n = await api.admin('POST', `/admin/tenants/${id}/sending-numbers`, { phone_number: number, kind: 'toll_free' });
    if (n.status !== 201) throw new Error(`number: ${n.status} ${JSON.stringify(n.body)}`);
  }
  const k = await api.admin('POST', `/admin/tenants/${id}/api-keys`);
  if (k.status !== 201) throw new Error(`key: ${k.status} ${JSON.stringify(k.body)}`);
  return { id, key: k.body.key, keyId: k.body.id };
}

/** A Telnyx-style signer: ed25519 over `${timestamp}|${body}`, public key as base64 of the raw 32 bytes. */
export function telnyxSigner(): { publicKey: string; sign(body: string, timestamp?: number): Record<string, string> } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return {
    publicKey: raw.toString('base64'),
    sign: (body, timestamp = Math.floor(Date.now() / 1000)) => signWith(privateKey, body, timestamp),
  };
}

function signWith(privateKey: KeyObject, body: string, timestamp: number): Record<string, string> {
  const signature = sign(null, Buffer.from(`${timestamp}|${body}`, 'utf8'), privateKey).toString('base64');
  return { 'telnyx-signature-ed25519': signature, 'telnyx-timestamp': String(timestamp), 'content-type': 'application/json' };
}

/** Records replies instead of sending them. */
export class RecordingSender {
  readonly sent: SmsMessage[] = [];
  async send(m: SmsMessage): Promise<Outcome> {
    this.sent.push(m);
    return { kind: 'accepted', providerMessageId: `reply-${this.sent.length}` };
  }
}

let seq = 0;
/** A broadcast of a tenant with one occurrence and deliveries in the given states, written directly. */
export async function seedBroadcast(
  pool: Pool,
  tenantId: string,
  deliveries: Array<{ address: string; status?: string; providerMessageId?: string; attempts?: number }>,
  opts: { channel?: 'sms' | 'push'; maxAttempts?: number; createdAt?: Date } = {},
): Promise<{ broadcastId: string; deliveryIds: number[] }> {
  const n = ++seq;
  const hex = n.toString(16).padStart(12, '0');
  const broadcastId = `00000000-0000-4000-8000-${hex}`;
  const occurrenceId = `00000000-0000-4000-9000-${hex}`;
  const channel = opts.channel ?? 'sms';
  await pool.query(
    `INSERT INTO broadcasts (id, tenant_id, name, channel, message_text, max_attempts, created_at)
     VALUES ($1, $2, $3, $4, 'hello', $5, $6)`,
    [broadcastId, tenantId, `b${n}`, channel, opts.maxAttempts ?? 5, opts.createdAt ?? new Date()],
  );
  await pool.query(`INSERT INTO occurrences (id, broadcast_id, key, scheduled_at) VALUES ($1, $2, 'once', now())`, [occurrenceId, broadcastId]);
  const ids: number[] = [];
  for (const [i, d] of deliveries.entries()) {
    const r = await pool.query<{ id: number }>(
      `INSERT INTO deliveries (occurrence_id, broadcast_id, tenant_id, channel, recipient_key, address, batch_no, status,
                               due_at, expires_at, provider_message_id, attempts, sent_at)
       VALUES ($1, $2, $3, $4, $5, $6, 0, $7, now(), now() + interval '6 hours', $8, $9,
               CASE WHEN $7 IN ('sent', 'delivered') THEN now() END)
       RETURNING id`,
      [occurrenceId, broadcastId, tenantId, channel, `p:${d.address}:${i}`, d.address, d.status ?? 'queued', d.providerMessageId ?? null, d.attempts ?? 1],
    );
    ids.push(r.rows[0]!.id);
  }
  return { broadcastId, deliveryIds: ids };
}
