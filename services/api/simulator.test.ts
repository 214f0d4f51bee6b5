import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { recordOutcomes } from '../../core/delivery/outcomes.js';
import { createTelnyxProvider } from '../providers/telnyx.js';
import { SIMULATOR_TELNYX_API_KEY, smsNumberFailing, smsNumberOk, smsNumberUnconfirmed, startSimulator, type Simulator } from '../simulator/index.js';
import { matchPendingReceipts } from '../../core/delivery/receipts.js';
import { makeTenant, seedBroadcast, startTestApi, type TestApi } from './test-support.js';

/**
 * The webhook against the provider simulator, which signs its webhooks like Telnyx,
 * and HELP answered through the real telnyx SDK adapter: no signer of ours involved.
 */
const NUMBER = '+18885550100';
const PERSON = smsNumberOk(7);

let db: TestDatabase;
let sim: Simulator;
let api: TestApi;
const sms = () => createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL });

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  sim = await startSimulator({ receiptDelayMs: 5, keepMessages: true, webhookRetryDelayMs: 50 });
  api = await startTestApi(db.pool, systemClock, { telnyxPublicKey: sim.publicKey, replyToHelp: sms() });
  sim.configure({ defaultWebhookUrl: `${api.base}/webhooks/telnyx` });
  await makeTenant(api, 'grace', NUMBER);
});
afterAll(async () => {
  await api?.stop();
  await sim?.close();
  await db?.drop();
});

const optOut = async (phone: string) => (await db.pool.query(`SELECT * FROM opt_outs WHERE tenant_id = 'grace' AND phone = $1`, [phone])).rows[0];

describe('with the provider simulator', () => {
  it('inbound STOP and START, signed by the simulator; a redelivery changes nothing', async () => {
    const stop = await sim.inbound({ from: PERSON, to: NUMBER, text: 'Stop' });
    expect(stop.status).toBe(200);
    expect(await optOut(PERSON)).toMatchObject({ keyword: 'STOP', source: 'inbound_keyword' });
    expect((await sim.inbound({ from: PERSON, to: NUMBER, text: 'START' })).status).toBe(200);
    expect(await optOut(PERSON)).toBeUndefined();
    const again = await sim.redeliver(stop.eventId);
    expect(again.status).toBe(200);
    expect(await optOut(PERSON)).toBeUndefined();
  });

  it('HELP is answered through the telnyx SDK from the tenant’s number', async () => {
    sim.reset();
    expect((await sim.inbound({ from: PERSON, to: NUMBER, text: 'help' })).status).toBe(200);
    await api.app.background.drain();
    const got = sim.received({ messages: true }).sms.messages ?? [];
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ to: PERSON, from: NUMBER });
    expect(got[0]!.text).toContain('Reply STOP');
  });

  it('carrier failures arrive later, in message.finalized, and fail the delivery with their code (the send was accepted)', async () => {
    const ok = smsNumberOk(11);
    const stopped = smsNumberFailing('40300', 'receipt');
    const spam = smsNumberFailing('40002', 'receipt');
    const gone = smsNumberFailing('40001', 'receipt');
    const filtered = smsNumberFailing('40015', 'receipt'); // sending_failed: never handed to the carrier
    const unconfirmed = smsNumberUnconfirmed(11); // delivery_unconfirmed: sent, the carrier never said
    const all = [ok, stopped, spam, gone, filtered, unconfirmed];
    const { deliveryIds } = await seedBroadcast(db.pool, 'grace', all.map((address) => ({ address, status: 'sending' })));
    const provider = sms();
    const outcomes = [];
    for (const [i, to] of all.entries()) {
      const outcome = await provider.send({ from: NUMBER, to, text: 'Service at 10', webhookUrl: `${api.base}/webhooks/telnyx` });
      expect(outcome.kind).toBe('accepted');
      outcomes.push({ deliveryId: deliveryIds[i]!, outcome });
    }
    // The worker records the sends; receipts may already have arrived (then they wait, unmatched).
    await recordOutcomes(db.pool, outcomes, new Date());
    await sim.idle();
    await matchPendingReceipts(db.pool, systemClock);

    const { rows } = await db.pool.query('SELECT id, status, error_code FROM deliveries WHERE id = ANY($1) ORDER BY id', [deliveryIds]);
    expect(rows.map((r) => [r.status, r.error_code])).toEqual([
      ['delivered', null],
      ['failed', '40300'],
      ['retry', '40002'],
      ['failed', '40001'],
      ['failed', '40015'],
      ['sent', null],
    ]);
    expect(await optOut(stopped)).toMatchObject({ source: 'provider_40300' });
    const events = await db.pool.query(
      `SELECT count(*)::int AS n FROM provider_events WHERE delivery_id = ANY($1) AND event_type IN ('message.sent', 'message.finalized')`,
      [deliveryIds],
    );
    // message.sent and message.finalized for each, but none sent for the one Telnyx never handed on.
    expect(events.rows[0].n).toBe(2 * all.length - 1);
  });
});
