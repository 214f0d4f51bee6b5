import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../lib/clock.js';
import { createTestDatabase, type TestDatabase } from '../../devenv/test-database.js';
import { MAX_JOB_ERRORS } from './import-jobs.js';
import { makeTenant, startTestApi, type TestApi } from './test-support.js';

let db: TestDatabase;
let api: TestApi;
let key: string;
let otherKey: string;

// Small limits, so that a few hundred rows make a job.
const LIMITS = { thresholdBytes: 2_000, maxBytes: 400_000, maxRows: 3_000 };

beforeAll(async () => {
  db = await createTestDatabase(inject('databaseUrl'));
  api = await startTestApi(db.pool, systemClock, { importLimits: LIMITS });
  key = (await makeTenant(api, 'importer')).key;
  otherKey = (await makeTenant(api, 'other')).key;
});
afterAll(async () => {
  await api?.stop();
  await db?.drop();
});

const phone = (i: number) => `+1202555${String(i).padStart(4, '0')}`;
const csv = (rows: string[]) => `phone,name,tags\n${rows.join('\n')}\n`;
const upload = (body: string, token = key) => api.request('POST', '/v1/contacts', { token, body, contentType: 'text/csv' });

async function finished(url: string, token = key) {
  for (let i = 0; i < 600; i++) {
    const r = await api.request('GET', url, { token });
    if (r.body.status === 'succeeded' || r.body.status === 'failed') return r.body;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`import ${url} did not finish`);
}

describe('contact imports as jobs', () => {
  it('a CSV over the threshold is a job: 202 with its URL, then a report of what it did', async () => {
    const rows = Array.from({ length: 1200 }, (_, i) => `${phone(i)},Person ${i},choir`);
    rows[9] = 'not-a-number,Broken,x'; // row 10
    rows[20] = `${phone(0)},Again,x`; // row 21: same number as row 1
    rows[30] = 'only-one-cell'; // row 31: wrong cell count
    const r = await upload(csv(rows));
    expect(r.status).toBe(202);
    expect(r.headers.get('location')).toMatch(/^\/v1\/contact-imports\/[0-9a-f-]{36}$/);
    expect(r.body).toMatchObject({ status: 'queued', url: r.headers.get('location'), bytes: Buffer.byteLength(csv(rows)) });
    const job = await finished(r.headers.get('location')!);
    expect(job).toMatchObject({ status: 'succeeded', rows_read: 1200, created: 1197, updated: 0, failed: 3, error: null });
    expect(job.errors).toEqual([
      { row: 10, field: 'phone', reason: 'not a phone number' },
      { row: 21, field: 'phone', reason: 'same number as row 1' },
      { row: 31, field: 'row', reason: 'expected 3 cells, got 1' },
    ]);
    expect(job.started_at).not.toBeNull();
    expect(job.finished_at).not.toBeNull();
    const n = await db.pool.query(`SELECT count(*)::int AS n FROM contacts WHERE tenant_id = 'importer'`);
    expect(n.rows[0].n).toBe(1197);
    // The staged upload is gone once done; the job (its report) stays.
    expect((await db.pool.query('SELECT count(*)::int AS n FROM import_job_chunks')).rows[0].n).toBe(0);

    // Again: the same numbers are updates now.
    const again = await finished((await upload(csv(rows))).headers.get('location')!);
    expect(again).toMatchObject({ status: 'succeeded', created: 0, updated: 1197, failed: 3 });
  });

  it('a small CSV is still answered at once (200 with the report)', async () => {
    const r = await upload(csv([`${phone(5000)},Small,x`]));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ created: 1, failed: 0 });
  });

  it('keeps only the first errors, counting them all', async () => {
    const rows = Array.from({ length: 400 }, (_, i) => `bad-${i},Nobody,x`);
    const job = await finished((await upload(csv(rows))).headers.get('location')!);
    expect(job).toMatchObject({ status: 'succeeded', rows_read: 400, created: 0, failed: 400 });
    expect(job.errors).toHaveLength(MAX_JOB_ERRORS);
    expect(job.errors[0]).toEqual({ row: 1, field: 'phone', reason: 'not a phone number' });
  });

  it('caps: one open import per tenant (409), bytes (413, nothing left behind), rows (the job fails saying so)', async () => {
    await db.pool.query(
      // Still receiving (another upload in flight): the runner leaves it alone.
      `INSERT INTO import_jobs (id, tenant_id, status, default_country, consent_source, created_at, heartbeat_at)
       VALUES ('00000000-0000-4000-a000-000000000001', 'other', 'receiving', 'US', 'csv_import', now(), now())`,
    );
    const busy = await upload(csv(Array.from({ length: 200 }, (_, i) => `${phone(i)},X,y`)), otherKey);
    expect(busy.status).toBe(409);
    expect(busy.body.error.reason).toContain('/v1/contact-imports/00000000-0000-4000-a000-000000000001');
    await db.pool.query(`DELETE FROM import_jobs WHERE tenant_id = 'other'`);

    const huge = await upload(csv(Array.from({ length: 20_000 }, (_, i) => `${phone(i % 10_000)},Someone with a long name ${i},tag`)));
    expect(huge.status).toBe(413);
    expect(huge.body.error).toEqual({ field: 'body', reason: 'an import is at most 0.3814697265625 MB' });
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM import_jobs WHERE status IN ('receiving', 'queued')`)).rows[0].n).toBe(0);

    const long = await finished((await upload(csv(Array.from({ length: 3_500 }, (_, i) => `${phone(i)},P,t`)))).headers.get('location')!);
    expect(long).toMatchObject({ status: 'failed', error: 'body: an import has at most 3000 rows' });
  });

  it('a file that stops being CSV fails the job, naming why, keeping what it did', async () => {
    const rows = Array.from({ length: 700 }, (_, i) => `${phone(6000 + i)},P${i},t`);
    rows.push('"+12025559999,unterminated');
    const job = await finished((await upload(csv(rows))).headers.get('location')!);
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(/^body: not valid CSV/);
    expect(job.created).toBeGreaterThanOrEqual(500);
  });

  it('a job is its tenant\u2019s only: another tenant\u2019s key finds nothing', async () => {
    const r = await upload(csv(Array.from({ length: 200 }, (_, i) => `${phone(7000 + i)},P,t`)));
    const url = r.headers.get('location')!;
    await finished(url);
    const peek = await api.request('GET', url, { token: otherKey });
    expect(peek.status).toBe(404);
    expect(peek.body.error.reason).toBe('import not found');
  });
});
