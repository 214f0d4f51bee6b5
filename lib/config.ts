import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

/**
 * A secret comes from the environment (NAME) or from a mounted file (NAME_FILE),
 * the way Kubernetes secret volumes and External Secrets deliver them.
 */
export function readSecret(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) return readFileSync(file, 'utf8').trim();
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

const intFromEnv = (def: number) => z.coerce.number().int().positive().default(def);

const schema = z.object({
  HERALD_DATA_DIR: z.string().default('.herald'),
  HERALD_PG_PORT: intFromEnv(54329),
  HERALD_DB_POOL_MAX: intFromEnv(20),
  // Provider requests on the wire at once, per worker process (each provider client's sockets).
  HERALD_WORKER_CONCURRENCY: intFromEnv(128),
  // Batches (pg-boss jobs) handled at once, per worker process.
  HERALD_WORKER_JOBS: intFromEnv(32),
  // Rows claimed together, right before they are sent.
  HERALD_WORKER_CHUNK: intFromEnv(25),
  // Batches of one tenant (its normal or its urgent work) handled at once, per worker process.
  HERALD_WORKER_JOBS_PER_TENANT: intFromEnv(8),
  HERALD_WORKER_PORT: z.coerce.number().int().min(0).default(8081),
  HERALD_API_PORT: z.coerce.number().int().min(0).default(8080),
  HERALD_SIMULATOR_PORT: z.coerce.number().int().min(0).default(8090),
  HERALD_SHUTDOWN_GRACE_MS: intFromEnv(25_000),
  // The worker's color (its lane) and the version it runs, registered with its heartbeat.
  HERALD_LANE: z.string().default('blue'),
  HERALD_VERSION: z.string().default('dev'),
  TELNYX_BASE_URL: z.string().url().optional(),
  FCM_PROJECT_ID: z.string().default('herald-local'),
  HERALD_ACCOUNT_SMS_PER_SECOND: z.coerce.number().positive().default(50),
  // The push project's send limit, shared fairly between tenants: FCM's published default
  // quota is 600,000 messages a minute per project.
  HERALD_ACCOUNT_PUSH_PER_SECOND: z.coerce.number().positive().default(10_000),
});

/** The admin credential opens every tenant: at least 32 bytes, so it cannot be guessed or brute-forced. */
export const MIN_ADMIN_TOKEN_BYTES = 32;

/** Why an admin token is refused, naming where it came from (never its value), or undefined. */
export function adminTokenProblem(token: string | undefined, name: string): string | undefined {
  if (token === undefined) return undefined;
  const bytes = Buffer.byteLength(token, 'utf8');
  if (bytes >= MIN_ADMIN_TOKEN_BYTES) return undefined;
  return `${name}: must be at least ${MIN_ADMIN_TOKEN_BYTES} bytes (it is ${bytes}); make one with: node -p "require('node:crypto').randomBytes(32).toString('base64')"`;
}

export type HeraldConfig = z.infer<typeof schema> & {
  databaseUrl?: string;
  telnyxApiKey?: string;
  telnyxPublicKey?: string;
  fcmServiceAccountJson?: string;
  adminToken?: string;
};

/** Read and validate configuration once; an invalid value names its variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HeraldConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${issues}`);
  }
  const adminToken = readSecret('HERALD_ADMIN_TOKEN', env);
  const tokenProblem = adminTokenProblem(adminToken, env.HERALD_ADMIN_TOKEN_FILE ? 'HERALD_ADMIN_TOKEN_FILE' : 'HERALD_ADMIN_TOKEN');
  if (tokenProblem) throw new Error(`invalid configuration: ${tokenProblem}`);
  return {
    ...parsed.data,
    HERALD_DATA_DIR: resolve(parsed.data.HERALD_DATA_DIR),
    databaseUrl: readSecret('DATABASE_URL', env),
    telnyxApiKey: readSecret('TELNYX_API_KEY', env),
    telnyxPublicKey: readSecret('TELNYX_PUBLIC_KEY', env),
    fcmServiceAccountJson: readSecret('FCM_SERVICE_ACCOUNT', env),
    adminToken,
  };
}
