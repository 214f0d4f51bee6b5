import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:https';
import { startSimulator, type Simulator } from '../simulator/simulator.js';
import { pushTokenOk } from '../simulator/behaviours.js';
import { createFcmProvider, type FcmPushProvider } from './fcm.js';
import { ProviderCircuit, withPushCircuit } from './circuit-breaker.js';
import { waitFor } from '../../devenv/poll.js';

// The production credential path: firebase-admin signs a JWT with the service account's
// private key and exchanges it at Google's token endpoint, here the simulator's, which
// holds only the public key and refuses the fixed simulator token.

const CLIENT_EMAIL = 'herald-push@herald-test.iam.gserviceaccount.com';

function serviceAccount(): { json: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const json = JSON.stringify({
    type: 'service_account',
    project_id: 'herald-test',
    private_key_id: 'test-key',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: CLIENT_EMAIL,
    token_uri: 'https://oauth2.googleapis.com/token',
  });
  return { json, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

let sim: Simulator;
const account = serviceAccount();
const providers: FcmPushProvider[] = [];
const circuits: ProviderCircuit[] = [];

beforeAll(async () => {
  sim = await startSimulator({ fcmAccessTokens: [], serviceAccounts: [{ clientEmail: CLIENT_EMAIL, publicKey: account.publicKey }] });
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  for (const c of circuits.splice(0)) c.shutdown();
  sim.reset();
  sim.configure({ down: false, fcmTokenLifetimeSeconds: 3600 });
});
afterAll(async () => {
  await sim.close();
});

function provider(json = account.json, circuit?: ProviderCircuit): FcmPushProvider {
  const observer = circuit && { record: (ok: boolean) => circuit.record(ok), mayProceed: () => circuit.mayProceed(), retryAfterMs: () => circuit.retryAfterMs() };
  const p = createFcmProvider({ projectId: 'herald-test', serviceAccountJson: json, simulator: sim.fcm, observer });
  providers.push(p);
  return p;
}

const push = (i: number) => ({ token: pushTokenOk(i), body: 'Class moved to room 4' });

/** An FCM v1 send with this bearer token, straight to the simulator's TLS port. */
function rawSend(token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: sim.fcm.host, port: sim.fcm.port, servername: sim.fcm.servername, ca: sim.fcm.ca, method: 'POST',
      path: '/v1/projects/herald-test/messages:send',
      headers: { host: 'fcm.googleapis.com', authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ message: { token: pushTokenOk(99), notification: { body: 'x' } } }));
  });
}

describe('FCM with a service account: the JWT → OAuth token exchange', () => {
  it('exchanges a JWT signed with the account key for an access token and sends with it', async () => {
    const [out] = await provider().sendEach([push(1)]);
    expect(out).toMatchObject({ kind: 'accepted' });
    const { granted, refused } = sim.tokenGrants();
    expect(refused).toBe(0);
    expect(granted).toHaveLength(1);
    expect(granted[0]).toMatchObject({ clientEmail: CLIENT_EMAIL, token: expect.stringMatching(/^ya29\./) });
    expect(sim.received().push.accepted).toBe(1);
  });

  it('a JWT signed with a key the account does not hold is refused, and the send waits as a provider-level failure', async () => {
    const forged = JSON.stringify({ ...JSON.parse(account.json), private_key: JSON.parse(serviceAccount().json).private_key });
    const [out] = await provider(forged).sendEach([push(2)]);
    expect(out).toMatchObject({ kind: 'retryable', fault: 'provider' });
    expect(sim.tokenGrants()).toMatchObject({ granted: [], refused: 1 });
    expect(sim.received().push.requests).toBe(0);
  });

  it('fetches a fresh token when the one it holds nears expiry, and the simulator refuses a token once it expired', async () => {
    // firebase-admin and google-auth-library both refresh a token within 5 minutes of its
    // expiry: a 300-second token is due for refresh at once, so every send fetches one.
    sim.configure({ fcmTokenLifetimeSeconds: 300 });
    const fcm = provider();
    expect((await fcm.sendEach([push(3)]))[0]).toMatchObject({ kind: 'accepted' });
    expect((await fcm.sendEach([push(4)]))[0]).toMatchObject({ kind: 'accepted' });
    const tokens = sim.tokenGrants().granted.map((g) => g.token);
    expect(tokens).toHaveLength(2);
    expect(new Set(tokens).size).toBe(2);

    sim.configure({ fcmTokenLifetimeSeconds: 1 });
    await fcm.sendEach([push(5)]);
    const short = sim.tokenGrants().granted[2]!;
    expect(await rawSend(short.token)).toBe(200);
    await waitFor('the short token to expire', async () => Date.now() > short.expiresAt, { timeoutMs: 5_000, everyMs: 100 });
    expect(await rawSend(short.token)).toBe(401);
  });

  it('the token fetch is not an FCM exchange: an open circuit neither refuses nor counts it, and the half-open probe is a send', async () => {
    sim.configure({ fcmTokenLifetimeSeconds: 300 });
    const circuit = new ProviderCircuit('fcm-credentials-test', { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 500 });
    circuits.push(circuit);
    const fcm = provider(account.json, circuit);
    sim.configure({ down: true });
    await fcm.sendEach([push(6), push(7), push(8)]);
    expect(circuit.state).toBe('open');

    const grants = sim.tokenGrants().granted.length;
    const exchanges = fcm.agent.exchanges;
    // A call already under way when the circuit opened: its FCM request is refused at the
    // agent, but the token fetch before it goes through and is not counted.
    const [refused] = await fcm.sendEach([push(9)]);
    expect(refused).toMatchObject({ kind: 'retryable', code: 'circuit_open' });
    expect(sim.tokenGrants().granted.length).toBe(grants + 1);
    expect(fcm.agent.exchanges).toBe(exchanges);

    sim.configure({ down: false });
    await waitFor('the circuit to half-open', async () => circuit.state === 'half_open', { timeoutMs: 10_000, everyMs: 50 });
    // The half-open probe, as the worker sends it: it fetches a fresh token, and the one
    // exchange the circuit judges FCM by is the send itself.
    const [probe] = await withPushCircuit(fcm, circuit).sendEach([push(10)]);
    expect(probe).toMatchObject({ kind: 'accepted' });
    expect(sim.tokenGrants().granted.length).toBe(grants + 2);
    expect(fcm.agent.exchanges).toBe(exchanges + 1);
    expect(circuit.state).toBe('closed');
  });

  it('a malformed key is refused at start with the setting and the missing field named, never its content', () => {
    expect(() => provider('not json')).toThrow(/FCM_SERVICE_ACCOUNT is not JSON/);
    const noKey = JSON.stringify({ client_email: CLIENT_EMAIL, private_key: '' });
    expect(() => provider(noKey)).toThrow(/FCM_SERVICE_ACCOUNT has no private_key/);
    const secret = JSON.parse(account.json) as { private_key: string };
    const noEmail = JSON.stringify({ private_key: secret.private_key });
    expect(() => provider(noEmail)).toThrow(/FCM_SERVICE_ACCOUNT has no client_email/);
    try {
      provider(noEmail);
    } catch (err) {
      expect(String(err)).not.toContain('PRIVATE KEY');
    }
  });
});
