import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Semaphore } from '../../lib/semaphore.js';

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
  /** per request, counted from when it is sent (not while it waits for a slot) */
  timeoutMs?: number;
  /** requests on the wire at once; the rest wait their turn (default 64) */
  maxInFlight?: number;
  /** how many recent deliveries to keep for inspection and redelivery */
  logSize?: number;
}

/**
 * Posts signed events, retrying like Telnyx does (attempt counted in meta.attempt,
 * then the failover URL), and keeps a short ring of what it sent.
 *
 * Receipts come in bursts of thousands (one pair per accepted message). Only
 * maxInFlight requests are on the wire at once, each on a kept-alive connection, and
 * the timeout runs from when a request is sent: with every receipt of a burst in
 * flight, a receiver that needs a few seconds for the backlog saw the later ones time
 * out, get retried (signed again) and their connections torn down and reopened — most
 * of both sides' CPU went to that rather than to the receipts.
 */
export class WebhookSender {
  readonly stats: WebhookStats = { posted: 0, delivered: 0, failed: 0, pending: 0 };
  private readonly ring: WebhookRecord[] = [];
  private ringNext = 0;
  private readonly events = new Map<string, { data: TelnyxEventData; url: string; failoverUrl?: string }>();
  private idleWaiters: (() => void)[] = [];
  private readonly slots: Semaphore;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(private readonly opts: WebhookSenderOptions) {
    const max = opts.maxInFlight ?? 64;
    this.slots = new Semaphore(max);
    // maxFreeSockets as high as maxSockets: an idle connection is kept, not closed at the end of a burst.
    const agentOptions = { keepAlive: true, maxSockets: max, maxFreeSockets: max };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
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
    const ev = this.events.get(eventId);
    // Only to where the event was already sent (its URL or failover URL): redelivery is no way to make the simulator POST anywhere.
    if (opts.url !== undefined && opts.url !== ev?.url && opts.url !== ev?.failoverUrl) {
      throw new Error(`event ${eventId} was not sent to ${opts.url}; it can be redelivered only to its own webhook or failover URL`);
    }
    if (opts.sameRequest) {
      const rec = [...this.ring].reverse().find((r) => r.eventId === eventId);
      if (!rec) throw new Error(`no recorded request for event ${eventId}`);
      return this.send(rec.eventId, rec.eventType, opts.url ?? rec.url, rec.attempt, rec.body, rec.headers);
    }
    if (!ev) throw new Error(`unknown event ${eventId}`);
    const previous = this.ring.filter((r) => r.eventId === eventId).reduce((m, r) => Math.max(m, r.attempt), 0);
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
    await this.slots.acquire();
    try {
      // Signed once it has a slot, so the timestamp is that of the request that carries it.
      const body = JSON.stringify({ data, meta: { attempt, delivered_to: url } });
      return await this.request(data.id, data.event_type, url, attempt, body, signTelnyxWebhook(this.opts.key.privateKey, body));
    } finally {
      this.slots.release();
    }
  }

  private async send(eventId: string, eventType: string, url: string, attempt: number, body: string, headers: SignedHeaders): Promise<WebhookRecord> {
    await this.slots.acquire();
    try {
      return await this.request(eventId, eventType, url, attempt, body, headers);
    } finally {
      this.slots.release();
    }
  }

  private async request(eventId: string, eventType: string, url: string, attempt: number, body: string, headers: SignedHeaders): Promise<WebhookRecord> {
    this.stats.posted++;
    const status = await postJson(url, body, headers, { http: this.httpAgent, https: this.httpsAgent }, this.opts.timeoutMs ?? 5000);
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

// One shared instance: a timed-out or refused webhook is an expected outcome (status 0),
// not worth a stack trace (prepared through tsx's source maps) per failure.
const TIMED_OUT = new Error('webhook request timed out');
const ignore = () => undefined;

/** POST a body; resolves with the answer's status once its body is read, 0 if the request failed or timed out. */
function postJson(url: string, body: string, signed: SignedHeaders, agents: { http: http.Agent; https: https.Agent }, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const headers = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'user-agent': 'telnyx-webhooks',
      ...signed,
    };
    let answer: http.IncomingMessage | undefined;
    let req: http.ClientRequest;
    try {
      const target = new URL(url);
      const secure = target.protocol === 'https:';
      req = (secure ? https : http).request(target, { method: 'POST', headers, agent: secure ? agents.https : agents.http }, (res) => {
        answer = res;
        res.resume();
      });
    } catch {
      return resolve(0); // not a URL this client can post to
    }
    const timer = setTimeout(() => req.destroy(TIMED_OUT), timeoutMs);
    req.on('error', ignore);
    // 'close' follows the end of the answer (the socket back in the pool) or a failure.
    req.on('close', () => {
      clearTimeout(timer);
      resolve(answer?.complete ? (answer.statusCode ?? 0) : 0);
    });
    req.end(body);
  });
}
