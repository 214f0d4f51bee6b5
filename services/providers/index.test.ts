import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfig } from '../../lib/config.js';
import { DEFAULT_CONFIG, startSimulator, type Simulator } from '../simulator/simulator.js';
import { pushTokenOk, smsNumberOk } from '../simulator/behaviours.js';
import { connectToSimulator, createProviders } from './index.js';

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});

function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { log: pino({ level: 'trace' }, stream), text: () => lines.join('') };
}

describe('createProviders', () => {
  it('reads the Telnyx key from a mounted secret file, aims both SDKs at the simulator, and never logs the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-secrets-'));
    const secret = 'KEY0123456789SECRETVALUE';
    writeFileSync(join(dir, 'telnyx'), `${secret}\n`);
    const config = loadConfig({ TELNYX_API_KEY_FILE: join(dir, 'telnyx'), TELNYX_BASE_URL: sim.telnyxBaseURL, FCM_PROJECT_ID: 'herald-it' });
    expect(config.telnyxApiKey).toBe(secret);
    const { log, text } = capturingLogger();
    // The simulator takes only this key: the send below proves the file's key is the one sent.
    sim.configure({ telnyxApiKeys: [secret] });

    const providers = createProviders(config, { simulator: sim, log });
    try {
      expect(providers.targets).toEqual({ sms: 'simulator', push: 'simulator' });
      expect(providers.telnyxPublicKey).toBe(sim.publicKey);
      expect(await providers.sms!.send({ from: '+13125550100', to: smsNumberOk(1), text: 'hi' })).toMatchObject({ kind: 'accepted' });
      const outcomes = await providers.push!.sendEach([{ token: pushTokenOk(1), body: 'hi' }]);
      expect(outcomes[0]).toMatchObject({ kind: 'accepted' });
      expect(sim.countFor(smsNumberOk(1))).toBe(1);
      expect(sim.countFor(pushTokenOk(1))).toBe(1);
      expect(providers.circuits.telnyx.state).toBe('closed');
      // Failures are logged by whoever handles them; nothing here may carry the key.
      sim.failNext('sms', 1, 500);
      await providers.sms!.send({ from: '+13125550100', to: smsNumberOk(2), text: 'hi' });
    } finally {
      await providers.close();
      sim.configure({ telnyxApiKeys: DEFAULT_CONFIG.telnyxApiKeys });
    }
    expect(text()).toContain('providers configured');
    expect(text()).not.toContain(secret);
  });

  it('without credentials or simulator there is no provider (the worker then waits rather than fails)', async () => {
    const providers = createProviders(loadConfig({}));
    expect(providers.sms).toBeUndefined();
    expect(providers.push).toBeUndefined();
    expect(providers.targets).toEqual({ sms: 'none', push: 'none' });
    await providers.close();
  });

  it('an FCM service account means real FCM, not the simulator', async () => {
    // A syntactically valid service account; nothing is sent with it here.
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const sa = JSON.stringify({
      type: 'service_account',
      project_id: 'herald-prod',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      client_email: 'herald@herald-prod.iam.gserviceaccount.com',
    });
    const { log, text } = capturingLogger();
    const providers = createProviders(loadConfig({ FCM_SERVICE_ACCOUNT: sa }), { simulator: sim, log });
    expect(providers.targets.push).toBe('fcm');
    await providers.close();
    expect(text()).not.toContain('PRIVATE KEY');
  });

  it("mode 'simulator' ignores credentials; a separate process finds the simulator by URL", async () => {
    const viaUrl = await connectToSimulator(`http://localhost:${sim.port}`);
    expect(viaUrl.telnyxBaseURL).toBe(`http://localhost:${sim.port}/v2`);
    expect(viaUrl.fcm).toMatchObject({ host: 'localhost', port: sim.fcm.port });
    expect(viaUrl.publicKey).toBe(sim.publicKey);
    // A Service URL without a port: FCM on 443 of the same host.
    expect((await connectToSimulator(`http://localhost:${sim.port}`, { fcmPort: 443 })).fcm.port).toBe(443);

    const config = loadConfig({ TELNYX_API_KEY: 'KEY-real', FCM_SERVICE_ACCOUNT: '{"not":"used"}' });
    const providers = createProviders(config, { simulator: viaUrl, mode: 'simulator' });
    try {
      expect(providers.targets).toEqual({ sms: 'simulator', push: 'simulator' });
      expect(providers.telnyxPublicKey).toBe(sim.publicKey);
      expect(await providers.sms!.send({ from: '+13125550100', to: smsNumberOk(30), text: 'hi' })).toMatchObject({ kind: 'accepted' });
      expect((await providers.push!.sendEach([{ token: pushTokenOk(30), body: 'hi' }]))[0]).toMatchObject({ kind: 'accepted' });
      expect(sim.countFor(smsNumberOk(30))).toBe(1);
      expect(sim.countFor(pushTokenOk(30))).toBe(1);
    } finally {
      await providers.close();
    }
  });
});
