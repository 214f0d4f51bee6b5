import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import { generate } from 'selfsigned';
import { afterAcceptBehaviour, FCM_ERRORS, finalizedStatus, isUnconfirmed, pushBehaviour, smsBehaviour, telnyxCodeInfo, type AfterAccept, type FcmErrorCode, type TelnyxCodeInfo } from './behaviours.js';
import { FCM_HOST, GOOGLE_TOKEN_HOST, SIMULATOR_FCM_ACCESS_TOKEN, SIMULATOR_TELNYX_API_KEY, type SimulatorInfo } from './client.js';
import { smsParts } from './sms-parts.js';
import { GoogleTokenEndpoint, type SimulatedServiceAccount } from './google-oauth.js';
import { createSigningKey, telnyxEvent, WebhookSender, type SigningKey, type WebhookRecord, type WebhookStats } from './webhooks.js';

/**
 * The provider simulator: the subset of the Telnyx Messaging API (POST /v2/messages,
 * signed receipt and inbound webhooks) and of the FCM HTTP v1 API
 * (POST /v1/projects/{project}/messages:send, on a TLS port whose certificate is
 * valid for fcm.googleapis.com) that the telnyx and firebase-admin SDKs use.
 *
 * It is built to take a benchmark's load: no per-request logging, O(1) bookkeeping
 * per message (a counter and a map entry per recipient).
 *
 * A test double: production code reaches a running simulator through ./client.ts only.
 */

export { FCM_HOST, connectToSimulator, type SimulatorInfo } from './client.js';


export interface SimulatorConfig {
  /** Added to every provider request before it is answered. */
  latencyMs: number;
  /** Probability (0..1) that a provider request fails with a random retryable error (5xx or 429). */
  errorRate: number;
  /** Overrides errorRate for one channel. */
  smsErrorRate?: number;
  pushErrorRate?: number;
  /** Every provider request answers 503. */
  down: boolean;
  /** Delay before a message's receipts (message.sent, then message.finalized) are posted. */
  receiptDelayMs: number;
  /** Which receipts to post for accepted SMS. */
  receipts: 'all' | 'finalized' | 'none';
  /** Where receipts go when the message has no webhook_url (and inbound events by default). */
  defaultWebhookUrl?: string;
  /** Retry-After (seconds) on 429s and FCM UNAVAILABLE / QUOTA_EXCEEDED answers. */
  retryAfterSeconds: number;
  /** Keep every accepted message for GET /_sim/received?messages=1 (memory grows with sends). */
  keepMessages: boolean;
  /** Webhook delivery attempts (Telnyx retries failed deliveries) and the base delay between them. */
  webhookAttempts: number;
  webhookRetryDelayMs: number;
  /** How long an accepted-then-held answer waits (behaviours.ts: smsNumberAfterAccept, pushTokenAfterAccept). */
  holdMs: number;
  /** The Telnyx API keys the account has; a request with another key is refused (401, 10009), as Telnyx does. */
  telnyxApiKeys: string[];
  /** Fixed FCM access tokens sends may carry (Bearer), besides the ones the token endpoint issued; any other is answered 401 UNAUTHENTICATED. */
  fcmAccessTokens: string[];
  /** Service accounts whose signed JWTs the token endpoint (oauth2.googleapis.com/token, on the TLS port) exchanges for access tokens. */
  serviceAccounts: SimulatedServiceAccount[];
  /** How long an access token the token endpoint issues is accepted (Google's is an hour). */
  fcmTokenLifetimeSeconds: number;
}

export const DEFAULT_CONFIG: SimulatorConfig = {
  latencyMs: 0,
  errorRate: 0,
  down: false,
  receiptDelayMs: 20,
  receipts: 'all',
  retryAfterSeconds: 1,
  keepMessages: false,
  webhookAttempts: 3,
  webhookRetryDelayMs: 500,
  // Past both SDKs' default timeouts (telnyx 10 s as Herald sets it, firebase-admin 15 s).
  holdMs: 20_000,
  telnyxApiKeys: [SIMULATOR_TELNYX_API_KEY],
  fcmAccessTokens: [SIMULATOR_FCM_ACCESS_TOKEN],
  serviceAccounts: [],
  fcmTokenLifetimeSeconds: 3600,
};

export interface SimulatorOptions extends Partial<SimulatorConfig> {
  host?: string;
  /** HTTP port (Telnyx API, admin routes); 0 picks a free one. */
  port?: number;
  /** TLS port (FCM API); 0 picks a free one. */
  fcmPort?: number;
  /** base64 32-byte ed25519 seed, to keep the webhook key stable across restarts */
  signingKeySeed?: string;
  /** PEM key and certificate for the TLS port, to keep them stable across restarts */
  tls?: { key: string; cert: string };
  /**
   * false: of /_sim/* only what a process that did not start the simulator reads (health,
   * info, public key, CA); configuring, resetting, reading what was sent, inbound and
   * redelivery answer 404. In a cluster nothing may steer the simulator (default true).
   */
  adminRoutes?: boolean;
}

/** The /_sim routes left when admin routes are off: read-only, nothing secret in them. */
const PUBLIC_SIM_ROUTES = new Set(['/_sim/health', '/_sim/info', '/_sim/public-key', '/_sim/ca']);

export type Channel = 'sms' | 'push';

export interface ReceivedMessage {
  channel: Channel;
  to: string;
  id: string;
  at: string;
  from?: string;
  text?: string;
  title?: string;
}

export interface ChannelSummary {
  /** HTTP requests that reached the send endpoint, whatever their answer */
  requests: number;
  accepted: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
  /** distinct recipients with at least one accepted message */
  recipients: number;
  /** recipients that got more than one accepted message, with their counts */
  duplicates: { count: number; recipients: Record<string, number> };
  perRecipient?: Record<string, number>;
  messages?: ReceivedMessage[];
}

export interface ReceivedSummary {
  /** accepted messages, both channels */
  total: number;
  sms: ChannelSummary;
  push: ChannelSummary;
  webhooks: WebhookStats;
}


export interface Simulator extends SimulatorInfo {
  port: number;
  config(): SimulatorConfig;
  configure(patch: Partial<SimulatorConfig>): SimulatorConfig;
  /** The next `count` provider requests on the channel fail with `status` (default 500). */
  failNext(channel: Channel, count: number, status?: number): void;
  received(opts?: { recipients?: boolean; messages?: boolean }): ReceivedSummary;
  /** Access tokens the token endpoint issued (and how many exchanges it refused), since the last reset. */
  tokenGrants(): { granted: { clientEmail: string; token: string; expiresAt: number }[]; refused: number };
  /** Accepted messages for one recipient (phone number, push token, or `topic:<name>`). */
  countFor(recipient: string): number;
  /** Forget everything received and every webhook sent (configuration stays). */
  reset(): void;
  /** An inbound SMS from a handset: posts a signed message.received webhook. */
  inbound(msg: { from: string; to: string; text: string; webhookUrl?: string }): Promise<WebhookRecord>;
  webhookLog(): WebhookRecord[];
  redeliver(eventId: string, opts?: { sameRequest?: boolean; url?: string }): Promise<WebhookRecord>;
  /** Resolves once every scheduled receipt has been posted (or given up). */
  idle(): Promise<void>;
  signingKey: SigningKey;
  close(): Promise<void>;
}

class ChannelBook {
  requests = 0;
  accepted = 0;
  rejected = 0;
  rejectedByCode = new Map<string, number>();
  perRecipient = new Map<string, number>();
  duplicates = new Set<string>();
  messages: ReceivedMessage[] = [];
  failNext = 0;
  failNextStatus = 500;

  accept(to: string, msg: ReceivedMessage | null): void {
    this.accepted++;
    const n = (this.perRecipient.get(to) ?? 0) + 1;
    this.perRecipient.set(to, n);
    if (n === 2) this.duplicates.add(to);
    if (msg) this.messages.push(msg);
  }

  reject(code: string): void {
    this.rejected++;
    this.rejectedByCode.set(code, (this.rejectedByCode.get(code) ?? 0) + 1);
  }

  summary(opts: { recipients?: boolean; messages?: boolean }): ChannelSummary {
    const dup: Record<string, number> = {};
    for (const r of this.duplicates) dup[r] = this.perRecipient.get(r)!;
    return {
      requests: this.requests,
      accepted: this.accepted,
      rejected: this.rejected,
      rejectedByCode: Object.fromEntries(this.rejectedByCode),
      recipients: this.perRecipient.size,
      duplicates: { count: this.duplicates.size, recipients: dup },
      ...(opts.recipients ? { perRecipient: Object.fromEntries(this.perRecipient) } : {}),
      ...(opts.messages ? { messages: [...this.messages] } : {}),
    };
  }

  reset(): void {
    this.requests = this.accepted = this.rejected = 0;
    this.rejectedByCode.clear();
    this.perRecipient.clear();
    this.duplicates.clear();
    this.messages = [];
    this.failNext = 0;
  }
}

const E164 = /^\+[1-9]\d{6,14}$/;
/** A registration token's shape: base64url text and colons, nothing else (no spaces, no control characters). */
const FCM_TOKEN = /^[A-Za-z0-9_:.-]{1,4096}$/;
const FCM_PATH = /^\/v1\/projects\/([^/]+)\/messages:send$/;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function telnyxError(info: Pick<TelnyxCodeInfo, 'code' | 'title' | 'detail'>, pointer?: string) {
  return {
    errors: [{
      code: info.code,
      title: info.title,
      detail: info.detail,
      ...(pointer ? { source: { pointer } } : {}),
      meta: { url: `https://developers.telnyx.com/api/errors/${info.code}` },
    }],
  };
}

function googleError(httpStatus: number, status: string, message: string, fcmCode?: string, fieldViolation?: string) {
  const details: Record<string, unknown>[] = [];
  if (fcmCode) details.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: fcmCode });
  if (fieldViolation) {
    details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: fieldViolation, description: message }] });
  }
  return { error: { code: httpStatus, message, status, details } };
}

/** Generate a certificate for fcm.googleapis.com, oauth2.googleapis.com (and localhost) signed by itself. */
export async function generateFcmCertificate(): Promise<{ key: string; cert: string }> {
  const pems = await generate([{ name: 'commonName', value: FCM_HOST }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 5 * 365 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: FCM_HOST },
          { type: 2, value: GOOGLE_TOKEN_HOST },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const { host = '127.0.0.1', port = 0, fcmPort = 0, signingKeySeed, tls, adminRoutes = true, ...configOpts } = opts;
  const cfg: SimulatorConfig = { ...DEFAULT_CONFIG, ...stripUndefined(configOpts) };
  const key = createSigningKey(signingKeySeed);
  const tlsPems = tls ?? (await generateFcmCertificate());
  const sms = new ChannelBook();
  const push = new ChannelBook();
  const sender = new WebhookSender({ key, attempts: () => cfg.webhookAttempts, retryDelayMs: () => cfg.webhookRetryDelayMs });
  let receiptsPending = 0;
  let idleWaiters: (() => void)[] = [];
  let fcmSeq = 0;
  const timers = new Set<NodeJS.Timeout>();
  const tokens = new GoogleTokenEndpoint(() => cfg);

  const errorRate = (ch: Channel) => (ch === 'sms' ? cfg.smsErrorRate : cfg.pushErrorRate) ?? cfg.errorRate;

  /** A forced or random failure for this request, as an HTTP status; 0 for none. */
  function injectedFailure(book: ChannelBook, ch: Channel): number {
    if (book.failNext > 0) {
      book.failNext--;
      return book.failNextStatus;
    }
    const rate = errorRate(ch);
    if (rate > 0 && Math.random() < rate) {
      const r = Math.random();
      return r < 1 / 3 ? 429 : r < 2 / 3 ? 500 : 503;
    }
    return 0;
  }

  function checkIdle(): void {
    if (receiptsPending !== 0) return;
    void sender.idle().then(() => {
      if (receiptsPending !== 0) return;
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    });
  }

  /**
   * message.sent (unless Telnyx never handed it on: sending_failed), then message.finalized
   * with the recipient's final status as Telnyx publishes them: delivered, delivery_failed,
   * sending_failed or expired with `errors`, or delivery_unconfirmed (the carrier never said).
   */
  function scheduleReceipts(message: Record<string, unknown>, url: string, failoverUrl: string | undefined, failure: TelnyxCodeInfo | null): void {
    if (cfg.receipts === 'none') return;
    receiptsPending++;
    const send = async () => {
      timers.delete(t);
      try {
        const to = (message.to as { phone_number: string }[])[0]!;
        const finalStatus = failure ? finalizedStatus(failure.code) : isUnconfirmed(to.phone_number) ? 'delivery_unconfirmed' : 'delivered';
        if (cfg.receipts === 'all' && finalStatus !== 'sending_failed') {
          const sentAt = new Date().toISOString();
          await sender.deliver(
            telnyxEvent('message.sent', { ...message, to: [{ ...to, status: 'sent' }], sent_at: sentAt }),
            url, failoverUrl,
          );
        }
        const now = new Date().toISOString();
        const errors = failure ? [{ code: failure.code, title: failure.title, detail: failure.detail }] : [];
        await sender.deliver(
          telnyxEvent('message.finalized', {
            ...message,
            to: [{ ...to, status: finalStatus }],
            sent_at: now,
            completed_at: now,
            errors,
          }),
          url, failoverUrl,
        );
      } finally {
        receiptsPending--;
        checkIdle();
      }
    };
    // deliver() never rejects (a failed POST is recorded as status 0), so nothing goes unhandled.
    const t = setTimeout(() => void send(), cfg.receiptDelayMs);
    timers.add(t);
  }

  async function handleTelnyxSend(ctx: Koa.Context): Promise<void> {
    sms.requests++;
    if (cfg.latencyMs > 0) await sleep(cfg.latencyMs);
    if (cfg.down) return void answer(ctx, 503, telnyxError({ code: '10007', title: 'Unexpected error', detail: 'Service unavailable.' }), sms, '10007');
    const auth = ctx.get('authorization');
    if (!auth.startsWith('Bearer ') || !cfg.telnyxApiKeys.includes(auth.slice(7))) {
      return void answer(ctx, 401, telnyxError({ code: '10009', title: 'Authentication failed', detail: 'The required authentication headers were either invalid or not included in the request.' }), sms, '10009');
    }
    const body = parseJson(await readBody(ctx.req)) as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') {
      return void answer(ctx, 400, telnyxError({ code: '10015', title: 'Bad Request', detail: 'The request failed because it was not well-formed.' }), sms, '10015');
    }
    const to = body.to;
    if (typeof to !== 'string' || !to) return void answer(ctx, 400, telnyxError({ code: '10004', title: 'Missing required parameter', detail: "The 'to' parameter is required." }, '/to'), sms, '10004');
    if (!E164.test(to)) return void answer(ctx, 400, telnyxError({ code: '10016', title: 'Phone number must be in +E.164 format', detail: "The 'to' parameter must be in +E.164 format." }, '/to'), sms, '10016');
    const from = typeof body.from === 'string' ? body.from : undefined;
    if (!from && typeof body.messaging_profile_id !== 'string') {
      return void answer(ctx, 400, telnyxError({ code: '10004', title: 'Missing required parameter', detail: "One of 'from' or 'messaging_profile_id' is required." }, '/from'), sms, '10004');
    }
    const text = typeof body.text === 'string' ? body.text : '';
    if (!text && !Array.isArray(body.media_urls)) {
      return void answer(ctx, 400, telnyxError({ code: '10004', title: 'Missing required parameter', detail: "The 'text' parameter is required." }, '/text'), sms, '10004');
    }
    const injected = injectedFailure(sms, 'sms');
    if (injected) {
      const info = injected === 429 ? telnyxCodeInfo('10011')! : telnyxCodeInfo('10007')!;
      if (injected === 429) ctx.set('Retry-After', String(cfg.retryAfterSeconds));
      return void answer(ctx, injected, telnyxError(info), sms, String(injected));
    }
    const behaviour = smsBehaviour(to);
    if (behaviour?.mode === 'send') {
      const detail = behaviour.info.detail.replace('{src}', from ?? '').replace('{dst}', to);
      return void answer(ctx, behaviour.info.httpStatus, telnyxError({ ...behaviour.info, detail }), sms, behaviour.info.code);
    }

    const now = new Date().toISOString();
    const id = randomUUID();
    const { parts, encoding } = smsParts(text);
    const webhookUrl = typeof body.webhook_url === 'string' ? body.webhook_url : cfg.defaultWebhookUrl;
    const failoverUrl = typeof body.webhook_failover_url === 'string' ? body.webhook_failover_url : undefined;
    const message: Record<string, unknown> = {
      record_type: 'message',
      direction: 'outbound',
      id,
      type: 'SMS',
      messaging_profile_id: typeof body.messaging_profile_id === 'string' ? body.messaging_profile_id : null,
      organization_id: 'sim-organization',
      from: { phone_number: from ?? '', carrier: 'Telnyx', line_type: 'Wireless' },
      to: [{ phone_number: to, status: 'queued', carrier: 'T-Mobile USA', line_type: 'Wireless' }],
      cc: [],
      text,
      media: [],
      webhook_url: webhookUrl ?? null,
      webhook_failover_url: failoverUrl ?? null,
      encoding,
      parts,
      tags: Array.isArray(body.tags) ? body.tags : [],
      cost: null,
      received_at: now,
      sent_at: null,
      completed_at: null,
      valid_until: new Date(Date.now() + 4 * 3600_000).toISOString(),
      errors: [],
    };
    const lostAnswer = firstAcceptance(sms, 'sms', to);
    sms.accept(to, cfg.keepMessages ? { channel: 'sms', to, id, at: now, from, text } : null);
    if (webhookUrl) scheduleReceipts(message, webhookUrl, failoverUrl, behaviour?.mode === 'receipt' ? behaviour.info : null);
    if (lostAnswer && (await loseAnswer(ctx, lostAnswer))) return;
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify({ data: message });
  }

  async function handleFcmSend(ctx: Koa.Context, project: string): Promise<void> {
    push.requests++;
    if (cfg.latencyMs > 0) await sleep(cfg.latencyMs);
    if (cfg.down) {
      return void answer(ctx, 503, googleError(503, 'UNAVAILABLE', 'The service is currently unavailable.', 'UNAVAILABLE'), push, 'UNAVAILABLE');
    }
    const auth = ctx.get('authorization');
    const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!cfg.fcmAccessTokens.includes(bearer) && !tokens.accepts(bearer)) {
      return void answer(ctx, 401, googleError(401, 'UNAUTHENTICATED',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.'), push, 'UNAUTHENTICATED');
    }
    const body = parseJson(await readBody(ctx.req)) as { message?: Record<string, unknown>; validate_only?: boolean } | undefined;
    const message = body?.message;
    if (!message || typeof message !== 'object') {
      return void answer(ctx, 400, googleError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', 'INVALID_ARGUMENT', 'message'), push, 'INVALID_ARGUMENT');
    }
    const token = typeof message.token === 'string' ? message.token : undefined;
    const topic = typeof message.topic === 'string' ? message.topic : undefined;
    const recipient = token ?? (topic ? `topic:${topic}` : typeof message.condition === 'string' ? `condition:${message.condition}` : undefined);
    if (!recipient) {
      return void answer(ctx, 400, googleError(400, 'INVALID_ARGUMENT', 'Recipient of the message is not set.', 'INVALID_ARGUMENT', 'message'), push, 'INVALID_ARGUMENT');
    }
    if (token !== undefined && !FCM_TOKEN.test(token)) {
      return void answer(ctx, 400, googleError(400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', 'INVALID_ARGUMENT', 'message.token'), push, 'INVALID_ARGUMENT');
    }
    const injected = injectedFailure(push, 'push');
    if (injected) {
      const code: FcmErrorCode = injected === 429 ? 'QUOTA_EXCEEDED' : injected === 503 ? 'UNAVAILABLE' : 'INTERNAL';
      return void fcmFailure(ctx, code, injected);
    }
    const behaviour = token ? pushBehaviour(token) : null;
    if (behaviour) return void fcmFailure(ctx, behaviour);
    // FCM limits a message's payload to 4096 bytes; larger ones are an invalid argument, not a bad token.
    const payloadBytes = Buffer.byteLength(JSON.stringify(message.data ?? {})) + Buffer.byteLength(JSON.stringify(message.notification ?? {}));
    if (payloadBytes > 4096) {
      return void answer(ctx, 400, googleError(400, 'INVALID_ARGUMENT', 'Android message is too big', 'INVALID_ARGUMENT'), push, 'INVALID_ARGUMENT');
    }
    const id = `0:${Date.now()}%${(++fcmSeq).toString(16)}`;
    if (!body.validate_only) {
      const lostAnswer = firstAcceptance(push, 'push', recipient);
      const notification = message.notification as { title?: string; body?: string } | undefined;
      push.accept(recipient, cfg.keepMessages ? { channel: 'push', to: recipient, id, at: new Date().toISOString(), title: notification?.title, text: notification?.body } : null);
      if (lostAnswer && (await loseAnswer(ctx, lostAnswer))) return;
    }
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify({ name: `projects/${project}/messages/${id}` });
  }

  function fcmFailure(ctx: Koa.Context, code: FcmErrorCode, httpStatus?: number): void {
    const info = FCM_ERRORS[code];
    const status = httpStatus ?? info.httpStatus;
    if (info.retryAfter) ctx.set('Retry-After', String(cfg.retryAfterSeconds));
    answer(ctx, status, googleError(status, info.status, info.message, code, code === 'INVALID_ARGUMENT' ? 'message.token' : undefined), push, code);
  }

  /** The after-accept behaviour of a recipient, on its first accepted message only. */
  function firstAcceptance(book: ChannelBook, ch: Channel, to: string): AfterAccept | null {
    return book.perRecipient.has(to) ? null : afterAcceptBehaviour(ch, to);
  }

  /**
   * The message is accepted (counted, receipts scheduled); its answer is lost: held past
   * the client's timeout, then written to whatever is left of the connection ('hold'), or
   * the connection is reset ('reset'). True when nothing more is to be answered.
   */
  async function loseAnswer(ctx: Koa.Context, how: AfterAccept): Promise<boolean> {
    if (how === 'reset') {
      ctx.respond = false;
      const socket = ctx.req.socket;
      // A TCP RST where the socket is plain TCP; a TLS socket (FCM's port) is destroyed
      // without close_notify, which the client sees as a reset or hang-up just the same.
      try {
        socket.resetAndDestroy();
      } catch {
        socket.destroy();
      }
      return true;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { timers.delete(t); resolve(); }, cfg.holdMs);
      timers.add(t);
      ctx.req.socket.once('close', () => { clearTimeout(t); timers.delete(t); resolve(); });
    });
    return ctx.req.socket.destroyed;
  }

  function answer(ctx: Koa.Context, status: number, body: unknown, book: ChannelBook, code: string): void {
    book.reject(code);
    ctx.status = status;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(body);
  }

  async function inbound(msg: { from: string; to: string; text: string; webhookUrl?: string }): Promise<WebhookRecord> {
    const url = msg.webhookUrl ?? cfg.defaultWebhookUrl;
    if (!url) throw new Error('no webhook URL: pass webhookUrl or configure defaultWebhookUrl');
    const now = new Date().toISOString();
    const payload = {
      record_type: 'message',
      direction: 'inbound',
      id: randomUUID(),
      type: 'SMS',
      messaging_profile_id: 'sim-profile',
      organization_id: 'sim-organization',
      from: { phone_number: msg.from, carrier: 'T-Mobile USA', line_type: 'Wireless' },
      to: [{ phone_number: msg.to, status: 'webhook_delivered', carrier: 'Telnyx', line_type: 'Wireless' }],
      cc: [],
      text: msg.text,
      media: [],
      ...smsParts(msg.text),
      tags: [],
      cost: null,
      received_at: now,
      sent_at: null,
      completed_at: null,
      webhook_url: url,
      webhook_failover_url: null,
      errors: [],
    };
    return sender.deliver(telnyxEvent('message.received', payload), url);
  }

  function received(o: { recipients?: boolean; messages?: boolean } = {}): ReceivedSummary {
    return { total: sms.accepted + push.accepted, sms: sms.summary(o), push: push.summary(o), webhooks: { ...sender.stats } };
  }

  function configure(patch: Partial<SimulatorConfig>): SimulatorConfig {
    // Over HTTP the patch is JSON, where null clears a setting: read values as unknown so that stays.
    for (const [k, v] of Object.entries<unknown>(patch)) {
      if (!(k in DEFAULT_CONFIG) && k !== 'smsErrorRate' && k !== 'pushErrorRate' && k !== 'defaultWebhookUrl') {
        throw new Error(`unknown simulator setting ${k}`);
      }
      (cfg as unknown as Record<string, unknown>)[k] = v ?? undefined;
    }
    return { ...cfg };
  }

  function failNext(channel: Channel, count: number, status = 500): void {
    const book = channel === 'sms' ? sms : push;
    book.failNext = count;
    book.failNextStatus = status;
  }

  function reset(): void {
    sms.reset();
    push.reset();
    tokens.reset();
    sender.reset();
  }

  function idle(): Promise<void> {
    return new Promise((resolve) => {
      idleWaiters.push(resolve);
      checkIdle();
    });
  }

  async function handleAdmin(ctx: Koa.Context, path: string): Promise<void> {
    const method = ctx.method;
    const json = (status: number, body: unknown) => {
      ctx.status = status;
      ctx.type = 'application/json';
      ctx.body = JSON.stringify(body);
    };
    const readJson = async () => (parseJson(await readBody(ctx.req)) ?? {}) as Record<string, unknown>;
    try {
      if (path === '/_sim/health' && method === 'GET') return json(200, { ok: true });
      if (path === '/_sim/info' && method === 'GET') return json(200, info);
      if (path === '/_sim/public-key' && method === 'GET') return json(200, { publicKey: key.publicKey });
      if (path === '/_sim/ca' && method === 'GET') {
        ctx.type = 'application/x-pem-file';
        ctx.body = tlsPems.cert;
        return;
      }
      if (path === '/_sim/config' && method === 'GET') return json(200, { ...cfg });
      if (path === '/_sim/config' && method === 'POST') return json(200, configure(await readJson()));
      if (path === '/_sim/fail-next' && method === 'POST') {
        const b = await readJson();
        failNext(b.channel === 'push' ? 'push' : 'sms', Number(b.count ?? 1), Number(b.status ?? 500));
        return json(200, { ok: true });
      }
      if (path === '/_sim/received' && method === 'GET') {
        return json(200, received({ recipients: ctx.query.recipients === '1', messages: ctx.query.messages === '1' }));
      }
      if (path === '/_sim/reset' && method === 'POST') {
        reset();
        return json(200, { ok: true });
      }
      if (path === '/_sim/idle' && method === 'POST') {
        await idle();
        return json(200, { ok: true });
      }
      if (path === '/_sim/inbound' && method === 'POST') {
        const b = await readJson();
        if (typeof b.from !== 'string' || typeof b.to !== 'string' || typeof b.text !== 'string') {
          return json(400, { error: 'from, to and text are required strings' });
        }
        const rec = await inbound({ from: b.from, to: b.to, text: b.text, webhookUrl: typeof b.webhookUrl === 'string' ? b.webhookUrl : undefined });
        return json(200, { eventId: rec.eventId, status: rec.status, attempt: rec.attempt });
      }
      if (path === '/_sim/webhooks' && method === 'GET') return json(200, sender.log());
      const m = /^\/_sim\/webhooks\/([^/]+)\/redeliver$/.exec(path);
      if (m && method === 'POST') {
        const b = await readJson();
        const rec = await sender.redeliver(m[1]!, { sameRequest: b.sameRequest === true, url: typeof b.url === 'string' ? b.url : undefined });
        return json(200, { eventId: rec.eventId, status: rec.status, attempt: rec.attempt });
      }
      return json(404, { error: `no simulator route ${method} ${path}` });
    } catch (err) {
      return json(400, { error: err instanceof Error ? err.message : String(err) });
    }
  }

  const app = new Koa();
  app.use(async (ctx) => {
    const path = ctx.path;
    if (ctx.method === 'POST' && path === '/v2/messages') return handleTelnyxSend(ctx);
    // Google's token endpoint shares the TLS port; a client reaches it by its own name.
    if (ctx.method === 'POST' && path === '/token' && ctx.hostname === GOOGLE_TOKEN_HOST) return tokens.handle(ctx, await readBody(ctx.req));
    if (ctx.method === 'POST') {
      const m = FCM_PATH.exec(path);
      if (m) return handleFcmSend(ctx, decodeURIComponent(m[1]!));
    }
    if (path.startsWith('/_sim/') && (adminRoutes || PUBLIC_SIM_ROUTES.has(path))) return handleAdmin(ctx, path);
    ctx.status = 404;
    ctx.type = 'application/json';
    ctx.body = path.startsWith('/v1/')
      ? JSON.stringify(googleError(404, 'NOT_FOUND', `The simulator does not implement ${ctx.method} ${path}`))
      : JSON.stringify(telnyxError({ code: '10005', title: 'Resource not found', detail: `The simulator does not implement ${ctx.method} ${path}` }));
  });
  app.on('error', () => undefined); // client disconnects mid-response are not the simulator's problem

  const koaHandler = app.callback();
  // Koa's handler settles its own errors (ctx.onerror, app.on('error')): nothing to await here.
  const callback = (req: IncomingMessage, res: ServerResponse) => void koaHandler(req, res);
  const httpServer = createHttpServer(callback);
  const httpsServer = createHttpsServer({ key: tlsPems.key, cert: tlsPems.cert }, callback);
  for (const s of [httpServer, httpsServer] as Server[]) {
    // Longer than any client's idle keep-alive, so a pooled socket is never closed under a request.
    s.keepAliveTimeout = 65_000;
    s.headersTimeout = 66_000;
    s.maxRequestsPerSocket = 0;
  }
  await listen(httpServer, port, host);
  await listen(httpsServer, fcmPort, host);
  const httpPort = (httpServer.address() as AddressInfo).port;
  const tlsPort = (httpsServer.address() as AddressInfo).port;
  const url = `http://${host}:${httpPort}`;
  const info: SimulatorInfo = {
    url,
    telnyxBaseURL: `${url}/v2`,
    publicKey: key.publicKey,
    fcm: { host, port: tlsPort, ca: tlsPems.cert, servername: FCM_HOST },
  };

  return {
    ...info,
    port: httpPort,
    signingKey: key,
    config: () => ({ ...cfg }),
    configure,
    failNext,
    received,
    tokenGrants: () => ({ granted: tokens.grants.map((g) => ({ ...g })), refused: tokens.refused }),
    countFor: (r) => sms.perRecipient.get(r) ?? push.perRecipient.get(r) ?? 0,
    reset,
    inbound,
    webhookLog: () => sender.log(),
    redeliver: (id, o) => sender.redeliver(id, o),
    idle,
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      sender.close();
      await Promise.all([httpServer, httpsServer].map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
