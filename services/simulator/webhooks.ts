import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createHttpFetch } from '../providers/http-fetch.js';

/**
 * Telnyx-style webhook signing and delivery.
 *
 * Telnyx signs `${timestamp}|${rawBody}` with ed25519 and sends the base64 signature in
 * `telnyx-signature-ed25519` and the unix-seconds timestamp in `telnyx-timestamp`; the
 * public key it publishes (and the telnyx SDK's TelnyxWebhook expects) is the raw
 * 32-byte ed25519 key in base64.
 */

export interface SigningKey {
  privateKey: KeyObject;
  /** base64 of the raw 32-byte public key, as Telnyx publishes it */
  publicKey: string;
}

// PKCS#8 DER prefix of an ed25519 private key; the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A signing key: from a base64 32-byte seed (stable across restarts) or fresh. */
export function createSigningKey(seedBase64?: string): SigningKey {
  let privateKey: KeyObject;
  if (seedBase64) {
    const seed = Buffer.from(seedBase64, 'base64');
    if (seed.length !== 32) throw new Error('the ed25519 seed must be 32 bytes (base64)');
    privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  } else {
    privateKey = generateKeyPairSync('ed25519').privateKey;
  }
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return { privateKey, publicKey: Buffer.from(jwk.x as string, 'base64url').toString('base64') };
}

/** The 32-byte seed of a key, base64, so a process can persist and reuse it. */
export function signingKeySeed(key: SigningKey): string {
  const der = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  return der.subarray(der.length - 32).toString('base64');
}

export interface SignedHeaders {
  'telnyx-signature-ed25519': string;
  'telnyx-timestamp': string;
}

export function signTelnyxWebhook(
  privateKey: KeyObject,
  rawBody: string,
  timestamp: number = Math.floor(Date.now() / 1000),
): SignedHeaders {
  const signature = sign(null, Buffer.from(`${timestamp}|${rawBody}`), privateKey);
  return { 'telnyx-signature-ed25519': signature.toString('base64'), 'telnyx-timestamp': String(timestamp) };
}

export interface TelnyxEventData {
  event_type: string;
  id: string;
  occurred_at: string;
  payload: Record<string, unknown>;
  record_type: 'event';
}

export function telnyxEvent(eventType: string, payload: Record<string, unknown>, at = new Date()): TelnyxEventData {
  return { event_type: eventType, id: randomUUID(), occurred_at: at.toISOString(), payload, record_type: 'event' };
}

export interface WebhookRecord {
  eventId: string;
  eventType: string;
  url: string;
  attempt: number;
  /** HTTP status of the endpoint's answer; 0 when the request itself failed */
  status: number;
  body: string;
  headers: SignedHeaders;
}

export interface WebhookStats {
  posted: number;
  delivered: number;
  failed: number;
  pending: number;
}

export interface WebhookSenderOptions {
  key: SigningKey;
  attempts: () => number;
  retryDelayMs: () => number;
  timeoutMs?: number;
  /** how many recent deliveries to keep for inspection and redelivery */
  logSize?: number;
}

/**
 * Posts signed events, retrying like Telnyx does (attempt counted in meta.attempt,
 * then the failover URL), and keeps a short ring of what it sent.
 */
export class WebhookSender {
  readonly stats: WebhookStats = { posted: 0, delivered: 0, failed: 0, pending: 0 };
  private readonly ring: WebhookRecord[] = [];
  private ringNext = 0;
  private readonly events = new Map<string, { data: TelnyxEventData; url: string; failoverUrl?: string }>();
  private idleWaiters: (() => void)[] = [];
  // Receipts can run at thousands a second: a keep-alive node:http client, lighter than fetch.
  private readonly http = createHttpFetch({ maxSockets: 512 });

  constructor(private readonly opts: WebhookSenderOptions) {}

  close(): void {
    this.http.destroy();
  }

  /** Deliver one event; resolves with the last attempt's record once delivered or given up. */
  async deliver(data: TelnyxEventData, url: string, failoverUrl?: string): Promise<WebhookRecord> {
    this.stats.pending++;
    this.remember(data, url, failoverUrl);
    try {
      const attempts = Math.max(1, this.opts.attempts());
      let last: WebhookRecord | undefined;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const target = attempt > 1 && failoverUrl ? failoverUrl : url;
        last = await this.post(data, target, attempt);
        if (last.status >= 200 && last.status < 300) {
          this.stats.delivered++;
          return last;
        }
        if (attempt < attempts) await sleep(this.opts.retryDelayMs() * attempt);
      }
      this.stats.failed++;
      return last!;
    } finally {
      this.stats.pending--;
      if (this.stats.pending === 0) this.wakeIdle();
    }
  }

  /**
   * Send an event again, as Telnyx does when it did not see a 2xx in time. With
   * sameRequest the exact earlier request (timestamp and signature) is replayed.
   */
  async redeliver(eventId: string, opts: { sameRequest?: boolean; url?: string } = {}): Promise<WebhookRecord> {
    if (opts.sameRequest) {
      const rec = [...this.ring].reverse().find((r) => r && r.eventId === eventId);
      if (!rec) throw new Error(`no recorded request for event ${eventId}`);
      return this.send(rec.eventId, rec.eventType, opts.url ?? rec.url, rec.attempt, rec.body, rec.headers);
    }
    const ev = this.events.get(eventId);
    if (!ev) throw new Error(`unknown event ${eventId}`);
    const previous = this.ring.filter((r) => r && r.eventId === eventId).reduce((m, r) => Math.max(m, r.attempt), 0);
    return this.post(ev.data, opts.url ?? ev.url, previous + 1);
  }

  log(): WebhookRecord[] {
    const n = this.opts.logSize ?? 1000;
    const ordered = this.ring.length < n ? [...this.ring] : [...this.ring.slice(this.ringNext), ...this.ring.slice(0, this.ringNext)];
    return ordered.filter(Boolean);
  }

  idle(): Promise<void> {
    if (this.stats.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  reset(): void {
    this.ring.length = 0;
    this.ringNext = 0;
    this.events.clear();
    this.stats.posted = this.stats.delivered = this.stats.failed = 0;
  }

  private async post(data: TelnyxEventData, url: string, attempt: number): Promise<WebhookRecord> {
    const body = JSON.stringify({ data, meta: { attempt, delivered_to: url } });
    return this.send(data.id, data.event_type, url, attempt, body, signTelnyxWebhook(this.opts.key.privateKey, body));
  }

  private async send(eventId: string, eventType: string, url: string, attempt: number, body: string, headers: SignedHeaders): Promise<WebhookRecord> {
    this.stats.posted++;
    let status = 0;
    try {
      const res = await this.http(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'telnyx-webhooks', ...headers },
        body,
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
      });
      status = res.status;
      await res.arrayBuffer().catch(() => undefined);
    } catch {
      status = 0;
    }
    const rec: WebhookRecord = { eventId, eventType, url, attempt, status, body, headers };
    this.record(rec);
    return rec;
  }

  private remember(data: TelnyxEventData, url: string, failoverUrl?: string): void {
    const n = this.opts.logSize ?? 1000;
    if (this.events.size >= n) {
      const oldest = this.events.keys().next().value;
      if (oldest !== undefined) this.events.delete(oldest);
    }
    this.events.set(data.id, { data, url, failoverUrl });
  }

  private record(rec: WebhookRecord): void {
    const n = this.opts.logSize ?? 1000;
    if (this.ring.length < n) this.ring.push(rec);
    else this.ring[this.ringNext] = rec;
    this.ringNext = (this.ringNext + 1) % n;
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
