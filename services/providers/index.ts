import type { HeraldConfig } from '../../lib/config.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { ProviderCircuit, withPushCircuit, withSmsCircuit, type BreakerOptions } from './circuit-breaker.js';
import { createFcmProvider, type FcmSimulatorTarget } from './fcm.js';
import { createTelnyxProvider, type TelnyxSmsProvider } from './telnyx.js';
import type { PushProvider, SmsProvider } from './types.js';

export * from './types.js';
export { classifyTelnyx, classifyTelnyxReceipt, type TelnyxReceipt } from './classify-telnyx.js';
export { classifyFcm } from './classify-fcm.js';
export { ProviderCircuit, withSmsCircuit, withPushCircuit, DEFAULT_BREAKER_OPTIONS, type BreakerOptions, type CircuitState } from './circuit-breaker.js';
export { createTelnyxProvider, type TelnyxProviderOptions, type TelnyxSmsProvider } from './telnyx.js';
export { connectToSimulator } from '../simulator/client.js';
import { SIMULATOR_TELNYX_API_KEY } from '../simulator/client.js';
export { createFcmProvider, FcmAgent, type FcmProviderOptions, type FcmPushProvider, type FcmSimulatorTarget } from './fcm.js';

/** Where the simulator listens (a Simulator or the answer of GET /_sim/info fits). */
export interface SimulatorEndpoints {
  telnyxBaseURL: string;
  publicKey: string;
  fcm: FcmSimulatorTarget;
}

export interface ProvidersOptions {
  simulator?: SimulatorEndpoints;
  /** 'simulator': ignore any credentials and use the simulator (e.g. for a synthetic load-test tenant). */
  mode?: 'auto' | 'simulator';
  breaker?: Partial<BreakerOptions>;
  telnyxTimeoutMs?: number;
  /** Requests on the wire at most, per provider (the worker's HERALD_WORKER_CONCURRENCY). */
  maxSockets?: number;
  log?: Logger;
}

export interface Providers {
  sms?: SmsProvider;
  push?: PushProvider;
  circuits: { telnyx: ProviderCircuit; fcm: ProviderCircuit };
  /** The ed25519 key (base64) webhook signatures are checked against. */
  telnyxPublicKey?: string;
  /** 'telnyx' | 'simulator' for each channel, for logs and health output */
  targets: { sms: 'telnyx' | 'simulator' | 'none'; push: 'fcm' | 'simulator' | 'none' };
  close(): Promise<void>;
}

/**
 * Build both providers, each behind its own circuit breaker.
 *
 * SMS:  TELNYX_API_KEY (env or TELNYX_API_KEY_FILE) against TELNYX_BASE_URL, or Telnyx
 *       itself; without a key, the simulator when one is given.
 * Push: FCM_SERVICE_ACCOUNT (env or _FILE, JSON) against real FCM; without it, the
 *       simulator when one is given.
 * Real credentials win over the simulator, as DESIGN.md says ("pointed at the local
 * provider simulator unless credentials are given"), unless mode is 'simulator'.
 * A process that did not start the simulator gets its endpoints with
 * connectToSimulator(HERALD_SIMULATOR_URL). Credentials are never logged.
 */
export function createProviders(config: HeraldConfig, opts: ProvidersOptions = {}): Providers {
  const log = opts.log ?? createLogger('providers');
  const telnyxCircuit = new ProviderCircuit('telnyx', opts.breaker);
  const fcmCircuit = new ProviderCircuit('fcm', opts.breaker);
  const sim = opts.simulator;
  const useCredentials = opts.mode !== 'simulator';
  if (!useCredentials && !sim) throw new Error("createProviders: mode 'simulator' needs the simulator's endpoints");

  let sms: TelnyxSmsProvider | undefined;
  let smsTarget: Providers['targets']['sms'] = 'none';
  if (useCredentials && config.telnyxApiKey) {
    sms = createTelnyxProvider({ apiKey: config.telnyxApiKey, baseURL: config.TELNYX_BASE_URL, timeoutMs: opts.telnyxTimeoutMs, maxSockets: opts.maxSockets, log });
    smsTarget = config.TELNYX_BASE_URL && sim && config.TELNYX_BASE_URL === sim.telnyxBaseURL ? 'simulator' : 'telnyx';
  } else if (sim || (useCredentials && config.TELNYX_BASE_URL)) {
    // No key: only a simulator can take the sends (given, or named by TELNYX_BASE_URL).
    const baseURL = sim?.telnyxBaseURL ?? config.TELNYX_BASE_URL;
    sms = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL, timeoutMs: opts.telnyxTimeoutMs, maxSockets: opts.maxSockets, log });
    smsTarget = 'simulator';
  }

  let fcm: ReturnType<typeof createFcmProvider> | undefined;
  let pushTarget: Providers['targets']['push'] = 'none';
  if (useCredentials && config.fcmServiceAccountJson) {
    fcm = createFcmProvider({ projectId: config.FCM_PROJECT_ID, serviceAccountJson: config.fcmServiceAccountJson, observer: fcmCircuit, maxSockets: opts.maxSockets, log });
    pushTarget = 'fcm';
  } else if (sim) {
    fcm = createFcmProvider({ projectId: config.FCM_PROJECT_ID, simulator: sim.fcm, observer: fcmCircuit, maxSockets: opts.maxSockets, log });
    pushTarget = 'simulator';
  }

  log.info({ sms: smsTarget, push: pushTarget }, 'providers configured');
  return {
    sms: sms && withSmsCircuit(sms, telnyxCircuit),
    push: fcm && withPushCircuit(fcm, fcmCircuit),
    circuits: { telnyx: telnyxCircuit, fcm: fcmCircuit },
    telnyxPublicKey: smsTarget === 'simulator' && sim ? sim.publicKey : config.telnyxPublicKey,
    targets: { sms: smsTarget, push: pushTarget },
    async close() {
      telnyxCircuit.shutdown();
      fcmCircuit.shutdown();
      sms?.close();
      await fcm?.close();
    },
  };
}
