import type { Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Outcome, SmsMessage } from '../providers/types.js';
import type { ImportLimits } from './import-jobs.js';

/** Sends the reply to an inbound HELP: the Telnyx provider adapter in production, a recorder in tests. */
export interface ReplySender {
  send(message: SmsMessage): Promise<Outcome>;
}

export interface ApiDeps {
  pool: Pool;
  clock: Clock;
  log: Logger;
  /** HERALD_ADMIN_TOKEN. Without it the admin routes answer 503 to everyone. */
  adminToken: string | undefined;
  /** TELNYX_PUBLIC_KEY (base64 ed25519). Without it the webhook refuses every event (503). */
  telnyxPublicKey?: string;
  /**
   * Accepted age of a webhook's telnyx-timestamp, against the wall clock (not the
   * business clock: it is transport security). The SDK helper enforces 300 s; a
   * smaller value tightens it, a larger one cannot loosen it.
   */
  webhookToleranceSeconds?: number;
  /** Answers inbound HELP. Without it HELP is recorded but not answered (logged). */
  replyToHelp?: ReplySender;
  /** The HELP text when the tenant has none of its own. */
  defaultHelpText?: (tenant: { id: string; name: string }) => string;
  /** Largest request body accepted (bulk contact uploads); default 10 MB. */
  maxBodyBytes?: number;
  /** Contacts one upload may carry (default DEFAULT_MAX_UPLOAD_ROWS). */
  maxUploadRows?: number;
  /** When a CSV upload becomes an import job, and the caps of one (services/api/import-jobs.ts). */
  importLimits?: Partial<ImportLimits>;
}

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
/** Small JSON bodies (everything but the bulk upload and the webhook). */
export const SMALL_BODY_BYTES = 256 * 1024;
/** Contacts one synchronous upload may carry (JSON items or CSV data rows). */
export const DEFAULT_MAX_UPLOAD_ROWS = 10_000;
/** Row errors an upload's answer lists; errors_total says how many there were. */
export const MAX_REPORTED_ERRORS = 100;
