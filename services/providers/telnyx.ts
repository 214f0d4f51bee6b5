import Telnyx from 'telnyx';
import { createLogger, type Logger } from '../../lib/logger.js';
import { classifyTelnyx } from './classify-telnyx.js';
import { createHttpFetch } from './http-fetch.js';
import type { Outcome, SmsMessage, SmsProvider } from './types.js';

export interface TelnyxProviderOptions {
  apiKey: string;
  /** e.g. the simulator's `${url}/v2`; Telnyx's own API when absent */
  baseURL?: string;
  /** per request; a timeout is a retryable outcome */
  timeoutMs?: number;
  /**
   * 'http' (default): the SDK's requests go over node:http with a keep-alive agent
   * (createHttpFetch); 'fetch': Node's built-in fetch, the SDK's own default.
   */
  transport?: 'http' | 'fetch';
  /** Connections (so requests on the wire) at most, over the 'http' transport (default 256). */
  maxSockets?: number;
  log?: Logger;
}

export interface TelnyxSmsProvider extends SmsProvider {
  /** The SDK client, for the webhook helper (client.webhooks.unwrap) and tests. */
  readonly client: Telnyx;
  /** Closes pooled connections. */
  close(): void;
}

/** SMS through the real telnyx SDK. Every result and error becomes an Outcome via classifyTelnyx. */
export function createTelnyxProvider(opts: TelnyxProviderOptions): TelnyxSmsProvider {
  const log = (opts.log ?? createLogger('telnyx')).child({ provider: 'telnyx' });
  const transport = opts.transport === 'fetch' ? undefined : createHttpFetch({ maxSockets: opts.maxSockets });
  const client = new Telnyx({
    apiKey: opts.apiKey,
    baseURL: opts.baseURL,
    timeout: opts.timeoutMs ?? 10_000,
    // The SDK retries 408/409/429/5xx and connection errors twice by default. A send
    // that timed out may well have been accepted, so an automatic retry can text a
    // person twice — and Telnyx offers no idempotency key. Retries belong to our queue,
    // which records each attempt against the delivery row and backs off with jitter.
    maxRetries: 0,
    // The SDK's own logging stays at warn and goes through our redacting logger.
    logLevel: 'warn',
    logger: log,
    ...(transport ? { fetch: transport } : {}),
  });

  return {
    name: 'telnyx',
    client,
    close: () => transport?.destroy(),
    async send(message: SmsMessage): Promise<Outcome> {
      try {
        const res = await client.messages.send({
          from: message.from,
          to: message.to,
          text: message.text,
          ...(message.messagingProfileId ? { messaging_profile_id: message.messagingProfileId } : {}),
          ...(message.webhookUrl ? { webhook_url: message.webhookUrl } : {}),
        });
        const id = res.data?.id;
        // A 2xx without an id was most likely sent: never retry it (that could text twice).
        if (!id) return { kind: 'permanent', code: 'no_message_id', reason: 'Telnyx answered 2xx without a message id' };
        return { kind: 'accepted', providerMessageId: id };
      } catch (err) {
        return classifyTelnyx(err);
      }
    },
  };
}
