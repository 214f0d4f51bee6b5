import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { classifyInbound } from './opt-out-keywords.js';
import { matchPendingReceipts } from '../../core/delivery/receipts.js';
import { makeTenant, RecordingSender, seedBroadcast, startTestApi, telnyxSigner, type TestApi } from './test-support.js';

const NUMBER = '+18885550100';
const PERSON = '+12025550143';

let db: TestDatabase;
let api: TestApi;
let tenantKey: string;
const signer = telnyxSigner();
const replies = new RecordingSender();
const clock = new ManualClock('2026-06-07T15:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, clock, { telnyxPublicKey: signer.publicKey, replyToHelp: replies });
  tenantKey = (await makeTenant(api, 'grace', NUMBER)).key;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});
beforeEach(() => {
  replies.sent.length = 0;
});

function event(eventType: string, payload: Record<string, unknown>, id: string = randomUUID()): string {
  return JSON.stringify({
    data: { record_type: 'event', id, event_type: eventType, occurred_at: '2026-06-07T14:59:59.000+00:00', payload },
    meta: { attempt: 1, delivered_to: 'https://herald.example/webhooks/telnyx' },
  });
}

const inbound = (text: string, from = PERSON, to = NUMBER, id?: string) =>
  event('message.received', { id: randomUUID(), direction: 'inbound', from: { phone_number: from }, to: [{ phone_number: to, status: 'webhook_delivered' }], text, type: 'SMS' }, id);

const receipt = (messageId: string, status: string, errors: Array<{ code: string; title?: string; detail?: string }> = [], type = 'message.finalized', id?: string) =>
  event(type, { id: messageId, direction: 'outbound', to: [{ phone_number: PERSON, status }], errors, type: 'SMS' }, id);

const post = (body: string, headers: Record<string, string> = signer.sign(body)) =>
  api.request('POST', '/webhooks/telnyx', { body, headers });

const eventCount = async () => (await db.pool.query('SELECT count(*)::int AS n FROM provider_events')).rows[0].n as number;
const optOut = async (phone = PERSON) => (await db.pool.query(`SELECT * FROM opt_outs WHERE tenant_id = 'grace' AND phone = $1`, [phone])).rows[0];

describe('signature and timestamp', () => {
  it('a correctly signed event is accepted and recorded', async () => {
    const id = randomUUID();
    const body = inbound('hello there', PERSON, NUMBER, id);
    const r = await post(body);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: 'recorded', effect: 'inbound' });
    const { rows } = await db.pool.query('SELECT * FROM provider_events WHERE event_id = $1', [id]);
    expect(rows[0]).toMatchObject({ provider: 'telnyx', event_type: 'message.received', tenant_id: 'grace' });
    expect(rows[0].payload.payload.text).toBe('hello there');
    expect(rows[0].received_at.toISOString()).toBe(clock.now().toISOString());
  });

  it('an altered body is rejected and nothing is recorded', async () => {
    const before = await eventCount();
    const body = inbound('STOP');
    const headers = signer.sign(body);
    const r = await post(body.replace('STOP', 'HELP'), headers);
    expect(r.status).toBe(401);
    expect(r.body.error.field).toBe('telnyx-signature-ed25519');
    // One byte of whitespace is an alteration too.
    expect((await post(`${body} `, headers)).status).toBe(401);
    expect(await eventCount()).toBe(before);
    expect(await optOut()).toBeUndefined();
  });

  it('a stale or future timestamp is rejected, even with a valid signature over it', async () => {
    const before = await eventCount();
    const body = inbound('STOP');
    const now = Math.floor(Date.now() / 1000);
    const stale = await post(body, signer.sign(body, now - 301));
    expect(stale.status).toBe(401);
    expect(stale.body.error.field).toBe('telnyx-timestamp');
    expect((await post(body, signer.sign(body, now + 400))).status).toBe(401);
    // A valid signature with the timestamp header swapped for a fresh one fails the signature.
    const old = signer.sign(body, now - 1000);
    expect((await post(body, { ...old, 'telnyx-timestamp': String(now) })).status).toBe(401);
    expect(await eventCount()).toBe(before);
    expect(await optOut()).toBeUndefined();
  });

  it('a tighter tolerance can be configured', async () => {
    const strict = await startTestApi(db.pool, clock, { telnyxPublicKey: signer.publicKey, webhookToleranceSeconds: 60 });
    try {
      const body = inbound('hi');
      const r = await strict.request('POST', '/webhooks/telnyx', { body, headers: signer.sign(body, Math.floor(Date.now() / 1000) - 120) });
      expect(r.status).toBe(401);
      expect(r.body.error.field).toBe('telnyx-timestamp');
      expect((await post(body, signer.sign(body, Math.floor(Date.now() / 1000) - 120))).status).toBe(200);
    } finally {
      await strict.stop();
    }
  });

  it('another key, missing headers, no key configured: refused', async () => {
    const body = inbound('STOP');
    const other = telnyxSigner();
    expect((await post(body, other.sign(body))).status).toBe(401);
    const noSig = await post(body, { 'telnyx-timestamp': String(Math.floor(Date.now() / 1000)) });
    expect(noSig.status).toBe(400);
    expect(noSig.body.error.field).toBe('telnyx-signature-ed25519');
    const noTs = await post(body, { 'telnyx-signature-ed25519': signer.sign(body)['telnyx-signature-ed25519']! });
    expect(noTs.status).toBe(400);
    expect(noTs.body.error.field).toBe('telnyx-timestamp');
    const unconfigured = await startTestApi(db.pool, clock, {});
    try {
      expect((await unconfigured.request('POST', '/webhooks/telnyx', { body, headers: signer.sign(body) })).status).toBe(503);
    } finally {
      await unconfigured.stop();
    }
    expect(await optOut()).toBeUndefined();
  });

  it('signed but not an event: 400 naming the field', async () => {
    const notJson = await post('not json');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.field).toBe('body');
    const noId = await post(JSON.stringify({ data: { event_type: 'message.received', payload: {} } }));
    expect(noId.status).toBe(400);
    expect(noId.body.error.field).toBe('data.id');
  });
});

describe('inbound keywords', () => {
  it('STOP and its synonyms opt out; START and UNSTOP opt back in', async () => {
    const cases: Array<[string, string | null]> = [
      ['STOP', 'STOP'], ['  stop ', 'STOP'], ['Stop.', 'STOP'], ['stop texting me', 'STOP'], ['STOPALL', 'STOPALL'],
      ['Unsubscribe', 'UNSUBSCRIBE'], ['cancel', 'CANCEL'], ['END', 'END'], ['quit!', 'QUIT'],
      ['revoke', 'REVOKE'], ['OptOut', 'OPTOUT'], ['opt out', 'OPT OUT'], ['Opt  Out!', 'OPT OUT'], ['OPT OUT please', 'OPT OUT'],
    ];
    for (const [text, keyword] of cases) {
      clock.advance(1000);
      const r = await post(inbound(text));
      expect(r.status, text).toBe(200);
      expect(r.body.effect, text).toBe('opted_out');
      const o = await optOut();
      expect(o, text).toMatchObject({ source: 'inbound_keyword', keyword });
      expect(o.opted_out_at.toISOString()).toBe(clock.now().toISOString());
      expect((await post(inbound(text.includes('a') ? 'unstop' : 'START'))).body.effect).toBe('opted_in');
      expect(await optOut()).toBeUndefined();
    }
    for (const text of ['please stop', 'stopping by later', 'STARTLING', '', 'HELPFUL', 'opt outside', 'opt in', `${'a'.repeat(1600)} STOP`]) {
      expect((await post(inbound(text))).body.effect, text).toBe('inbound');
    }
    expect(await optOut()).toBeUndefined();
  });

  it('HELP is answered from the tenant’s number with its help text', async () => {
    const r = await post(inbound('help'));
    expect(r.body.effect).toBe('help');
    await api.app.background.drain();
    expect(replies.sent).toEqual([{ from: NUMBER, to: PERSON, text: expect.stringContaining('Reply STOP') }]);
    expect(replies.sent[0]!.text).toContain('Tenant grace');

    await api.admin('PATCH', '/admin/tenants/grace', { help_text: 'Grace Church: call 555-0100. Reply STOP to opt out.' });
    clock.advance(3600_000); // one reply an hour per number
    await post(inbound('HELP me'));
    await api.app.background.drain();
    expect(replies.sent[1]).toEqual({ from: NUMBER, to: PERSON, text: 'Grace Church: call 555-0100. Reply STOP to opt out.' });
  });

  it('HELP is answered at most once an hour per number: a flood of HELPs costs the tenant one reply', async () => {
    replies.sent.length = 0;
    clock.advance(2 * 3600_000); // past the earlier test's reply
    const flooder = '+13125550177';
    const effects: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      effects.push((await post(inbound('HELP', flooder))).body.effect);
    }
    await api.app.background.drain();
    expect(effects).toEqual(['help', 'help_throttled', 'help_throttled', 'help_throttled', 'help_throttled']);
    expect(replies.sent.filter((m) => m.to === flooder)).toHaveLength(1);
    clock.advance(3600_000);
    expect((await post(inbound('help', flooder))).body.effect).toBe('help');
  });

  it('a message to a number no tenant owns is recorded and acknowledged', async () => {
    const id = randomUUID();
    const r = await post(inbound('STOP', PERSON, '+18885550199', id));
    expect(r.status).toBe(200);
    expect(r.body.effect).toBe('unknown_number');
    const { rows } = await db.pool.query('SELECT tenant_id FROM provider_events WHERE event_id = $1', [id]);
    expect(rows).toEqual([{ tenant_id: null }]);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM opt_outs')).rows[0].n).toBe(0);
  });

  it('a redelivered event changes nothing', async () => {
    const stopId = randomUUID();
    const stop = inbound('STOP', PERSON, NUMBER, stopId);
    expect((await post(stop)).body.effect).toBe('opted_out');
    expect((await post(inbound('START'))).body.effect).toBe('opted_in');
    const before = await eventCount();
    // Telnyx redelivers the STOP (same event id, fresh signature): acknowledged, not applied again.
    const again = await post(stop, signer.sign(stop, Math.floor(Date.now() / 1000) + 1));
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ status: 'duplicate', effect: 'duplicate' });
    expect(await optOut()).toBeUndefined();
    expect(await eventCount()).toBe(before);
    // A redelivered HELP is not answered twice.
    const helpBody = inbound('HELP');
    await post(helpBody);
    await post(helpBody, signer.sign(helpBody, Math.floor(Date.now() / 1000) + 2));
    await api.app.background.drain();
    expect(replies.sent).toHaveLength(1);
  });

  it('an opt-out outlives the contact', async () => {
    await api.request('POST', '/v1/contacts', { token: tenantKey, json: [{ phone: PERSON, name: 'Pat' }] });
    await post(inbound('STOP'));
    const c = await api.request('GET', '/v1/contacts', { token: tenantKey });
    const pat = c.body.items.find((x: { phone: string }) => x.phone === PERSON);
    expect(pat.opted_out).toBe(true);
    expect((await api.request('DELETE', `/v1/contacts/${pat.id}`, { token: tenantKey })).status).toBe(204);
    expect(await optOut()).toMatchObject({ keyword: 'STOP', source: 'inbound_keyword' });
    const list = await api.request('GET', '/v1/opt-outs', { token: tenantKey });
    expect(list.body.items.map((o: { phone: string }) => o.phone)).toContain(PERSON);
    await post(inbound('START'));
  });
});

describe('delivery receipts', () => {
  it('delivered, retryable, permanent and 40300 receipts go through the send-error rules', async () => {
    const { deliveryIds: [delivered, retry, permanent, stopped] } = await seedBroadcast(db.pool, 'grace', [
      { address: '+12025550201', status: 'sent', providerMessageId: 'msg-delivered' },
      { address: '+12025550202', status: 'sent', providerMessageId: 'msg-retry' },
      { address: '+12025550203', status: 'sent', providerMessageId: 'msg-permanent' },
      { address: '+12025550204', status: 'sent', providerMessageId: 'msg-stopped' },
    ]);
    expect((await post(receipt('msg-delivered', 'sent', [], 'message.sent'))).body.effect).toBe('progress');
    expect((await post(receipt('msg-delivered', 'delivered'))).body.effect).toBe('delivered');
    expect((await post(receipt('msg-retry', 'delivery_failed', [{ code: '40002', title: 'Blocked as spam - temporary' }]))).body.effect).toBe('retryable');
    expect((await post(receipt('msg-permanent', 'delivery_failed', [{ code: '40001', title: 'Not routable' }]))).body.effect).toBe('permanent');
    expect((await post(receipt('msg-stopped', 'delivery_failed', [{ code: '40300', title: 'Blocked due to STOP message' }]))).body.effect).toBe('opted_out');

    const rows = new Map((await db.pool.query('SELECT * FROM deliveries WHERE id = ANY($1)', [[delivered, retry, permanent, stopped]])).rows.map((r) => [r.id, r]));
    expect(rows.get(delivered)).toMatchObject({ status: 'delivered' });
    expect(rows.get(delivered).finalized_at.toISOString()).toBe(clock.now().toISOString());
    expect(rows.get(retry)).toMatchObject({ status: 'retry', error_code: '40002' });
    expect(rows.get(retry).next_attempt_at.getTime()).toBeGreaterThan(clock.now().getTime());
    expect(rows.get(permanent)).toMatchObject({ status: 'failed', error_code: '40001' });
    expect(rows.get(stopped)).toMatchObject({ status: 'failed', error_code: '40300' });
    expect(await optOut('+12025550204')).toMatchObject({ source: 'provider_40300' });

    const events = await db.pool.query(`SELECT delivery_id, tenant_id FROM provider_events WHERE payload->'payload'->>'id' = 'msg-permanent'`);
    expect(events.rows).toEqual([{ delivery_id: permanent, tenant_id: 'grace' }]);
  });

  it('a redelivered receipt changes nothing', async () => {
    const { deliveryIds: [id] } = await seedBroadcast(db.pool, 'grace', [{ address: '+12025550211', status: 'sent', providerMessageId: 'msg-twice', attempts: 1 }]);
    const body = receipt('msg-twice', 'delivery_failed', [{ code: '40002' }]);
    expect((await post(body)).body.effect).toBe('retryable');
    const after = (await db.pool.query('SELECT status, attempts, next_attempt_at FROM deliveries WHERE id = $1', [id])).rows[0];
    // Meanwhile the retry is sent again and accepted.
    await db.pool.query(`UPDATE deliveries SET status = 'sent', provider_message_id = 'msg-twice-2', attempts = 2 WHERE id = $1`, [id]);
    const again = await post(body, signer.sign(body, Math.floor(Date.now() / 1000) + 1));
    expect(again.body.status).toBe('duplicate');
    expect((await db.pool.query('SELECT status, attempts FROM deliveries WHERE id = $1', [id])).rows[0]).toEqual({ status: 'sent', attempts: 2 });
    expect(after.status).toBe('retry');
  });

  it('a progress receipt records its event against the delivery and changes nothing else; redelivered, it is a duplicate', async () => {
    const { deliveryIds: [id] } = await seedBroadcast(db.pool, 'grace', [{ address: '+12025550231', status: 'sent', providerMessageId: 'msg-progress' }]);
    const before = (await db.pool.query('SELECT * FROM deliveries WHERE id = $1', [id])).rows[0];
    const eventId = randomUUID();
    const body = receipt('msg-progress', 'sent', [], 'message.sent', eventId);
    expect((await post(body)).body).toEqual({ status: 'recorded', effect: 'progress' });
    expect((await post(body, signer.sign(body, Math.floor(Date.now() / 1000) + 1))).body).toEqual({ status: 'duplicate', effect: 'duplicate' });
    const events = await db.pool.query('SELECT delivery_id, tenant_id, event_type FROM provider_events WHERE event_id = $1', [eventId]);
    expect(events.rows).toEqual([{ delivery_id: id, tenant_id: 'grace', event_type: 'message.sent' }]);
    expect((await db.pool.query('SELECT * FROM deliveries WHERE id = $1', [id])).rows[0]).toEqual(before);
  });

  it('delivered applies only to a row still sent, and only once per event', async () => {
    const { deliveryIds: [sent, failed] } = await seedBroadcast(db.pool, 'grace', [
      { address: '+12025550241', status: 'sent', providerMessageId: 'msg-once' },
      { address: '+12025550242', status: 'failed', providerMessageId: 'msg-late' },
    ]);
    const body = receipt('msg-once', 'delivered');
    expect((await post(body)).body).toEqual({ status: 'recorded', effect: 'delivered' });
    expect((await db.pool.query('SELECT status FROM deliveries WHERE id = $1', [sent])).rows[0].status).toBe('delivered');
    // Were the row sent again, the same event redelivered would still not touch it.
    await db.pool.query(`UPDATE deliveries SET status = 'sent', finalized_at = NULL WHERE id = $1`, [sent]);
    expect((await post(body, signer.sign(body, Math.floor(Date.now() / 1000) + 1))).body.status).toBe('duplicate');
    expect((await db.pool.query('SELECT status, finalized_at FROM deliveries WHERE id = $1', [sent])).rows[0]).toEqual({ status: 'sent', finalized_at: null });
    // A finished row is not resurrected by a late receipt.
    expect((await post(receipt('msg-late', 'delivered'))).body.effect).toBe('delivered');
    expect((await db.pool.query('SELECT status FROM deliveries WHERE id = $1', [failed])).rows[0].status).toBe('failed');
  });

  it('delivery_unconfirmed finalizes the row and leaves it sent', async () => {
    const { deliveryIds: [id] } = await seedBroadcast(db.pool, 'grace', [{ address: '+12025550251', status: 'sent', providerMessageId: 'msg-unconfirmed' }]);
    expect((await post(receipt('msg-unconfirmed', 'delivery_unconfirmed'))).body.effect).toBe('unconfirmed');
    const row = (await db.pool.query('SELECT status, finalized_at FROM deliveries WHERE id = $1', [id])).rows[0];
    expect(row.status).toBe('sent');
    expect(row.finalized_at.toISOString()).toBe(clock.now().toISOString());
  });

  it('a burst of concurrent receipts: each answered as recorded once durable, a redelivery arriving at the same moment a duplicate', async () => {
    const n = 40;
    const rows = Array.from({ length: n }, (_, i) => ({ address: `+120255503${String(i).padStart(2, '0')}`, status: 'sent' as const, providerMessageId: `msg-burst-${i}` }));
    const { deliveryIds } = await seedBroadcast(db.pool, 'grace', rows);
    const sentIds = rows.map(() => randomUUID());
    const finalIds = rows.map(() => randomUUID());
    const bodies = [
      ...rows.map((r, i) => receipt(r.providerMessageId, 'sent', [], 'message.sent', sentIds[i])),
      ...rows.map((r, i) => receipt(r.providerMessageId, 'delivered', [], 'message.finalized', finalIds[i])),
    ];
    // The same delivered event twice, at the same moment: one records it, the other is a duplicate.
    bodies.push(receipt(rows[0]!.providerMessageId, 'delivered', [], 'message.finalized', finalIds[0]));
    const answers = await Promise.all(bodies.map((b) => post(b)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const effects = answers.map((a) => `${a.body.status}/${a.body.effect}`);
    expect(effects.filter((e) => e === 'recorded/progress')).toHaveLength(n);
    expect(effects.filter((e) => e === 'recorded/delivered')).toHaveLength(n);
    expect(effects.filter((e) => e === 'duplicate/duplicate')).toHaveLength(1);
    const statuses = await db.pool.query('SELECT status, count(*)::int AS n FROM deliveries WHERE id = ANY($1) GROUP BY status', [deliveryIds]);
    expect(statuses.rows).toEqual([{ status: 'delivered', n }]);
    const events = await db.pool.query('SELECT count(*)::int AS n, count(DISTINCT delivery_id)::int AS d FROM provider_events WHERE event_id = ANY($1)', [[...sentIds, ...finalIds]]);
    expect(events.rows[0]).toEqual({ n: 2 * n, d: n });
  });

  it('a receipt that beats the send record is matched later', async () => {
    const body = receipt('msg-early', 'delivered');
    expect((await post(body)).body.effect).toBe('unmatched');
    expect(await matchPendingReceipts(db.pool, clock)).toBe(0);
    const { deliveryIds: [id] } = await seedBroadcast(db.pool, 'grace', [{ address: '+12025550221', status: 'sent', providerMessageId: 'msg-early' }]);
    expect(await matchPendingReceipts(db.pool, clock)).toBe(1);
    expect((await db.pool.query('SELECT status FROM deliveries WHERE id = $1', [id])).rows[0].status).toBe('delivered');
    expect(await matchPendingReceipts(db.pool, clock)).toBe(0);
    const e = await db.pool.query(`SELECT delivery_id FROM provider_events WHERE payload->'payload'->>'id' = 'msg-early'`);
    expect(e.rows[0].delivery_id).toBe(id);
  });
});

describe('keyword classification', () => {
  it('reads only the first word', () => {
    expect(classifyInbound('Stop')).toEqual({ action: 'opt_out', keyword: 'STOP' });
    expect(classifyInbound('\n\tunstop\n')).toEqual({ action: 'opt_in', keyword: 'UNSTOP' });
    expect(classifyInbound('HELP!')).toEqual({ action: 'help', keyword: 'HELP' });
    expect(classifyInbound('I said stop')).toEqual({ action: 'none' });
    expect(classifyInbound(null)).toEqual({ action: 'none' });
    // Only the first 1,600 characters are read: a keyword after them is none.
    expect(classifyInbound(`${' '.repeat(1600)}STOP`)).toEqual({ action: 'none' });
    expect(classifyInbound(`STOP${'!'.repeat(100_000)}`)).toEqual({ action: 'opt_out', keyword: 'STOP' });
    expect(classifyInbound(`${'!'.repeat(100_000)}`)).toEqual({ action: 'none' });
  });
});
