import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { SIMULATOR_TELNYX_API_KEY } from '../simulator/client.js';
import { startSimulator, type Simulator } from '../simulator/simulator.js';
import { finalizedStatus, reportedBy, smsNumberAfterAccept, smsNumberFailing, smsNumberOk } from '../simulator/behaviours.js';
import { startWebhookSink, type WebhookSink } from '../simulator/webhook-sink.js';
import { createTelnyxProvider, type TelnyxSmsProvider } from './telnyx.js';
import { classifyTelnyx, classifyTelnyxReceipt } from './classify-telnyx.js';
import type { Outcome } from './types.js';

let sim: Simulator;
let sink: WebhookSink;
let telnyx: TelnyxSmsProvider;
const FROM = '+13125550100';

beforeAll(async () => {
  sim = await startSimulator({ receiptDelayMs: 1, receipts: 'finalized' });
  sink = await startWebhookSink();
  telnyx = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL, timeoutMs: 2000 });
});

afterAll(async () => {
  await sim.close();
  await sink.close();
});

beforeEach(() => {
  sim.reset();
  sim.configure({ latencyMs: 0, errorRate: 0, down: false });
  sink.received.length = 0;
});

/** What each Telnyx code means for the delivery (Telnyx docs + issue #2). */
const EXPECTED: [code: string, kind: Outcome['kind']][] = [
  ['40001', 'permanent'],
  ['40002', 'retryable'],
  ['40003', 'permanent'],
  ['40004', 'retryable'],
  ['40005', 'retryable'],
  ['40006', 'retryable'],
  ['40007', 'permanent'],
  ['40008', 'retryable'],
  ['40009', 'permanent'],
  ['40010', 'permanent'],
  ['40011', 'retryable'],
  ['40012', 'permanent'],
  ['40013', 'permanent'],
  ['40014', 'retryable'],
  ['40015', 'permanent'],
  ['40300', 'opted_out'],
  ['10002', 'permanent'],
  ['10007', 'retryable'],
  ['10011', 'retryable'],
];

describe('Telnyx through the real SDK against the simulator', () => {
  it('a send is accepted with Telnyx’s message id, and the simulator recorded exactly it', async () => {
    const to = smsNumberOk(42);
    const outcome = await telnyx.send({ from: FROM, to, text: 'Service starts at 10am. Reply STOP to opt out.' });
    expect(outcome.kind).toBe('accepted');
    expect(outcome.kind === 'accepted' && outcome.providerMessageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(sim.countFor(to)).toBe(1);
    expect(sim.received().sms).toMatchObject({ requests: 1, accepted: 1 });
  });

  // As Telnyx reports them: request errors (10xxx) and 40300 on the send, carrier errors (40xxx) in message.finalized.
  const ON_SEND = EXPECTED.filter(([code]) => reportedBy(code).includes('send'));
  const IN_RECEIPT = EXPECTED.filter(([code]) => reportedBy(code).includes('receipt'));

  it.each(ON_SEND)('send failing with %s → %s', async (code, kind) => {
    const outcome = await telnyx.send({ from: FROM, to: smsNumberFailing(code, 'send'), text: 'hi' });
    expect(outcome).toMatchObject({ kind, code });
    expect(sim.received().sms.accepted).toBe(0);
  });

  it.each(IN_RECEIPT)('receipt failing with %s → %s, judged by the same classifier', async (code, kind) => {
    const to = smsNumberFailing(code, 'receipt', 1);
    const sent = await telnyx.send({ from: FROM, to, text: 'hi', webhookUrl: sink.url });
    expect(sent.kind).toBe('accepted');
    const [hook] = await sink.waitFor(1, (h) => h.json.data.event_type === 'message.finalized');
    // The event is verified with the SDK's helper first, as the api does.
    const event = await telnyx.client.webhooks.unwrap(hook!.body, { headers: hook!.headers, key: sim.publicKey });
    const receipt = classifyTelnyxReceipt(event);
    expect(receipt).toMatchObject({ final: true, delivered: false, status: finalizedStatus(code), outcome: { kind, code } });
    expect(receipt!.messageId).toBe(sent.kind === 'accepted' ? sent.providerMessageId : '');
    // Same code, same verdict, whichever way it arrived.
    expect(classifyTelnyx(hook!.json.data.payload).kind).toBe(kind);
  });

  it('a delivered receipt has no failure outcome', async () => {
    await telnyx.send({ from: FROM, to: smsNumberOk(1), text: 'hi', webhookUrl: sink.url });
    const [hook] = await sink.waitFor(1);
    expect(classifyTelnyxReceipt(JSON.parse(hook!.body))).toMatchObject({ final: true, delivered: true, outcome: null });
  });

  it('SDK retries are off: a 500 reaches the simulator exactly once and comes back retryable', async () => {
    sim.failNext('sms', 1, 500);
    const outcome = await telnyx.send({ from: FROM, to: smsNumberOk(2), text: 'hi' });
    expect(outcome).toMatchObject({ kind: 'retryable', code: '10007' });
    expect(sim.received().sms).toMatchObject({ requests: 1, accepted: 0 });
    // The next send is fine: the failure was not replayed by the SDK behind our back.
    expect((await telnyx.send({ from: FROM, to: smsNumberOk(2), text: 'hi' })).kind).toBe('accepted');
    expect(sim.received().sms).toMatchObject({ requests: 2, accepted: 1 });
  });

  it('a 429 is retryable once, with the Retry-After Telnyx sent', async () => {
    sim.configure({ retryAfterSeconds: 7 });
    sim.failNext('sms', 1, 429);
    const outcome = await telnyx.send({ from: FROM, to: smsNumberOk(3), text: 'hi' });
    expect(outcome).toEqual({ kind: 'retryable', code: '10011', reason: expect.any(String), fault: 'provider', retryAfterMs: 7000 });
    expect(sim.received().sms.requests).toBe(1);
    sim.configure({ retryAfterSeconds: 1 });
  });

  it('a timeout is retryable and is not retried by the SDK', async () => {
    sim.configure({ latencyMs: 1500 });
    const impatient = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL, timeoutMs: 100 });
    const outcome = await impatient.send({ from: FROM, to: smsNumberOk(4), text: 'hi' });
    expect(outcome).toMatchObject({ kind: 'retryable', code: 'timeout' });
    expect(sim.received().sms.requests).toBe(1);
  });

  it('a refused connection is retryable', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const nowhere = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: `http://127.0.0.1:${port}/v2`, timeoutMs: 1000 });
    const outcome = await nowhere.send({ from: FROM, to: smsNumberOk(5), text: 'hi' });
    expect(outcome).toMatchObject({ kind: 'retryable', code: 'connection' });
    // Nothing reached Telnyx: a resend is no duplicate.
    expect((outcome as { maybeSent?: boolean }).maybeSent).toBeUndefined();
  });

  describe('unknown outcomes (the request reached Telnyx, the answer was lost): maybeSent', () => {
    it('accepted, then the answer held past the client timeout', async () => {
      sim.configure({ holdMs: 3_000 });
      const to = smsNumberAfterAccept('hold', 1);
      const impatient = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL, timeoutMs: 300 });
      expect(await impatient.send({ from: FROM, to, text: 'hi' })).toMatchObject({ kind: 'retryable', code: 'timeout', maybeSent: true });
      expect(sim.countFor(to)).toBe(1);
      impatient.close();
    });

    it('accepted, then the connection reset', async () => {
      const to = smsNumberAfterAccept('reset', 1);
      expect(await telnyx.send({ from: FROM, to, text: 'hi' })).toMatchObject({ kind: 'retryable', code: 'connection', maybeSent: true });
      expect(sim.received().sms.requests).toBe(1);
      expect(sim.countFor(to)).toBe(1);
      // Only the first send misbehaves: the resend is answered, and is the recipient's second text.
      expect((await telnyx.send({ from: FROM, to, text: 'hi' })).kind).toBe('accepted');
      expect(sim.countFor(to)).toBe(2);
    });

    it('a 500 is unknown; a 503 or 429 was refused', async () => {
      sim.failNext('sms', 1, 500);
      expect(await telnyx.send({ from: FROM, to: smsNumberOk(6), text: 'hi' })).toMatchObject({ kind: 'retryable', maybeSent: true });
      sim.configure({ down: true });
      const refused = await telnyx.send({ from: FROM, to: smsNumberOk(6), text: 'hi' });
      expect(refused).toMatchObject({ kind: 'retryable' });
      expect((refused as { maybeSent?: boolean }).maybeSent).toBeUndefined();
      sim.configure({ down: false });
      sim.failNext('sms', 1, 429);
      expect((await telnyx.send({ from: FROM, to: smsNumberOk(6), text: 'hi' }) as { maybeSent?: boolean }).maybeSent).toBeUndefined();
    });
  });

  it('an invalid number is a permanent failure of that delivery only', async () => {
    expect(await telnyx.send({ from: FROM, to: '12345', text: 'hi' })).toMatchObject({ kind: 'permanent', code: '10016' });
  });

  it('both transports (node:http default, built-in fetch) give the same outcomes', async () => {
    // A second of timeout: the answered sends must fit in it on a loaded machine (a full
    // suite on 2 cores), and the held one (2.5 s) must not.
    const viaFetch = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL, timeoutMs: 1000, transport: 'fetch' });
    const viaHttp = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL, timeoutMs: 1000, transport: 'http' });
    for (const p of [viaFetch, viaHttp]) {
      expect((await p.send({ from: FROM, to: smsNumberOk(20), text: 'hi' })).kind).toBe('accepted');
      expect(await p.send({ from: FROM, to: smsNumberFailing('10002', 'send'), text: 'hi' })).toMatchObject({ kind: 'permanent', code: '10002' });
      sim.configure({ retryAfterSeconds: 3 });
      sim.failNext('sms', 1, 429);
      expect(await p.send({ from: FROM, to: smsNumberOk(21), text: 'hi' })).toMatchObject({ kind: 'retryable', code: '10011', retryAfterMs: 3000 });
      sim.configure({ latencyMs: 2500, retryAfterSeconds: 1 });
      expect(await p.send({ from: FROM, to: smsNumberOk(22), text: 'hi' })).toMatchObject({ kind: 'retryable', code: 'timeout' });
      sim.configure({ latencyMs: 0 });
      p.close();
    }
    expect(sim.countFor(smsNumberOk(20))).toBe(2);
  });
});
