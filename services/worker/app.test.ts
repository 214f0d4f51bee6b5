import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { startBoss } from '../../lib/queue.js';
import { createWorkerApp } from './app.js';
import { smsRateKeys, type DeliverDeps } from './deliver-batch.js';

let db: TestDatabase;
let boss: PgBoss;
let server: Server;
let base: string;
let accepting = true;

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  boss = await startBoss(db.url, { supervise: false });
  server = createWorkerApp({ pool: db.pool, boss, accepting: () => accepting }).listen(0);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.close();
  await boss?.stop({ graceful: false });
  await db?.drop();
});

describe('worker health and metrics', () => {
  it('is ready when the database and queue answer, and not while draining', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { database: 'ok', queue: 'ok', accepting: 'ok' } });
    accepting = false;
    const draining = await fetch(`${base}/readyz`);
    expect(draining.status).toBe(503);
    expect(await draining.json()).toMatchObject({ checks: { accepting: 'draining' } });
    accepting = true;
  });

  it('exports the metrics operators watch', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const name of ['herald_messages_sent_total', 'herald_send_duration_seconds', 'herald_queue_depth', 'herald_delivery_retries_total',
      'herald_delivery_dead_letters_total', 'herald_circuit_breaker_state', 'herald_possible_duplicates_total', 'herald_db_pool_connections']) {
      expect(text).toContain(`# TYPE ${name}`);
    }
  });
});

describe('SMS rate keys', () => {
  const deps = { accountSmsPerSecond: 50 } as DeliverDeps;
  const row = (address: string) => ({ tenant_id: 'grace', sms_per_second: 10, address, rate_per_second: null, broadcast_id: 'b' }) as Parameters<typeof smsRateKeys>[1];

  it('binds account, tenant and number; a 10DLC number binds its campaign instead', () => {
    expect(smsRateKeys(deps, row('+12065550100'), { phone_number: '+18885550100', kind: 'toll_free', campaign_id: null, per_second: 20 }))
      .toEqual([{ key: 'account:telnyx:sms', perSecond: 50 }, { key: 'tenant:grace:sms', perSecond: 10 }, { key: 'number:+18885550100', perSecond: 20 }]);
    expect(smsRateKeys(deps, row('+12065550100'), { phone_number: '+12065550199', kind: '10dlc', campaign_id: 'C123', per_second: 4.5 })[2])
      .toEqual({ key: 'campaign:C123', perSecond: 4.5 });
  });

  it('a long code texting abroad adds its 0.1/s international limit', () => {
    const keys = smsRateKeys(deps, row('+447700900123'), { phone_number: '+12065550199', kind: 'long_code', campaign_id: null, per_second: 1 });
    expect(keys).toContainEqual({ key: 'number:+12065550199:international', perSecond: 0.1 });
  });
});
