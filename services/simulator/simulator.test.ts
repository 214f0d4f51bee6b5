import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import Telnyx from 'telnyx';
import { isValidPhoneNumber } from 'libphonenumber-js/max';
import {
  FCM_ERRORS,
  TELNYX_CODES,
  reportedBy,
  pushBehaviour,
  pushTokenFailing,
  pushTokenOk,
  smsBehaviour,
  smsNumberFailing,
  smsNumberOk,
  smsNumberUnconfirmed,
  type FcmErrorCode,
} from './behaviours.js';
import { connectToSimulator, SIMULATOR_FCM_ACCESS_TOKEN, SIMULATOR_TELNYX_API_KEY } from './client.js';
import { smsParts } from './sms-parts.js';
import { startSimulator, type Simulator } from './simulator.js';
import { createSigningKey, telnyxEvent, WebhookSender } from './webhooks.js';
import { startWebhookSink, type WebhookSink } from './webhook-sink.js';

let sim: Simulator;
let sink: WebhookSink;
let client: Telnyx;

beforeAll(async () => {
  sink = await startWebhookSink();
  sim = await startSimulator({ receiptDelayMs: 5, webhookRetryDelayMs: 10 });
  // The real SDK: its webhook helper is what the api uses to verify signatures.
  client = new Telnyx({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL, maxRetries: 0, publicKey: sim.publicKey });
});

afterAll(async () => {
  await sim.close();
  await sink.close();
});

beforeEach(() => {
  sim.reset();
  sim.configure({ down: false, errorRate: 0, latencyMs: 0, receipts: 'all', defaultWebhookUrl: undefined });
  sink.received.length = 0;
  sink.respondWith(200);
});

const send = (to: string, webhookUrl?: string) =>
  client.messages.send({ from: '+13125550100', to, text: 'Service starts at 10am', ...(webhookUrl ? { webhook_url: webhookUrl } : {}) });

describe('magic recipients', () => {
  it('SMS numbers are valid E.164 numbers that decode to their code and mode, and never collide with ordinary ones', () => {
    const seen = new Set<string>();
    for (const { code } of TELNYX_CODES) {
      for (const mode of reportedBy(code)) {
        for (const n of [0, 1, 9999]) {
          const number = smsNumberFailing(code, mode, n);
          expect(isValidPhoneNumber(number), number).toBe(true);
          expect(smsBehaviour(number)).toMatchObject({ mode, info: { code } });
          expect(seen.has(number)).toBe(false);
          seen.add(number);
        }
      }
    }
    for (const n of [0, 1, 12345, 7_999_999]) {
      expect(isValidPhoneNumber(smsNumberOk(n))).toBe(true);
      expect(smsBehaviour(smsNumberOk(n))).toBeNull();
    }
    expect(() => smsNumberFailing('49999', 'send')).toThrow(/no Telnyx code/);
    // Carrier errors come later, in message.finalized: there is no number failing them on the send.
    expect(() => smsNumberFailing('40001', 'send')).toThrow(/message.finalized, not on the send/);
    expect(() => smsNumberFailing('10002', 'receipt')).toThrow(/on the send request/);
  });

  it('push tokens decode to their FCM error; ordinary tokens are not magic', () => {
    for (const code of Object.keys(FCM_ERRORS) as FcmErrorCode[]) expect(pushBehaviour(pushTokenFailing(code, 7))).toBe(code);
    expect(pushBehaviour(pushTokenOk(7))).toBeNull();
    expect(pushTokenOk(1)).not.toBe(pushTokenOk(2));
  });
});

describe('Telnyx messaging', () => {
  it('accepts a send in the shape the SDK expects and records it', async () => {
    const to = smsNumberOk(1);
    const res = await send(to);
    expect(res.data?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.data?.to?.[0]).toMatchObject({ phone_number: to, status: 'queued' });
    expect(sim.countFor(to)).toBe(1);
    expect(sim.received().sms).toMatchObject({ requests: 1, accepted: 1, recipients: 1, duplicates: { count: 0 } });
  });

  it('reports duplicates: recipients that got more than one accepted message', async () => {
    await send(smsNumberOk(1));
    await send(smsNumberOk(2));
    await send(smsNumberOk(2));
    await send(smsNumberOk(2));
    const r = sim.received({ recipients: true });
    expect(r.sms.accepted).toBe(4);
    expect(r.total).toBe(4);
    expect(r.sms.duplicates).toEqual({ count: 1, recipients: { [smsNumberOk(2)]: 3 } });
    expect(r.sms.perRecipient).toEqual({ [smsNumberOk(1)]: 1, [smsNumberOk(2)]: 3 });
    sim.reset();
    expect(sim.received().sms).toMatchObject({ requests: 0, accepted: 0, recipients: 0 });
  });

  it('a send-failing number fails the request with its code, as the SDK surfaces it', async () => {
    const err = await send(smsNumberFailing('10002', 'send')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Telnyx.APIError);
    expect((err as InstanceType<typeof Telnyx.APIError>).status).toBe(400);
    expect((err as InstanceType<typeof Telnyx.APIError>).error).toMatchObject({ errors: [{ code: '10002', title: 'Invalid phone number' }] });
    const stop = await send(smsNumberFailing('40300', 'send')).catch((e: unknown) => e);
    expect((stop as InstanceType<typeof Telnyx.APIError>).status).toBe(409);
    expect(sim.received().sms).toMatchObject({ requests: 2, accepted: 0, rejected: 2, rejectedByCode: { '10002': 1, '40300': 1 } });
  });

  it('answers parts and encoding as Telnyx counts them: GSM-7 160/153 with extension characters twice, UCS-2 70/67', async () => {
    const cases: [text: string, encoding: string, parts: number][] = [
      ['a'.repeat(155), 'GSM-7', 1],
      ['a'.repeat(160), 'GSM-7', 1],
      ['a'.repeat(161), 'GSM-7', 2],
      ['a'.repeat(306), 'GSM-7', 2],
      ['a'.repeat(307), 'GSM-7', 3],
      ['€'.repeat(80), 'GSM-7', 1], // 160 septets
      ['€'.repeat(81), 'GSM-7', 2],
      ['a'.repeat(152) + '€', 'GSM-7', 1], // 154 septets: one part
      ['a'.repeat(159) + '€' + 'a', 'GSM-7', 2], // the escape pair is not split: 152 + 10
      ['Служба в 10 утра', 'UCS-2', 1],
      ['д'.repeat(70), 'UCS-2', 1],
      ['д'.repeat(71), 'UCS-2', 2],
      ['д'.repeat(134), 'UCS-2', 2],
      ['д'.repeat(135), 'UCS-2', 3],
      ['🎉'.repeat(35), 'UCS-2', 1], // 70 UTF-16 units
      ['🎉'.repeat(36), 'UCS-2', 2],
    ];
    for (const [text, encoding, parts] of cases) {
      const res = await client.messages.send({ from: '+13125550100', to: smsNumberOk(3), text });
      expect({ text: text.slice(0, 12), encoding: res.data?.encoding, parts: res.data?.parts }).toEqual({ text: text.slice(0, 12), encoding, parts });
      expect(smsParts(text)).toEqual({ encoding, parts });
    }
  });

  it('validates the request like Telnyx: E.164 and authentication', async () => {
    const bad = await send('5551234').catch((e: unknown) => e);
    expect((bad as InstanceType<typeof Telnyx.APIError>).error).toMatchObject({ errors: [{ code: '10016', source: { pointer: '/to' } }] });
    const res = await fetch(`${sim.telnyxBaseURL}/messages`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(401);
    // A key, but not the account's: Telnyx answers 401 with 10009, and nothing is sent.
    const wrong = new Telnyx({ apiKey: 'KEY-of-another-account', baseURL: sim.telnyxBaseURL, maxRetries: 0 });
    const err = await wrong.messages.send({ from: '+13125550100', to: smsNumberOk(4), text: 'hi' }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof Telnyx.APIError>).status).toBe(401);
    expect((err as InstanceType<typeof Telnyx.APIError>).error).toMatchObject({ errors: [{ code: '10009' }] });
    expect(sim.countFor(smsNumberOk(4))).toBe(0);
  });

  it('the down switch answers 503 to every provider request; admin routes keep working', async () => {
    const res = await fetch(`${sim.url}/_sim/config`, { method: 'POST', body: JSON.stringify({ down: true, latencyMs: 0 }) });
    expect(await res.json()).toMatchObject({ down: true });
    const err = await send(smsNumberOk(1)).catch((e: unknown) => e);
    expect((err as InstanceType<typeof Telnyx.APIError>).status).toBe(503);
    const fcm = await fetch(`${sim.url}/v1/projects/p/messages:send`, { method: 'POST', headers: { authorization: `Bearer ${SIMULATOR_FCM_ACCESS_TOKEN}` }, body: JSON.stringify({ message: { token: pushTokenOk(1) } }) });
    expect(fcm.status).toBe(503);
    expect(((await (await fetch(`${sim.url}/_sim/received`)).json()) as { sms: { accepted: number } }).sms.accepted).toBe(0);
  });

  it('random error rate 1 fails every request with a retryable status', async () => {
    sim.configure({ errorRate: 1 });
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const err = (await send(smsNumberOk(i)).catch((e: unknown) => e)) as InstanceType<typeof Telnyx.APIError>;
      statuses.add(err.status!);
    }
    expect([...statuses].every((s) => s === 429 || s >= 500)).toBe(true);
    expect(sim.received().sms.accepted).toBe(0);
  });
});

describe('signed webhooks', () => {
  it('posts message.sent then message.finalized (delivered), signed so the telnyx SDK helper verifies them', async () => {
    const res = await send(smsNumberOk(5), sink.url);
    const hooks = await sink.waitFor(2);
    expect(hooks.map((h) => h.json.data.event_type)).toEqual(['message.sent', 'message.finalized']);
    const finalized = hooks[1]!;
    expect(finalized.json.data.payload).toMatchObject({ id: res.data!.id, to: [{ phone_number: smsNumberOk(5), status: 'delivered' }], errors: [] });
    expect(finalized.json.meta).toEqual({ attempt: 1, delivered_to: sink.url });

    for (const h of hooks) {
      const event = await client.webhooks.unwrap(h.body, { headers: h.headers });
      expect((event as { data?: { id?: string } }).data?.id).toBe(h.json.data.id);
    }
    // One byte changed in the body: the signature no longer holds.
    const altered = finalized.body.replace('"delivered"', '"delivereD"');
    await expect(client.webhooks.unwrap(altered, { headers: finalized.headers })).rejects.toThrow(/signature/i);
    // A different key does not verify either.
    const other = createSigningKey().publicKey;
    await expect(client.webhooks.unwrap(finalized.body, { headers: finalized.headers, key: other })).rejects.toThrow(/signature/i);
  });

  it('a receipt-failing number is accepted, then finalized as delivery_failed with its code', async () => {
    const to = smsNumberFailing('40002', 'receipt', 3);
    const res = await send(to, sink.url);
    expect(res.data?.id).toBeTruthy();
    const [fin] = await sink.waitFor(1, (h) => h.json.data.event_type === 'message.finalized');
    expect(fin!.json.data.payload).toMatchObject({ to: [{ status: 'delivery_failed' }], errors: [{ code: '40002' }] });
    expect(sim.countFor(to)).toBe(1);
  });

  it('finalized statuses as Telnyx publishes them: sending_failed (no message.sent), expired, delivery_unconfirmed (no errors)', async () => {
    const cases: [to: string, sent: boolean, status: string, code?: string][] = [
      [smsNumberFailing('40015', 'receipt', 4), false, 'sending_failed', '40015'],
      [smsNumberFailing('40014', 'receipt', 4), true, 'expired', '40014'],
      [smsNumberFailing('40001', 'receipt', 4), true, 'delivery_failed', '40001'],
      [smsNumberUnconfirmed(4), true, 'delivery_unconfirmed'],
    ];
    for (const [to, sent, status, code] of cases) {
      const res = await send(to, sink.url);
      await sim.idle();
      const hooks = sink.received.filter((h) => h.json.data.payload.id === res.data!.id);
      expect(hooks.map((h) => h.json.data.event_type)).toEqual(sent ? ['message.sent', 'message.finalized'] : ['message.finalized']);
      expect(hooks.at(-1)!.json.data.payload).toMatchObject({ to: [{ status }], errors: code ? [{ code }] : [] });
    }
  });

  it('receipts go to the default URL when the message has none; none at all when disabled', async () => {
    sim.configure({ defaultWebhookUrl: sink.url, receipts: 'finalized' });
    await send(smsNumberOk(6));
    await sim.idle();
    expect(sink.received.map((h) => h.json.data.event_type)).toEqual(['message.finalized']);
    sim.configure({ receipts: 'none' });
    await send(smsNumberOk(7));
    await sim.idle();
    expect(sink.received).toHaveLength(1);
  });

  it('retries a webhook the endpoint refused, counting the attempt in meta', async () => {
    sink.respondWith(500);
    sim.configure({ receipts: 'finalized', webhookAttempts: 2 });
    await send(smsNumberOk(8), sink.url);
    await sim.idle();
    expect(sink.received.map((h) => h.json.meta.attempt)).toEqual([1, 2]);
    expect(sim.received().webhooks).toMatchObject({ failed: 1, pending: 0 });
  });

  it('inbound SMS fires a signed message.received; an event can be redelivered or replayed byte for byte', async () => {
    const res = await fetch(`${sim.url}/_sim/inbound`, {
      method: 'POST',
      body: JSON.stringify({ from: smsNumberOk(9), to: '+13125550100', text: 'STOP', webhookUrl: sink.url }),
    });
    const { eventId, status } = (await res.json()) as { eventId: string; status: number };
    expect(status).toBe(200);
    const [hook] = await sink.waitFor(1);
    expect(hook!.json.data).toMatchObject({ id: eventId, event_type: 'message.received', payload: { direction: 'inbound', text: 'STOP', from: { phone_number: smsNumberOk(9) } } });
    await client.webhooks.unwrap(hook!.body, { headers: hook!.headers });

    await sim.redeliver(eventId, { sameRequest: true });
    await sim.redeliver(eventId);
    const all = await sink.waitFor(3);
    expect(all[1]!.body).toBe(hook!.body);
    expect(all[1]!.headers['telnyx-signature-ed25519']).toBe(hook!.headers['telnyx-signature-ed25519']);
    expect(all[2]!.json.data.id).toBe(eventId);
    expect(all[2]!.json.meta.attempt).toBe(2);
  });

  it('redelivers an event only to where it was sent, never to a URL the caller names', async () => {
    const elsewhere = await startWebhookSink();
    try {
      const rec = await sim.inbound({ from: smsNumberOk(8), to: '+13125550100', text: 'HELP', webhookUrl: sink.url });
      await sink.waitFor(1);
      for (const sameRequest of [false, true]) {
        const res = await fetch(`${sim.url}/_sim/webhooks/${rec.eventId}/redeliver`, {
          method: 'POST',
          body: JSON.stringify({ url: elsewhere.url, sameRequest }),
        });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toMatch(/can be redelivered only to its own webhook or failover URL/);
      }
      await expect(sim.redeliver(rec.eventId, { url: elsewhere.url })).rejects.toThrow(/was not sent to/);
      // its own URL still works, and nothing reached the other server
      await sim.redeliver(rec.eventId, { url: sink.url });
      await sink.waitFor(2);
      await sim.idle();
      expect(elsewhere.received).toHaveLength(0);
    } finally {
      await elsewhere.close();
    }
  });

  it('with admin routes off answers only health, info, public key and CA of /_sim, and still takes sends', async () => {
    const locked = await startSimulator({ adminRoutes: false });
    try {
      for (const path of ['/_sim/health', '/_sim/info', '/_sim/public-key', '/_sim/ca']) {
        expect((await fetch(`${locked.url}${path}`)).status, path).toBe(200);
      }
      const refused: [string, string][] = [
        ['POST', '/_sim/config'],
        ['GET', '/_sim/config'],
        ['POST', '/_sim/reset'],
        ['POST', '/_sim/fail-next'],
        ['GET', '/_sim/received'],
        ['POST', '/_sim/inbound'],
        ['GET', '/_sim/webhooks'],
        ['POST', '/_sim/webhooks/any/redeliver'],
        ['POST', '/_sim/idle'],
      ];
      for (const [method, path] of refused) {
        const body = method === 'POST' ? JSON.stringify({ down: true, from: '+1', to: '+1', text: 'x', webhookUrl: sink.url, url: sink.url }) : undefined;
        expect((await fetch(`${locked.url}${path}`, { method, body })).status, `${method} ${path}`).toBe(404);
      }
      expect(locked.config().down).toBe(false);
      // what a worker does: read its endpoints, then send
      const info = await connectToSimulator(locked.url);
      const lockedClient = new Telnyx({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: info.telnyxBaseURL, maxRetries: 0 });
      await lockedClient.messages.send({ from: '+13125550100', to: smsNumberOk(7), text: 'hi' });
      expect(locked.received().sms.accepted).toBe(1);
      expect(sink.received).toHaveLength(0);
    } finally {
      await locked.close();
    }
  });

  it('a burst waits its turn: the timeout counts from the send, connections are kept', async () => {
    const slow = await startWebhookSink();
    slow.respondAfter(150);
    const key = createSigningKey();
    // Margins wide enough for a loaded machine: each answer takes 150 ms of a 1 s timeout.
    const sender = new WebhookSender({ key, attempts: () => 3, retryDelayMs: () => 10, timeoutMs: 1000, maxInFlight: 4 });
    try {
      // 40 events at 4 at a time take ~1.5 s, well past the 1 s timeout of each.
      const recs = await Promise.all(Array.from({ length: 40 }, () => sender.deliver(telnyxEvent('message.sent', {}), slow.url)));
      expect(recs.every((r) => r.status === 200 && r.attempt === 1)).toBe(true);
      expect(sender.stats).toMatchObject({ posted: 40, delivered: 40, failed: 0, pending: 0 });
      expect(slow.maxInFlight()).toBe(4);
      expect(slow.connections()).toBe(4);
      for (const h of slow.received.slice(0, 3)) await client.webhooks.unwrap(h.body, { headers: h.headers, key: key.publicKey });

      // An answer later than the timeout is a failed attempt, retried up to the limit.
      slow.respondAfter(1500);
      const late = await sender.deliver(telnyxEvent('message.sent', {}), slow.url);
      expect(late).toMatchObject({ status: 0, attempt: 3 });
      expect(sender.stats).toMatchObject({ posted: 43, failed: 1, pending: 0 });
      // So is a URL nothing can be posted to.
      for (const url of ['not a url', 'ftp://127.0.0.1/webhooks']) {
        expect(await sender.deliver(telnyxEvent('message.sent', {}), url)).toMatchObject({ status: 0, attempt: 3 });
      }
      expect(sender.stats).toMatchObject({ failed: 3, pending: 0 });
    } finally {
      sender.close();
      await slow.close();
    }
  });

  it('publishes its key as Telnyx does: base64 of the raw 32-byte ed25519 key', async () => {
    expect(Buffer.from(sim.publicKey, 'base64')).toHaveLength(32);
    const info = (await (await fetch(`${sim.url}/_sim/info`)).json()) as { publicKey: string; fcm: { port: number; ca: string } };
    expect(info.publicKey).toBe(sim.publicKey);
    expect(info.fcm.port).toBe(sim.fcm.port);
    expect(info.fcm.ca).toContain('BEGIN CERTIFICATE');
  });

  it('under load every accepted message gets exactly one finalized receipt', async () => {
    sim.configure({ receipts: 'all', defaultWebhookUrl: sink.url });
    const n = 1000;
    const ids = new Set<string>();
    let next = 0;
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (next < n) {
        const i = next++;
        const res = await send(i % 10 === 0 ? smsNumberFailing('40006', 'receipt', i) : smsNumberOk(i));
        ids.add(res.data!.id!);
      }
    }));
    await sim.idle();
    // Webhooks are at-least-once (a receiver too slow on a loaded machine gets a redelivery
    // of the same event), so count distinct events.
    const distinct = (hooks: typeof sink.received) => [...new Map(hooks.map((h) => [h.json.data.id, h])).values()];
    const finalized = distinct(sink.received.filter((h) => h.json.data.event_type === 'message.finalized'));
    expect(finalized).toHaveLength(n);
    expect(new Set(finalized.map((h) => h.json.data.payload.id as string))).toEqual(ids);
    expect(finalized.filter((h) => (h.json.data.payload.to as { status: string }[])[0]!.status === 'delivery_failed')).toHaveLength(n / 10);
    expect(distinct(sink.received.filter((h) => h.json.data.event_type === 'message.sent'))).toHaveLength(n);
    // Every event delivered once; the posts may exceed them by the redeliveries above.
    const stats = sim.received().webhooks;
    expect(stats).toMatchObject({ delivered: 2 * n, failed: 0, pending: 0 });
    expect(stats.posted).toBeGreaterThanOrEqual(2 * n);
  });
});
