import type { Agent } from 'node:https';
import type { Credential } from 'firebase-admin/app';
import { JWT } from 'google-auth-library';

/** FCM HTTP v1 needs this scope only (firebase-admin's cert() asks for five). */
const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

interface ServiceAccountKey {
  client_email?: unknown;
  private_key?: unknown;
  private_key_id?: unknown;
}

/**
 * A firebase-admin Credential for a service-account key: google-auth-library's JWT client
 * signs the assertion and exchanges it at Google's token endpoint, through `agent`.
 *
 * firebase-admin's own cert() would do the same exchange, but (14.5.1) it builds its
 * client with GoogleAuth#fromJSON and no options, so the httpAgent it is given never
 * reaches the token request: the fetch could neither be aimed at the simulator nor kept
 * apart from FCM's sockets. The JWT client caches its token and refreshes it within five
 * minutes of expiry, as cert()'s would.
 */
export function serviceAccountCredential(json: string, agent: Agent): Credential {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error("FCM_SERVICE_ACCOUNT is not JSON: it must be a service-account key file's content");
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error("FCM_SERVICE_ACCOUNT must be a JSON object (a service-account key file's content)");
  }
  const key = parsed as ServiceAccountKey;
  // Name the missing field, never a value: the key is a secret.
  for (const field of ['client_email', 'private_key'] as const) {
    if (typeof key[field] !== 'string' || key[field] === '') throw new Error(`FCM_SERVICE_ACCOUNT has no ${field}: it must be a service-account key file's content`);
  }
  const jwt = new JWT({
    email: key.client_email as string,
    key: key.private_key as string,
    keyId: typeof key.private_key_id === 'string' ? key.private_key_id : undefined,
    scopes: [FCM_SCOPE],
    transporterOptions: { agent },
  });
  return {
    async getAccessToken() {
      const { token } = await jwt.getAccessToken();
      const expiry = jwt.credentials.expiry_date;
      if (!token || typeof expiry !== 'number') throw new Error('the token endpoint answered without an access token or its expiry');
      return { access_token: token, expires_in: Math.max(0, Math.floor((expiry - Date.now()) / 1000)) };
    },
  };
}
