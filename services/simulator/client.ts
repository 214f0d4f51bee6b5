/**
 * What a process that did not start the simulator needs of it: its endpoints. The worker
 * and the provider adapters import this, never the simulator's server (./simulator.ts).
 */

export const FCM_HOST = 'fcm.googleapis.com';
/** Google's OAuth token endpoint, where firebase-admin exchanges a service account's JWT for an access token. */
export const GOOGLE_TOKEN_HOST = 'oauth2.googleapis.com';

/** The one Telnyx API key the simulator accepts (any other gets 401, as Telnyx answers a wrong key). */
export const SIMULATOR_TELNYX_API_KEY = 'herald-simulator-key';
/** The one FCM OAuth access token the simulator accepts (any other gets 401 UNAUTHENTICATED). */
export const SIMULATOR_FCM_ACCESS_TOKEN = 'herald-simulator-token';

export interface SimulatorInfo {
  url: string;
  telnyxBaseURL: string;
  publicKey: string;
  fcm: { host: string; port: number; ca: string; servername: string };
}

/**
 * Fetch a running simulator's endpoints (for a process that did not start it), as seen
 * from the URL the caller reached it by: the Telnyx base URL and FCM host follow that
 * URL, not the simulator's own bind address. A URL without a port is taken to be the
 * Kubernetes Service (http 80, fcm 443); otherwise the FCM port is the one the
 * simulator reports, unless `fcmPort` says otherwise.
 */
export async function connectToSimulator(url: string, opts: { fcmPort?: number } = {}): Promise<SimulatorInfo> {
  const base = new URL(url);
  const res = await fetch(new URL('/_sim/info', base));
  if (!res.ok) throw new Error(`simulator at ${url} answered ${res.status}`);
  const info = (await res.json()) as SimulatorInfo;
  const origin = base.origin;
  return {
    ...info,
    url: origin,
    telnyxBaseURL: `${origin}/v2`,
    fcm: { ...info.fcm, host: base.hostname, port: opts.fcmPort ?? (base.port ? info.fcm.port : 443) },
  };
}
