import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { metrics } from '../../lib/metrics.js';
import { SIMULATOR_TELNYX_API_KEY } from '../simulator/client.js';
import { startSimulator, type Simulator } from '../simulator/simulator.js';
import { pushTokenOk, smsNumberFailing, smsNumberOk } from '../simulator/behaviours.js';
import { ProviderCircuit, withPushCircuit, withSmsCircuit } from './circuit-breaker.js';
import { createTelnyxProvider } from './telnyx.js';
import { createFcmProvider, type FcmPushProvider } from './fcm.js';
import { CircuitOpenError, type PushProvider, type SmsProvider } from './types.js';

let sim: Simulator;
const FROM = '+13125550100';
const OPTS = { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 150, rollingWindowMs: 60_000, rollingBuckets: 6 };

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.reset();
  sim.configure({ down: false, latencyMs: 0, errorRate: 0 });
});

async function gauge(provider: string): Promise<number | undefined> {
  const m = await metrics.circuitState.get();
  return m.values.find((v) => v.labels.provider === provider)?.value;
}

async function counter(c: typeof metrics.circuitFailures, provider: string): Promise<number> {
  const m = await c.get();
  return m.values.find((v) => v.labels.provider === provider)?.value ?? 0;
}

function smsWith(name: string, apiKey = SIMULATOR_TELNYX_API_KEY): { sms: SmsProvider; circuit: ProviderCircuit } {
  const circuit = new ProviderCircuit(name, OPTS);
  const sms = withSmsCircuit(createTelnyxProvider({ apiKey, baseURL: sim.telnyxBaseURL, timeoutMs: 2000 }), circuit);
  return { sms, circuit };
}

const waitForState = (c: ProviderCircuit, state: string) => vi.waitFor(() => expect(c.state).toBe(state), { timeout: 5000, interval: 10 });

describe('circuit breaker around Telnyx', () => {
  it('opens after provider failures, then fails fast with CircuitOpenError without calling the provider', async () => {
    const { sms, circuit } = smsWith('telnyx-open');
    expect(await gauge('telnyx-open')).toBe(0);
    sim.configure({ down: true });
    for (let i = 0; i < 4; i++) {
      expect(await sms.send({ from: FROM, to: smsNumberOk(i), text: 'hi' })).toMatchObject({ kind: 'retryable' });
    }
    expect(circuit.state).toBe('open');
    expect(await gauge('telnyx-open')).toBe(2);
    expect(await counter(metrics.circuitFailures, 'telnyx-open')).toBe(4);

    const requests = sim.received().sms.requests;
    const err = await sms.send({ from: FROM, to: smsNumberOk(9), text: 'hi' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CircuitOpenError);
    expect(err).toMatchObject({ provider: 'telnyx-open' });
    expect((err as CircuitOpenError).retryAfterMs).toBeGreaterThan(0);
    expect((err as CircuitOpenError).retryAfterMs).toBeLessThanOrEqual(OPTS.resetTimeoutMs);
    expect(sim.received().sms.requests).toBe(requests); // failed fast: nothing reached the provider
    circuit.shutdown();
  });

  it('half-opens after the reset timeout, lets one probe through, and closes when the provider is back', async () => {
    const { sms, circuit } = smsWith('telnyx-recover');
    sim.configure({ down: true });
    for (let i = 0; i < 4; i++) await sms.send({ from: FROM, to: smsNumberOk(i), text: 'hi' });
    expect(circuit.state).toBe('open');

    await waitForState(circuit, 'half_open');
    expect(await gauge('telnyx-recover')).toBe(1);
    sim.configure({ down: false, latencyMs: 50 });
    // Two calls at once while half-open: one probe goes out, the other is told to wait.
    const [probe, second] = await Promise.allSettled([
      sms.send({ from: FROM, to: smsNumberOk(10), text: 'hi' }),
      sms.send({ from: FROM, to: smsNumberOk(11), text: 'hi' }),
    ]);
    expect(probe).toMatchObject({ status: 'fulfilled', value: { kind: 'accepted' } });
    expect(second.status).toBe('rejected');
    expect((second as PromiseRejectedResult).reason).toBeInstanceOf(CircuitOpenError);
    expect(circuit.state).toBe('closed');
    expect(await gauge('telnyx-recover')).toBe(0);
    expect(await sms.send({ from: FROM, to: smsNumberOk(12), text: 'hi' })).toMatchObject({ kind: 'accepted' });
    circuit.shutdown();
  });

  it('a failed probe opens the circuit again', async () => {
    const { sms, circuit } = smsWith('telnyx-reopen');
    sim.configure({ down: true });
    for (let i = 0; i < 4; i++) await sms.send({ from: FROM, to: smsNumberOk(i), text: 'hi' });
    await waitForState(circuit, 'half_open');
    expect(await sms.send({ from: FROM, to: smsNumberOk(5), text: 'hi' })).toMatchObject({ kind: 'retryable' });
    expect(circuit.state).toBe('open');
    await expect(sms.send({ from: FROM, to: smsNumberOk(6), text: 'hi' })).rejects.toBeInstanceOf(CircuitOpenError);
    circuit.shutdown();
  });

  it('a wrong API key (401, 10009) is a provider outage: nobody’s delivery fails, and the circuit opens', async () => {
    const { sms, circuit } = smsWith('telnyx-wrong-key', 'KEY-not-the-one-telnyx-has');
    for (let i = 0; i < 4; i++) {
      expect(await sms.send({ from: FROM, to: smsNumberOk(100 + i), text: 'hi' })).toMatchObject({ kind: 'retryable', code: '10009' });
    }
    expect(circuit.state).toBe('open');
    expect(await counter(metrics.circuitFailures, 'telnyx-wrong-key')).toBe(4);
    expect(await sms.send({ from: FROM, to: smsNumberOk(104), text: 'hi' }).catch((e: unknown) => e)).toBeInstanceOf(CircuitOpenError);
    expect(sim.countFor(smsNumberOk(100))).toBe(0);
    circuit.shutdown();
  });

  it('per-recipient permanent errors do not open it', async () => {
    const { sms, circuit } = smsWith('telnyx-permanent');
    for (let i = 0; i < 20; i++) {
      expect(await sms.send({ from: FROM, to: smsNumberFailing('10002', 'send', i), text: 'hi' })).toMatchObject({ kind: 'permanent' });
    }
    expect(await sms.send({ from: FROM, to: smsNumberFailing('40300', 'send'), text: 'hi' })).toMatchObject({ kind: 'opted_out' });
    expect(circuit.state).toBe('closed');
    expect(await counter(metrics.circuitSuccesses, 'telnyx-permanent')).toBe(21);
    expect(await counter(metrics.circuitFailures, 'telnyx-permanent')).toBe(0);
    circuit.shutdown();
  });
});

describe('circuit breaker around FCM (the transport reports every HTTP attempt)', () => {
  let fcm: FcmPushProvider;
  let push: PushProvider;
  let circuit: ProviderCircuit;

  beforeAll(() => {
    circuit = new ProviderCircuit('fcm-breaker', { ...OPTS, resetTimeoutMs: 4000 });
    fcm = createFcmProvider({ projectId: 'p', simulator: sim.fcm, observer: circuit });
    push = withPushCircuit(fcm, circuit);
  });
  afterAll(async () => {
    await fcm.close();
    circuit.shutdown();
  });

  it('opens on a down provider after one request per message (firebase-admin retries nothing); then recovers', async () => {
    sim.configure({ down: true });
    const tokens = Array.from({ length: 10 }, (_, i) => ({ token: pushTokenOk(i), body: 'hi' }));
    // Each message is one request (one exchange the circuit counts); it opens after
    // OPTS.volumeThreshold failures, and the messages not yet written fail at once.
    sim.reset();
    const first = await push.sendEach(tokens);
    expect(first.every((o) => o.kind === 'retryable')).toBe(true);
    expect(circuit.state).toBe('open');
    const requests = sim.received().push.requests;
    expect(requests).toBeGreaterThanOrEqual(OPTS.volumeThreshold);
    expect(requests).toBeLessThanOrEqual(10);
    await expect(push.sendEach(tokens)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(sim.received().push.requests).toBe(requests);

    sim.configure({ down: false });
    await waitForState(circuit, 'half_open');
    const outcomes = await push.sendEach(tokens);
    expect(outcomes.every((o) => o.kind === 'accepted')).toBe(true);
    expect(circuit.state).toBe('closed');
    expect(sim.received().push.accepted).toBe(10);
  });
});
