import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exitOnUnhandled } from '../../lib/crash.js';
import { createLogger } from '../../lib/logger.js';
import { generateFcmCertificate, startSimulator, type SimulatorConfig } from './simulator.js';
import { createSigningKey, signingKeySeed } from './webhooks.js';

/**
 * The provider simulator as a process.
 *   HERALD_SIMULATOR_PORT       HTTP port: Telnyx API (/v2) and admin routes (/_sim), default 8090
 *   HERALD_SIMULATOR_FCM_PORT   TLS port for FCM, default HTTP port + 1
 *   HERALD_SIMULATOR_HOST       default 127.0.0.1
 *   HERALD_SIMULATOR_LATENCY_MS, _ERROR_RATE, _RECEIPT_DELAY_MS, _RECEIPTS (all|finalized|none), _HOLD_MS,
 *   HERALD_SIMULATOR_WEBHOOK_URL (default receipt/inbound target)
 *   HERALD_SIMULATOR_ADMIN_ROUTES=off   only health, info, public key and CA of /_sim (in a cluster)
 * The webhook signing key and the TLS certificate are kept under
 * $HERALD_DATA_DIR/simulator so that a restart keeps the public key and CA the
 * api and workers were given (also served at GET /_sim/info).
 */
const log = createLogger('simulator');
exitOnUnhandled(log);
const env = process.env;
const num = (name: string): number | undefined => (env[name] === undefined || env[name] === '' ? undefined : Number(env[name]));

const port = num('HERALD_SIMULATOR_PORT') ?? 8090;
const dir = join(resolve(env.HERALD_DATA_DIR ?? '.herald'), 'simulator');
mkdirSync(dir, { recursive: true });
const seedFile = join(dir, 'webhook-signing.seed');
const keyFile = join(dir, 'fcm-tls.key');
const certFile = join(dir, 'fcm-tls.crt');
if (!existsSync(seedFile)) writeFileSync(seedFile, signingKeySeed(createSigningKey()), { mode: 0o600 });
if (!existsSync(keyFile) || !existsSync(certFile)) {
  const pems = await generateFcmCertificate();
  writeFileSync(keyFile, pems.key, { mode: 0o600 });
  writeFileSync(certFile, pems.cert);
}

const sim = await startSimulator({
  host: env.HERALD_SIMULATOR_HOST ?? '127.0.0.1',
  port,
  fcmPort: num('HERALD_SIMULATOR_FCM_PORT') ?? (port === 0 ? 0 : port + 1),
  signingKeySeed: readFileSync(seedFile, 'utf8').trim(),
  tls: { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') },
  latencyMs: num('HERALD_SIMULATOR_LATENCY_MS'),
  holdMs: num('HERALD_SIMULATOR_HOLD_MS'),
  errorRate: num('HERALD_SIMULATOR_ERROR_RATE'),
  receiptDelayMs: num('HERALD_SIMULATOR_RECEIPT_DELAY_MS'),
  receipts: env.HERALD_SIMULATOR_RECEIPTS as SimulatorConfig['receipts'] | undefined,
  defaultWebhookUrl: env.HERALD_SIMULATOR_WEBHOOK_URL,
  adminRoutes: env.HERALD_SIMULATOR_ADMIN_ROUTES !== 'off',
});

log.info({ url: sim.url, telnyxBaseURL: sim.telnyxBaseURL, fcm: { host: sim.fcm.host, port: sim.fcm.port, caFile: certFile }, publicKey: sim.publicKey }, 'provider simulator listening');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void sim.close().then(() => process.exit(0));
  });
}
