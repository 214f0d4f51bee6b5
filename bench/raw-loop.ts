import type { Outcome, PushMessage, PushProvider, SmsMessage, SmsProvider } from '../services/providers/types.js';

/**
 * The "raw" contender of the benchmark: a bare loop calling an adapter at a fixed
 * concurrency — no queue, no database, no records. It is the ceiling Herald's
 * pipeline is compared with.
 */

export interface RawResult {
  count: number;
  seconds: number;
  perSecond: number;
  /** outcomes by kind, so a run that silently failed is visible */
  outcomes: Record<Outcome['kind'] | 'error', number>;
}

function tally(): RawResult['outcomes'] {
  return { accepted: 0, retryable: 0, permanent: 0, opted_out: 0, invalid_token: 0, error: 0 };
}

/** `concurrency` sends in flight until `count` are done. makeMessage(i) builds the i-th. */
export async function rawSmsLoop(opts: {
  provider: SmsProvider;
  count: number;
  concurrency: number;
  makeMessage: (i: number) => SmsMessage;
}): Promise<RawResult> {
  const { provider, count, concurrency, makeMessage } = opts;
  const outcomes = tally();
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        outcomes[(await provider.send(makeMessage(i))).kind]++;
      } catch {
        outcomes.error++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, lane));
  const seconds = (performance.now() - started) / 1000;
  return { count, seconds, perSecond: count / seconds, outcomes };
}

/**
 * `concurrency` messages in flight, as sendEach calls of `batchSize` (default:
 * min(500, concurrency)) running side by side: ceil(concurrency / batchSize) lanes.
 */
export async function rawPushLoop(opts: {
  provider: PushProvider;
  count: number;
  concurrency: number;
  batchSize?: number;
  makeMessage: (i: number) => PushMessage;
}): Promise<RawResult> {
  const { provider, count, concurrency, makeMessage } = opts;
  const batchSize = Math.max(1, Math.min(500, opts.batchSize ?? concurrency));
  const lanes = Math.max(1, Math.ceil(concurrency / batchSize));
  const outcomes = tally();
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count) {
      const from = next;
      const to = Math.min(count, from + batchSize);
      next = to;
      const batch: PushMessage[] = [];
      for (let i = from; i < to; i++) batch.push(makeMessage(i));
      try {
        for (const o of await provider.sendEach(batch)) outcomes[o.kind]++;
      } catch {
        outcomes.error += batch.length;
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  const seconds = (performance.now() - started) / 1000;
  return { count, seconds, perSecond: count / seconds, outcomes };
}
