import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../lib/clock.js';
import { ensureSchemathesis, SCHEMATHESIS_VERSION } from '../../devenv/schemathesis.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { ADMIN_TOKEN, makeTenant, seedBroadcast, startTestApi, telnyxSigner, type TestApi } from './test-support.js';

/**
 * schemathesis against the running api, from its own /openapi.json: examples, coverage,
 * fuzzing (valid and invalid data) and stateful phases, with every check (no 5xx, status
 * codes, content types, headers and bodies as documented, invalid requests refused). Bounded:
 * HERALD_FUZZ_EXAMPLES examples an operation (default 20) and HERALD_FUZZ_SECONDS a run
 * (default 75); a fixed seed unless HERALD_FUZZ_SEED is given. The tenant routes run
 * first and apart: the admin run may revoke or rotate any key, the tenant's too.
 */
const EXAMPLES = Number(process.env.HERALD_FUZZ_EXAMPLES ?? 20);
const SECONDS = Number(process.env.HERALD_FUZZ_SECONDS ?? 75);
const SEED = Number(process.env.HERALD_FUZZ_SEED ?? 15);

let db: TestDatabase;
let api: TestApi;
let st: string;
let dir: string;
let tenantKey: string;

beforeAll(async () => {
  st = await ensureSchemathesis((line) => console.log(line));
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, systemClock, { telnyxPublicKey: telnyxSigner().publicKey });
  const tenant = await makeTenant(api, 'fuzz', '+18005550100');
  tenantKey = tenant.key;
  // Something to find: contacts, a device token, an opt-out, a broadcast with deliveries.
  await api.request('POST', '/v1/contacts', { token: tenantKey, json: [{ phone: '+12025550143', name: 'Ada', tags: ['choir'] }, { phone: '+12025550144' }] });
  await api.request('POST', '/v1/device-tokens', { token: tenantKey, json: { token: 'fcm-seed-token', contact_phone: '+12025550143' } });
  await api.request('POST', '/v1/opt-outs', { token: tenantKey, json: { phone: '+12025550199' } });
  await seedBroadcast(db.pool, 'fuzz', [{ address: '+12025550143', status: 'delivered' }, { address: '+12025550144', status: 'failed' }]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-schemathesis-'));
  await writeFile(
    path.join(dir, 'schemathesis.toml'),
    [
      '[auth.openapi.TenantApiKey]',
      'bearer = "${HERALD_FUZZ_TENANT_KEY}"',
      '[auth.openapi.AdminToken]',
      'bearer = "${HERALD_FUZZ_ADMIN_TOKEN}"',
      '',
      // Every check runs (the default) but one: valid by the schema yet refused is expected
      // here, since whether a string is a real phone number (libphonenumber), an IANA zone,
      // a country or a cursor we issued is not something JSON Schema can say; such
      // requests get a 400 naming the field.
      '[checks.positive_data_acceptance]',
      'enabled = false',
      '',
      // The bulk upload answers 200 with a report naming each refused row (partial
      // success by design), so a body with invalid rows is "accepted" as a request;
      // its wrapper and parameters are still refused with 400 (contract-findings.test.ts).
      '[[operations]]',
      'include-operation-id = "upsertContacts"',
      'checks.negative_data_rejection.enabled = false',
      '',
    ].join('\n'),
  );
}, 900_000);

afterAll(async () => {
  await api?.stop();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function schemathesis(label: string, filter: string[]): Promise<{ code: number; output: string }> {
  const args = [
    '--config-file', path.join(dir, 'schemathesis.toml'),
    'run', `${api.base}/openapi.json`,
    ...filter,
    '--phases', 'examples,coverage,fuzzing,stateful',
    '--max-examples', String(EXAMPLES),
    '--max-time', String(SECONDS),
    '--seed', String(SEED),
    '--workers', '1',
    '--request-timeout', '10',
    '--no-color',
  ];
  console.log(`schemathesis ${SCHEMATHESIS_VERSION} (${label}): st ${args.join(' ')}`);
  return new Promise((resolve) => {
    execFile(
      st,
      args,
      { cwd: dir, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HERALD_FUZZ_TENANT_KEY: tenantKey, HERALD_FUZZ_ADMIN_TOKEN: ADMIN_TOKEN } },
      (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        console.log(output);
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output });
      },
    );
  });
}

describe('schemathesis against the running api', () => {
  it('tenant routes (/v1, with the tenant key): no failures', async () => {
    const r = await schemathesis('tenant routes', ['--include-path-regex', '^/v1/']);
    expect(r.output).toMatch(/test cases/i);
    expect(r.code, 'schemathesis found failures (see the log above)').toBe(0);
  }, 900_000);

  it('admin routes (admin token), the webhook and the operations routes: no failures', async () => {
    const r = await schemathesis('admin, webhook, operations', ['--exclude-path-regex', '^/v1/']);
    expect(r.output).toMatch(/test cases/i);
    expect(r.code, 'schemathesis found failures (see the log above)').toBe(0);
  }, 900_000);
});
