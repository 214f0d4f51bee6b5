import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from './logger.js';

/** createLogger's logger, writing its lines into an array instead of stdout. */
function captured() {
  const chunks: string[] = [];
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c.toString('utf8'));
      cb();
    },
  });
  const log = createLogger('test', 'debug', sink);
  return { log, text: () => chunks.join('') };
}

const NUMBER = '+12025550143';
const FULL_NUMBER = /\+12025550143|12025550143/;

describe('what a log line may hold', () => {
  it('a phone number is masked wherever it appears: message, format arguments, nested fields, arrays', () => {
    const { log, text } = captured();
    log.info(`texting ${NUMBER}`);
    log.info('texting %s', NUMBER);
    log.info({ job: { rows: [{ to: NUMBER, note: `retry for ${NUMBER}` }] }, deep: { a: { b: { c: { phone: NUMBER } } } } }, 'batch');
    log.info({ address: '2025550143' }, 'bare digits too');
    expect(text()).not.toMatch(FULL_NUMBER);
    expect(text()).toContain('+1202***0143');
  });

  it('credentials are redacted by key at any depth', () => {
    const { log, text } = captured();
    log.info({ config: { telnyx: { apiKey: 'KEY-abc' }, db: { databaseUrl: 'postgres://u:pw@h/db' } }, headers: { Authorization: 'Bearer xyz' }, outer: [{ token: 'dev-token-1' }] }, 'config');
    for (const secret of ['KEY-abc', 'pw@h', 'Bearer xyz', 'dev-token-1']) expect(text()).not.toContain(secret);
    expect(text().match(/\[redacted\]/g)).toHaveLength(4);
  });

  it("every error goes through one formatter: its message, detail, stack and cause are masked, under any key", () => {
    const { log, text } = captured();
    const pgError = Object.assign(new Error(`duplicate key value violates unique constraint`), { code: '23505', detail: `Key (tenant_id, phone)=(grace, ${NUMBER}) already exists.` });
    log.error({ err: pgError }, 'insert failed');
    log.warn({ failure: new Error(`provider refused ${NUMBER}`, { cause: new Error(`to ${NUMBER} is invalid`) }) }, 'send failed');
    log.error(new Error(`the number ${NUMBER} is opted out`));
    expect(text()).not.toMatch(FULL_NUMBER);
    const lines = text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines[0]!.err).toMatchObject({ type: 'Error', code: '23505', detail: 'Key (tenant_id, phone)=(grace, +1202***0143) already exists.' });
    expect(lines[1]!.failure.cause.message).toBe('to +1202***0143 is invalid');
    expect(lines[2]!.msg).toBe('the number +1202***0143 is opted out');
  });
});
