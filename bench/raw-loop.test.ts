import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIMULATOR_TELNYX_API_KEY } from '../services/simulator/client.js';
import { startSimulator, type Simulator } from '../services/simulator/simulator.js';
import { pushTokenFailing, pushTokenOk, smsNumberOk } from '../services/simulator/behaviours.js';
import { createTelnyxProvider } from '../services/providers/telnyx.js';
import { createFcmProvider, type FcmPushProvider } from '../services/providers/fcm.js';
import { rawPushLoop, rawSmsLoop } from './raw-loop.js';
import type { PushProvider } from '../services/providers/types.js';

let sim: Simulator;
let fcm: FcmPushProvider;
beforeAll(async () => {
  sim = await startSimulator({ receipts: 'none' });
  fcm = createFcmProvider({ projectId: 'p', simulator: sim.fcm });
});
afterAll(async () => {
  await fcm.close();
  await sim.close();
});

describe('raw loops', () => {
  it('sends each SMS exactly once at the given concurrency', async () => {
    sim.reset();
    const r = await rawSmsLoop({
      provider: createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL }),
      count: 300, concurrency: 25,
      makeMessage: (i) => ({ from: '+13125550100', to: smsNumberOk(i), text: 'hi' }),
    });
    expect(r.outcomes.accepted).toBe(300);
    expect(r.perSecond).toBeGreaterThan(0);
    expect(sim.received().sms).toMatchObject({ accepted: 300, recipients: 300, duplicates: { count: 0 } });
  });

  it('sends each push exactly once in batches, never more than `concurrency` messages in flight', async () => {
    sim.reset();
    let inFlight = 0;
    let peak = 0;
    const counting: PushProvider = {
      name: 'fcm',
      async sendEach(messages) {
        inFlight += messages.length;
        peak = Math.max(peak, inFlight);
        try {
          return await fcm.sendEach(messages);
        } finally {
          inFlight -= messages.length;
        }
      },
    };
    const r = await rawPushLoop({
      provider: counting, count: 1234, concurrency: 100, batchSize: 50,
      makeMessage: (i) => ({ token: i === 7 ? pushTokenFailing('UNREGISTERED') : pushTokenOk(i), body: 'hi' }),
    });
    expect(r.outcomes).toMatchObject({ accepted: 1233, invalid_token: 1 });
    expect(peak).toBe(100);
    expect(sim.received().push).toMatchObject({ accepted: 1233, recipients: 1233, duplicates: { count: 0 } });
  });
});
