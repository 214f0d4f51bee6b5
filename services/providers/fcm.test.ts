import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRequire } from 'node:module';
import type * as TlsModule from 'node:tls';
import type * as Http2Module from 'node:http2';
import { DEFAULT_CONFIG, startSimulator, type Simulator } from '../simulator/simulator.js';
import { pushTokenAfterAccept, pushTokenFailing, pushTokenOk, type FcmErrorCode } from '../simulator/behaviours.js';
import { createFcmProvider, type FcmPushProvider } from './fcm.js';
import { ProviderCircuit } from './circuit-breaker.js';
import type { Outcome, PushMessage } from './types.js';

// The CommonJS module objects firebase-admin and node:https use, so spies see their calls.
const require = createRequire(import.meta.url);
const tls = require('node:tls') as typeof TlsModule;
const http2 = require('node:http2') as typeof Http2Module;

let sim: Simulator;
let fcm: FcmPushProvider;
let circuit: ProviderCircuit;
/** Exchanges the transport reported, counted here, then passed on to the circuit. */
const seen = { ok: 0, failed: 0 };

beforeAll(async () => {
  sim = await startSimulator();
  // Thresholds out of the way: these tests are about classification, not opening.
  circuit = new ProviderCircuit('fcm-test', { volumeThreshold: 1_000_000 });
  const observer = {
    record(ok: boolean) {
      if (ok) seen.ok++;
      else seen.failed++;
      void circuit.record(ok); // never rejects; these tests do not wait for the count
    },
    mayProceed: () => circuit.mayProceed(),
    retryAfterMs: () => circuit.retryAfterMs(),
  };
  fcm = createFcmProvider({ projectId: 'herald-test', simulator: sim.fcm, observer });
});

afterAll(async () => {
  await fcm.close();
  circuit.shutdown();
  await sim.close();
});

beforeEach(() => {
  sim.reset();
  sim.configure({ latencyMs: 0, errorRate: 0, down: false, retryAfterSeconds: 1, fcmAccessTokens: DEFAULT_CONFIG.fcmAccessTokens });
});

afterEach(() => {
  vi.restoreAllMocks();
});

const msg = (token: string): PushMessage => ({ token, title: 'CS101', body: 'Class moved to room 4' });

describe('FCM through the real firebase-admin SDK against the simulator', () => {
  it('sendEach of 500 tokens reaches the simulator, every connection to its TLS port, none to Google', async () => {
    const tlsConnect = vi.spyOn(tls, 'connect');
    const h2Connect = vi.spyOn(http2, 'connect');
    const tokens = Array.from({ length: 500 }, (_, i) => pushTokenOk(i));
    const before = fcm.agent.exchanges;

    const outcomes = await fcm.sendEach(tokens.map(msg));

    expect(outcomes).toHaveLength(500);
    expect(outcomes.every((o) => o.kind === 'accepted')).toBe(true);
    expect(outcomes[0]).toMatchObject({ kind: 'accepted', providerMessageId: expect.stringMatching(/^projects\/herald-test\/messages\//) });
    const r = sim.received();
    expect(r.push).toMatchObject({ requests: 500, accepted: 500, recipients: 500, duplicates: { count: 0 } });
    expect(fcm.agent.exchanges - before).toBe(500);
    expect(h2Connect).not.toHaveBeenCalled();
    expect(tlsConnect).toHaveBeenCalled();
    for (const [options] of tlsConnect.mock.calls as unknown as [TlsModule.ConnectionOptions][]) {
      expect(options).toMatchObject({ host: sim.fcm.host, port: sim.fcm.port, servername: 'fcm.googleapis.com' });
    }
  });

  it('more than 500 messages go out in batches of at most 500, in order', async () => {
    const tokens = Array.from({ length: 501 }, (_, i) => (i === 500 ? pushTokenFailing('UNREGISTERED', 1) : pushTokenOk(i)));
    const outcomes = await fcm.sendEach(tokens.map(msg));
    expect(outcomes).toHaveLength(501);
    expect(outcomes[499]!.kind).toBe('accepted');
    expect(outcomes[500]).toMatchObject({ kind: 'invalid_token', code: 'UNREGISTERED' });
    expect(sim.received().push.requests).toBe(501);
  });

  it('a topic message is accepted and recorded under the topic', async () => {
    const [o] = await fcm.sendEach([{ topic: 'students-cs101', body: 'Exam moved' }]);
    expect(o!.kind).toBe('accepted');
    expect(sim.countFor('topic:students-cs101')).toBe(1);
  });

  const cases: [FcmErrorCode, Outcome['kind'], number | undefined][] = [
    ['UNREGISTERED', 'invalid_token', undefined],
    ['INVALID_ARGUMENT', 'invalid_token', undefined],
    ['INTERNAL', 'retryable', undefined],
    ['QUOTA_EXCEEDED', 'retryable', 1000],
    ['SENDER_ID_MISMATCH', 'permanent', undefined],
    ['THIRD_PARTY_AUTH_ERROR', 'permanent', undefined],
  ];
  it.each(cases)('%s → %s (retryAfterMs %s)', async (code, kind, retryAfterMs) => {
    const [o] = await fcm.sendEach([msg(pushTokenFailing(code, 2))]);
    expect(o).toMatchObject({ kind, code });
    expect((o as { retryAfterMs?: number }).retryAfterMs).toBe(retryAfterMs);
    // Not retried inside the SDK: one request.
    expect(sim.received().push.requests).toBe(1);
  });

  it('one bad token fails only its own message in a batch', async () => {
    const outcomes = await fcm.sendEach([msg(pushTokenOk(1)), msg(pushTokenFailing('UNREGISTERED', 3)), msg(pushTokenOk(2))]);
    expect(outcomes.map((o) => o.kind)).toEqual(['accepted', 'invalid_token', 'accepted']);
  });

  it('a malformed registration token (FCM answers INVALID_ARGUMENT on message.token) is a dead token, only its own', async () => {
    const outcomes = await fcm.sendEach([msg('not a token\n'), msg(pushTokenOk(3))]);
    expect(outcomes[0]).toMatchObject({ kind: 'invalid_token', code: 'INVALID_ARGUMENT' });
    expect(outcomes[1]!.kind).toBe('accepted');
    expect(sim.received().push).toMatchObject({ requests: 2, accepted: 1, rejectedByCode: { INVALID_ARGUMENT: 1 } });
  });

  it('an access token FCM does not take (401 UNAUTHENTICATED) is a provider outage, not a dead token, and the breaker sees it', async () => {
    sim.configure({ fcmAccessTokens: ['a-token-herald-was-never-given'] });
    const before = { ...seen };
    const outcomes = await fcm.sendEach([msg(pushTokenOk(4)), msg(pushTokenOk(5))]);
    expect(outcomes.map((o) => [o.kind, (o as { code?: string }).code])).toEqual([['retryable', 'UNAUTHENTICATED'], ['retryable', 'UNAUTHENTICATED']]);
    expect(seen.failed - before.failed).toBe(2);
    expect(sim.received().push.accepted).toBe(0);
  });

  it('an invalid argument that is not the token (payload too big) is permanent, not a dead token', async () => {
    const [o] = await fcm.sendEach([{ token: pushTokenOk(9), body: 'x'.repeat(5000) }]);
    expect(o).toMatchObject({ kind: 'permanent', code: 'INVALID_ARGUMENT' });
  });

  it('a message with neither token nor topic is refused for that message only', async () => {
    const outcomes = await fcm.sendEach([{ body: 'nobody' }, msg(pushTokenOk(1))]);
    expect(outcomes[0]).toMatchObject({ kind: 'permanent' });
    expect(outcomes[1]!.kind).toBe('accepted');
  });

  it('UNAVAILABLE: one request per attempt (firebase-admin retries nothing itself), seen by the breaker', async () => {
    const before = { ...seen };
    const [o] = await fcm.sendEach([msg(pushTokenFailing('UNAVAILABLE', 4))]);
    expect(o).toMatchObject({ kind: 'retryable', code: 'UNAVAILABLE', retryAfterMs: 1000 });
    // A 503 is a refusal: resending it cannot notify twice.
    expect((o as { maybeSent?: boolean }).maybeSent).toBeUndefined();
    expect(sim.received().push.requests).toBe(1);
    expect(seen.failed - before.failed).toBe(1);
    expect(seen.ok - before.ok).toBe(0);
  });

  it('INTERNAL (500): one request, and the outcome is unknown (maybe sent)', async () => {
    const [o] = await fcm.sendEach([msg(pushTokenFailing('INTERNAL', 5))]);
    expect(o).toMatchObject({ kind: 'retryable', code: 'INTERNAL', maybeSent: true });
    expect(sim.received().push.requests).toBe(1);
  });

  it('a connection reset after FCM accepted: one request, the message reached the device, the outcome is unknown', async () => {
    const token = pushTokenAfterAccept('reset', 1);
    const [o] = await fcm.sendEach([msg(token)]);
    expect(o).toMatchObject({ kind: 'retryable', code: 'network', maybeSent: true });
    // firebase-admin would retry ECONNRESET four times on its own: each a second notification.
    expect(sim.received().push.requests).toBe(1);
    expect(sim.countFor(token)).toBe(1);
    // The simulator misbehaves on the first send only: the resend is answered (and is the duplicate).
    const [again] = await fcm.sendEach([msg(token)]);
    expect(again!.kind).toBe('accepted');
    expect(sim.countFor(token)).toBe(2);
  });

  it('an answer held past firebase-admin\'s 15 s timeout: one request, timeout, maybe sent', { timeout: 40_000 }, async () => {
    sim.configure({ holdMs: 17_000 });
    const token = pushTokenAfterAccept('hold', 1);
    const [o] = await fcm.sendEach([msg(token)]);
    expect(o).toMatchObject({ kind: 'retryable', code: 'timeout', maybeSent: true });
    expect(sim.received().push.requests).toBe(1);
    expect(sim.countFor(token)).toBe(1);
  });
});
