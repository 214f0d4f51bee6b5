import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { parse } from 'csv-parse';
import type { Context } from 'koa';
import type { CountryCode } from 'libphonenumber-js';
import type { Pool } from '../../lib/db/postgres.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { CSV_OPTIONS, csvColumns, csvRecord, invalidCsv } from './contacts-csv.js';
import { importRows, type RowError, type RowInput } from './contacts-upsert.js';
import { MAX_REPORTED_ERRORS } from './deps.js';
import { HttpError, MB } from './http.js';

/**
 * Contact imports as jobs. A CSV upload larger than the threshold is staged in
 * PostgreSQL in 1 MB chunks as it arrives (import_job_chunks), answered 202 with the
 * job's URL, and worked through in the background by one import at a time per api
 * process: streamed through csv-parse, validated and upserted 500 rows at a time, with
 * the progress written to the job after each batch. The event loop is yielded every
 * 50 rows, so health checks and other requests are answered while an import runs.
 * Each tenant may have one import open at a time (a partial unique index), and an
 * import has its own caps on bytes and rows.
 */
export interface ImportLimits {
  /** CSV bodies larger than this become a job (HERALD_IMPORT_THRESHOLD_BYTES). */
  thresholdBytes: number;
  /** Largest import accepted, in bytes. */
  maxBytes: number;
  /** Most data rows an import may have; the rest of a longer file fails the job. */
  maxRows: number;
}

export const DEFAULT_IMPORT_LIMITS: ImportLimits = { thresholdBytes: 1 * MB, maxBytes: 64 * MB, maxRows: 500_000 };

const STAGE_CHUNK_BYTES = 1 * MB;
const BATCH_ROWS = 500;
const YIELD_EVERY_ROWS = 50;
const PARSE_SLICE_BYTES = 16 * 1024;
/** The job keeps the first errors (as many as a synchronous upload answers); `failed` counts the rows. */
export const MAX_JOB_ERRORS = MAX_REPORTED_ERRORS;
/** A running job whose process stopped beating this long ago is taken over by another. */
const STALE_AFTER_SECONDS = 120;

export interface ImportJobView {
  id: string;
  status: 'receiving' | 'queued' | 'running' | 'succeeded' | 'failed';
  bytes: number;
  rows_read: number;
  created: number;
  updated: number;
  failed: number;
  errors: RowError[];
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

export const JOB_COLUMNS = `id, status, bytes, rows_read, created, updated, failed, errors, error, created_at, started_at, finished_at`;

export const importUrl = (id: string) => `/v1/contact-imports/${id}`;

/** The first `limit` bytes of the body, and whether that was all of it (the rest stays unread in `rest`). */
export async function readBodyHead(ctx: Context, limit: number): Promise<{ head: Buffer; complete: boolean; rest: AsyncIterator<Buffer> }> {
  const rest = (ctx.req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const next = await rest.next();
    if (next.done) return { head: Buffer.concat(chunks, total), complete: true, rest };
    chunks.push(next.value);
    total += next.value.length;
    if (total > limit) return { head: Buffer.concat(chunks, total), complete: false, rest };
  }
}

/**
 * Stage the upload (what was read so far and the rest of the body) as a new job of the
 * tenant, in chunks, and queue it. 409 while the tenant has another import open, 413
 * past maxBytes (the staged chunks are dropped).
 */
export async function stageImport(
  pool: Pool,
  clock: Clock,
  limits: ImportLimits,
  job: { tenantId: string; defaultCountry: CountryCode; consentSource: string },
  head: Buffer,
  rest: AsyncIterator<Buffer>,
  ctx: Context,
): Promise<ImportJobView> {
  const id = randomUUID();
  try {
    await pool.query(
      `INSERT INTO import_jobs (id, tenant_id, default_country, consent_source, created_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, now())`,
      [id, job.tenantId, job.defaultCountry, job.consentSource, clock.now()],
    );
  } catch (err) {
    if ((err as { code?: string }).code === '23505') {
      const open = await pool.query<{ id: string }>(`SELECT id FROM import_jobs WHERE tenant_id = $1 AND status IN ('receiving', 'queued', 'running')`, [job.tenantId]);
      const other = open.rows[0]?.id;
      throw new HttpError(409, 'body', `an import is already open for this tenant${other ? ` (${importUrl(other)})` : ''}; one at a time`);
    }
    throw err;
  }
  let seq = 0;
  let bytes = 0;
  let pending: Buffer[] = [head];
  let pendingBytes = head.length;
  const flush = async () => {
    if (pendingBytes === 0) return;
    await pool.query('INSERT INTO import_job_chunks (job_id, seq, data) VALUES ($1, $2, $3)', [id, seq++, Buffer.concat(pending, pendingBytes)]);
    await pool.query('UPDATE import_jobs SET heartbeat_at = now(), bytes = $2 WHERE id = $1', [id, bytes]);
    pending = [];
    pendingBytes = 0;
  };
  try {
    bytes = head.length;
    for (;;) {
      if (bytes > limits.maxBytes) {
        ctx.set('Connection', 'close');
        ctx.req.resume();
        throw new HttpError(413, 'body', `an import is at most ${limits.maxBytes / MB} MB`);
      }
      if (pendingBytes >= STAGE_CHUNK_BYTES) await flush();
      const next = await rest.next();
      if (next.done) break;
      pending.push(next.value);
      pendingBytes += next.value.length;
      bytes += next.value.length;
    }
    await flush();
    const { rows } = await pool.query<ImportJobView>(
      `UPDATE import_jobs SET status = 'queued', bytes = $2, heartbeat_at = NULL WHERE id = $1 RETURNING ${JOB_COLUMNS}`,
      [id, bytes],
    );
    return rows[0]!;
  } catch (err) {
    // An upload that did not arrive whole (too large, the client went away) leaves nothing behind.
    await pool.query('DELETE FROM import_jobs WHERE id = $1', [id]).catch(() => {});
    throw err;
  }
}

interface ClaimedJob {
  id: string;
  tenant_id: string;
  default_country: CountryCode;
  consent_source: string;
}

/**
 * Works through queued imports, one at a time in this process. kick() after staging a
 * job (and now and then, for jobs staged elsewhere or left by a process that died);
 * stop() lets the current batch finish and leaves the job for another process.
 */
export class ImportRunner {
  private readonly worker = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private running: Promise<void> | null = null;
  private stopped = false;
  private again = false;

  constructor(
    private readonly deps: { pool: Pool; clock: Clock; log: Logger },
    private readonly limits: ImportLimits = DEFAULT_IMPORT_LIMITS,
  ) {}

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop()
      .catch((err: unknown) => this.deps.log.error({ err }, 'import runner failed'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /** Resolves once nothing is running (tests, the bench). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      this.again = false;
      const job = await this.claim();
      if (!job) return;
      await this.run(job);
    }
  }

  private async claim(): Promise<ClaimedJob | null> {
    const { pool } = this.deps;
    // A job still receiving whose upload stopped beating is abandoned: fail it, freeing the tenant.
    await pool.query(
      `UPDATE import_jobs SET status = 'failed', error = 'the upload did not finish', finished_at = now()
        WHERE status = 'receiving' AND heartbeat_at < now() - make_interval(secs => $1)`,
      [STALE_AFTER_SECONDS],
    );
    const { rows } = await pool.query<ClaimedJob>(
      `UPDATE import_jobs SET status = 'running', claimed_by = $1, heartbeat_at = now(), started_at = coalesce(started_at, $2),
              rows_read = 0, created = 0, updated = 0, failed = 0, errors = '[]'
        WHERE id = (SELECT id FROM import_jobs
                     WHERE status = 'queued' OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => $3))
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id, tenant_id, default_country, consent_source`,
      [this.worker, this.deps.clock.now(), STALE_AFTER_SECONDS],
    );
    return rows[0] ?? null;
  }

  private async run(job: ClaimedJob): Promise<void> {
    const { pool, clock, log } = this.deps;
    const progress = { rows_read: 0, created: 0, updated: 0, failed: 0, errors: [] as RowError[] };
    const seen = new Map<string, number>();
    const opts = { defaultCountry: job.default_country, consentSource: job.consent_source };
    const save = async (final?: { status: 'succeeded' | 'failed'; error: string | null }) => {
      await pool.query(
        `UPDATE import_jobs SET rows_read = $2, created = $3, updated = $4, failed = $5, errors = $6::jsonb, heartbeat_at = now(),
                status = coalesce($7, status), error = $8, finished_at = CASE WHEN $7::text IS NULL THEN NULL ELSE $9::timestamptz END
          WHERE id = $1 AND claimed_by = $10`,
        [job.id, progress.rows_read, progress.created, progress.updated, progress.failed, JSON.stringify(progress.errors),
          final?.status ?? null, final?.error ?? null, clock.now(), this.worker],
      );
    };
    const addErrors = (errors: RowError[]) => {
      progress.failed += new Set(errors.map((e) => e.row)).size;
      for (const e of errors) if (progress.errors.length < MAX_JOB_ERRORS) progress.errors.push(e);
    };
    const parser = parse(CSV_OPTIONS);
    const feeding = this.feed(job.id, parser);
    let columns: string[] | null = null;
    let batch: RowInput[] = [];
    let batchErrors: RowError[] = [];
    const flush = async () => {
      if (batch.length === 0 && batchErrors.length === 0) return;
      const r = await importRows(pool, job.tenant_id, batch, opts, clock.now(), seen);
      progress.created += r.created;
      progress.updated += r.updated;
      addErrors([...batchErrors, ...r.errors].sort((a, b) => a.row - b.row));
      batch = [];
      batchErrors = [];
      await save();
    };
    try {
      let row = 0;
      for await (const cells of parser as AsyncIterable<string[]>) {
        if (this.stopped) throw new Stopped();
        if (!columns) {
          columns = csvColumns(cells);
          continue;
        }
        row += 1;
        if (row > this.limits.maxRows) throw new HttpError(413, 'body', `an import has at most ${this.limits.maxRows} rows`);
        progress.rows_read = row;
        const r = csvRecord(columns, cells, row);
        if ('error' in r) batchErrors.push(r.error);
        else batch.push({ row, value: r.values });
        if (batch.length >= BATCH_ROWS) await flush();
        if (row % YIELD_EVERY_ROWS === 0) await yieldToEventLoop();
      }
      await feeding;
      if (!columns) csvColumns(undefined);
      await flush();
      await save({ status: 'succeeded', error: null });
      await pool.query('DELETE FROM import_job_chunks WHERE job_id = $1', [job.id]);
      log.info({ job: job.id, tenantId: job.tenant_id, rows: progress.rows_read, created: progress.created, updated: progress.updated, failed: progress.failed }, 'import finished');
    } catch (err) {
      parser.destroy();
      await feeding.catch(() => {});
      if (err instanceof Stopped) {
        log.info({ job: job.id }, 'import left for another process (shutting down)');
        return;
      }
      const known = err instanceof HttpError ? err : isCsvError(err) ? invalidCsv(err) : null;
      if (!known) log.error({ err, job: job.id }, 'import failed');
      const reason = known ? `${known.field ? `${known.field}: ` : ''}${known.reason}` : 'internal error';
      await save({ status: 'failed', error: reason }).catch(() => {});
      await pool.query('DELETE FROM import_job_chunks WHERE job_id = $1', [job.id]).catch(() => {});
    }
  }

  /** The staged chunks, in order, into the parser (one chunk in memory at a time). */
  private async feed(jobId: string, parser: ReturnType<typeof parse>): Promise<void> {
    try {
      for (let seq = 0; ; seq++) {
        const { rows } = await this.deps.pool.query<{ data: Buffer }>('SELECT data FROM import_job_chunks WHERE job_id = $1 AND seq = $2', [jobId, seq]);
        const chunk = rows[0];
        if (!chunk) break;
        // In slices: the parser reads what it is given in one go, and a whole chunk would
        // hold the event loop for tens of milliseconds.
        for (let at = 0; at < chunk.data.length; at += PARSE_SLICE_BYTES) {
          if (parser.destroyed) return;
          if (!parser.write(chunk.data.subarray(at, at + PARSE_SLICE_BYTES))) await drained(parser);
        }
      }
      parser.end();
    } catch (err) {
      parser.destroy(err as Error);
    }
  }
}

class Stopped extends Error {}

/** The parser wants more, or was closed by a failed import (either way, stop waiting). */
async function drained(parser: ReturnType<typeof parse>): Promise<void> {
  const ac = new AbortController();
  try {
    await Promise.race([once(parser, 'drain', { signal: ac.signal }), once(parser, 'close', { signal: ac.signal })]);
  } finally {
    ac.abort();
  }
}

const isCsvError = (err: unknown) => typeof (err as { code?: unknown }).code === 'string' && String((err as { code: string }).code).startsWith('CSV_');
