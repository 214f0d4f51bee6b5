import { randomBytes } from 'node:crypto';
import type Koa from 'koa';
import { decodeJwt, importSPKI, jwtVerify, errors as joseErrors } from 'jose';

import { GOOGLE_TOKEN_HOST } from './client.js';

/** Google's OAuth 2.0 token endpoint, which a service account's JWT is exchanged at. */
export const GOOGLE_TOKEN_URL = `https://${GOOGLE_TOKEN_HOST}/token`;
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** Either scope lets a token send through FCM HTTP v1. */
const FCM_SCOPES = ['https://www.googleapis.com/auth/firebase.messaging', 'https://www.googleapis.com/auth/cloud-platform'];

/** A service account the simulated project knows: Google keeps its public key, the client its private one. */
export interface SimulatedServiceAccount {
  clientEmail: string;
  /** SPKI PEM */
  publicKey: string;
}

export interface TokenGrant {
  clientEmail: string;
  token: string;
  expiresAt: number;
}

/**
 * The JWT-bearer grant of Google's token endpoint (RFC 7523, as Google documents it for
 * service accounts): the assertion must be RS256-signed by a key the account holds, name
 * the token endpoint as its audience, ask for a scope FCM accepts, and live at most an
 * hour. Errors are answered as Google answers them (400 invalid_grant and friends).
 * Issued tokens expire after the configured lifetime; an expired one is refused by the
 * FCM endpoint like any unknown token.
 */
export class GoogleTokenEndpoint {
  private readonly live = new Map<string, TokenGrant>();
  readonly grants: TokenGrant[] = [];
  refused = 0;

  constructor(private readonly settings: () => { serviceAccounts: SimulatedServiceAccount[]; fcmTokenLifetimeSeconds: number }) {}

  /** True for a token this endpoint issued that has not expired yet. */
  accepts(token: string, now = Date.now()): boolean {
    const g = this.live.get(token);
    if (!g) return false;
    if (g.expiresAt <= now) {
      this.live.delete(token);
      return false;
    }
    return true;
  }

  /** Forget the log; tokens issued stay valid, as Google's would. */
  reset(): void {
    this.grants.length = 0;
    this.refused = 0;
  }

  async handle(ctx: Koa.Context, body: string): Promise<void> {
    const form = new URLSearchParams(body);
    const refuse = (error: string, description: string) => {
      this.refused++;
      ctx.status = 400;
      ctx.type = 'application/json';
      ctx.body = JSON.stringify({ error, error_description: description });
    };
    const grantType = form.get('grant_type');
    if (grantType !== JWT_BEARER) return refuse('unsupported_grant_type', `Invalid grant_type: ${grantType ?? ''}`);
    const assertion = form.get('assertion');
    if (!assertion) return refuse('invalid_request', 'Missing required parameter: assertion');
    const { serviceAccounts, fcmTokenLifetimeSeconds } = this.settings();
    const iss = issuerOf(assertion);
    const account = serviceAccounts.find((a) => a.clientEmail === iss);
    if (!account) return refuse('invalid_grant', 'Invalid grant: account not found');
    let claims: Record<string, unknown>;
    try {
      const key = await importSPKI(account.publicKey, 'RS256');
      ({ payload: claims } = await jwtVerify(assertion, key, { algorithms: ['RS256'], audience: GOOGLE_TOKEN_URL, issuer: account.clientEmail, clockTolerance: 60 }));
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) return refuse('invalid_grant', 'Invalid JWT Signature.');
      return refuse('invalid_grant', `Invalid JWT: ${err instanceof Error ? err.message : String(err)}`);
    }
    const { iat, exp } = claims as { iat?: number; exp?: number };
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > 3600) {
      return refuse('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    if (!scopes.some((s) => FCM_SCOPES.includes(s))) return refuse('invalid_scope', 'Invalid OAuth scope or ID token audience provided.');
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    const grant = { clientEmail: account.clientEmail, token, expiresAt: Date.now() + fcmTokenLifetimeSeconds * 1000 };
    this.live.set(token, grant);
    this.grants.push(grant);
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify({ access_token: token, expires_in: fcmTokenLifetimeSeconds, token_type: 'Bearer' });
  }
}

/** The assertion's unverified issuer, only to find the key it must be verified with. */
function issuerOf(jwt: string): string | undefined {
  try {
    return decodeJwt(jwt).iss;
  } catch {
    return undefined;
  }
}
