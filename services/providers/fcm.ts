import https from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { deleteApp, initializeApp, type App, type Credential } from 'firebase-admin/app';
import { getMessaging, type Message, type Messaging } from 'firebase-admin/messaging';
import { createLogger, type Logger } from '../../lib/logger.js';
import { CIRCUIT_OPEN_ERROR_CODE, classifyFcm } from './classify-fcm.js';
import type { Outcome, PushMessage, PushProvider } from './types.js';
import { serviceAccountCredential } from './google-credential.js';
import { GOOGLE_TOKEN_HOST, SIMULATOR_FCM_ACCESS_TOKEN } from '../simulator/client.js';

export const FCM_HOST = 'fcm.googleapis.com';
export const FCM_MAX_BATCH = 500;

/** Where the simulator's FCM endpoint listens, and the CA its certificate chains to. */
export interface FcmSimulatorTarget {
  host: string;
  port: number;
  ca: string;
  /** SNI and certificate name; fcm.googleapis.com */
  servername?: string;
}

/** What the transport reports each HTTP exchange to (a ProviderCircuit fits). */
export interface ExchangeObserver {
  record(ok: boolean): unknown;
  /** false: this HTTP attempt fails at once instead of going out (circuit open) */
  mayProceed(): boolean;
  retryAfterMs(): number;
}

export interface FcmProviderOptions {
  projectId: string;
  /**
   * A service-account key (JSON text): firebase-admin signs a JWT with it and exchanges it
   * at Google's token endpoint (with `simulator`, the simulator's). Without it, the
   * simulator is sent a fixed token and no exchange happens.
   */
  serviceAccountJson?: string;
  /** Aim every connection at the simulator's TLS port (SNI and Host stay fcm.googleapis.com). */
  simulator?: FcmSimulatorTarget;
  /** Told about every HTTP exchange (one per attempt: the SDK's own retries are off). */
  observer?: ExchangeObserver;
  /** Connections kept to FCM; the legacy transport opens one per message in flight. */
  maxSockets?: number;
  log?: Logger;
}

export interface FcmPushProvider extends PushProvider {
  readonly app: App;
  readonly messaging: Messaging;
  readonly agent: FcmAgent;
  close(): Promise<void>;
}

/**
 * The https agent firebase-admin's HTTP/1.1 transport uses (app option `httpAgent`).
 *
 * - With a simulator target, every connection it opens goes to the simulator's TLS
 *   port while TLS SNI, certificate check and the Host header stay fcm.googleapis.com,
 *   trusting only the simulator's CA. Nothing can reach Google through it.
 * - It reports every HTTP exchange to the observer: 5xx, 429, 401, socket errors and
 *   timeouts as failures, any other answer as success.
 *
 * firebase-admin's own retries are off (createFcmProvider), so one exchange here is
 * one attempt of ours. Once the circuit is open any attempt (in half-open, any but the
 * probe's) fails at once with EHERALD_CIRCUIT_OPEN, before anything is written.
 */
export class FcmAgent extends https.Agent {
  exchanges = 0;
  constructor(
    private readonly target: FcmSimulatorTarget | undefined,
    private readonly observer: ExchangeObserver | undefined,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: Parameters<https.Agent['createConnection']>[0], callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    if (!this.target) return super.createConnection(options, callback);
    return super.createConnection(
      {
        ...options,
        host: this.target.host,
        port: this.target.port,
        servername: this.target.servername ?? FCM_HOST,
        ca: this.target.ca,
      },
      callback,
    );
  }

  // http.Agent#addRequest is called for every request, pooled socket or new.
  addRequest(req: ClientRequest, options: unknown): void {
    const observer = this.observer;
    if (observer) {
      if (!observer.mayProceed()) {
        const err = Object.assign(new Error('FCM circuit is open'), { code: CIRCUIT_OPEN_ERROR_CODE, retryAfterMs: observer.retryAfterMs() });
        // What http.Agent itself does when it cannot create a socket: error, then close.
        (req as unknown as { onSocket(s: null, e: Error): void }).onSocket(null, err);
        return;
      }
      this.exchanges++;
      let answered = false;
      req.once('response', (res: IncomingMessage) => {
        answered = true;
        const s = res.statusCode ?? 0;
        // 401: FCM refused the credentials (ours, or the project's APNs ones): provider-level.
        observer.record(!(s >= 500 || s === 429 || s === 401));
      });
      req.once('close', () => {
        if (!answered) observer.record(false);
      });
    }
    (https.Agent.prototype as unknown as { addRequest(r: ClientRequest, o: unknown): void }).addRequest.call(this, req, options);
  }
}

/** A credential for the simulator: a fixed bearer token, no call to Google's token endpoint. */
const simulatorCredential: Credential = {
  getAccessToken: async () => ({ access_token: SIMULATOR_FCM_ACCESS_TOKEN, expires_in: 3600 }),
};

let appSeq = 0;

/**
 * Push through the real firebase-admin SDK (sendEach, batches of at most 500), on its
 * HTTP/1.1 transport so that the app's httpAgent carries every request. (Its default
 * HTTP/2 transport opens its own session to https://fcm.googleapis.com and ignores
 * httpAgent: it could neither reach the simulator nor be observed.) Production keeps
 * this transport too, deprecated as firebase-admin calls it: the circuit breaker counts
 * exchanges through the agent and the tests run exactly this path; the cost is one
 * connection per message in flight (maxSockets) instead of HTTP/2 streams on one.
 */
export function createFcmProvider(opts: FcmProviderOptions): FcmPushProvider {
  const log = (opts.log ?? createLogger('fcm')).child({ provider: 'fcm' });
  if (!opts.simulator && !opts.serviceAccountJson) {
    throw new Error('FCM needs a service account (FCM_SERVICE_ACCOUNT) or the simulator');
  }
  const agent = new FcmAgent(opts.simulator, opts.observer, {
    keepAlive: true,
    maxSockets: opts.maxSockets ?? 256,
    maxFreeSockets: opts.maxSockets ?? 256,
    scheduling: 'lifo',
  });
  // Token fetches get an agent of their own: the token endpoint is another service than
  // FCM, so its answers say nothing of FCM's health, and an open FCM circuit must not
  // refuse the fresh token its half-open probe needs.
  const tokenAgent = new FcmAgent(opts.simulator && { ...opts.simulator, servername: GOOGLE_TOKEN_HOST }, undefined, { keepAlive: true, maxSockets: 4 });
  const credential = opts.serviceAccountJson ? serviceAccountCredential(opts.serviceAccountJson, tokenAgent) : simulatorCredential;
  const app = initializeApp({ projectId: opts.projectId, credential, httpAgent: agent }, `herald-fcm-${++appSeq}`);
  const messaging = getMessaging(app);
  const legacy = (messaging as unknown as { enableLegacyHttpTransport?: () => void }).enableLegacyHttpTransport;
  if (typeof legacy !== 'function') {
    // Without it sendEach would use HTTP/2 straight to Google, bypassing the agent.
    throw new Error('this firebase-admin has no enableLegacyHttpTransport(); the FCM adapter must be revisited');
  }
  legacy.call(messaging);
  disableSdkRetries(messaging);
  log.debug({ projectId: opts.projectId, target: opts.simulator ? `${opts.simulator.host}:${opts.simulator.port}` : FCM_HOST }, 'FCM provider ready');

  async function sendBatch(batch: PushMessage[]): Promise<Outcome[]> {
    try {
      const res = await messaging.sendEach(batch.map(toFcmMessage));
      return res.responses.map((r): Outcome => (r.success ? { kind: 'accepted', providerMessageId: r.messageId ?? '' } : classifyFcm(r.error)));
    } catch (err) {
      // The whole call failed before any message went out (e.g. validation of the list).
      const outcome = classifyFcm(err);
      return batch.map(() => outcome);
    }
  }

  return {
    name: 'fcm',
    app,
    messaging,
    agent,
    async sendEach(messages: PushMessage[]): Promise<Outcome[]> {
      if (messages.length === 0) return [];
      const out: Outcome[] = [];
      for (let i = 0; i < messages.length; i += FCM_MAX_BATCH) {
        out.push(...(await sendBatch(messages.slice(i, i + FCM_MAX_BATCH))));
      }
      return out;
    },
    async close() {
      await deleteApp(app);
      agent.destroy();
      tokenAgent.destroy();
    },
  };
}

/**
 * firebase-admin retries 503s and ECONNRESET/ETIMEDOUT up to 4 times inside one send, with
 * no public switch. A reset or a timeout after the request was written may have notified
 * the device already, so such a retry can notify it twice, uncounted. Retries belong to
 * our queue, which records every attempt against its row and flags a resend after an
 * unknown outcome as a possible duplicate; so the SDK's HttpClient gets no RetryConfig
 * (its `retry` field, which `isRetryEligible` reads: null means never). The field is
 * private: this refuses to start if it moves, and fcm.test.ts holds one request per
 * attempt against the simulator.
 */
function disableSdkRetries(messaging: Messaging): void {
  const handler = (messaging as unknown as { messagingRequestHandler?: { httpClient?: { retry?: unknown } } }).messagingRequestHandler;
  const client = handler?.httpClient;
  if (!client || !('retry' in client)) {
    throw new Error("this firebase-admin has no messagingRequestHandler.httpClient.retry; the FCM adapter must be revisited (its retries would be uncounted)");
  }
  client.retry = null;
}

function toFcmMessage(m: PushMessage): Message {
  const notification: { title?: string; body?: string } = { body: m.body };
  if (m.title !== undefined) notification.title = m.title;
  const base = { notification, ...(m.data ? { data: m.data } : {}) };
  if (m.token !== undefined && m.topic === undefined) return { ...base, token: m.token };
  if (m.topic !== undefined && m.token === undefined) return { ...base, topic: m.topic };
  // Neither or both: hand it over as is; firebase-admin's validation rejects it for this message only.
  return { ...base, token: m.token, topic: m.topic } as unknown as Message;
}
