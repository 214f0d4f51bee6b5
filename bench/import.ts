/**
 * bench:import — a 200,000-row contact CSV imported as a job while the api keeps
 * answering. The api runs as its own process (services/api/main.ts, as deployed) on an
 * embedded PostgreSQL; this process uploads the CSV, polls the job's progress and,
 * meanwhile, times GET /healthz and POST /v1/device-tokens, first with the api idle and
 * then during the import. Prints JSON; asserts nothing about time.
 *   HERALD_BENCH_IMPORT_ROWS (default 200000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool, startDatabase } from '../lib/db/postgres.js';
import { migrate } from '../lib/db/migrate.js';
import { httpOk, waitFor } from '../devenv/poll.js';
import { freePort } from '../devenv/ports.js';
import { startTs } from '../devenv/processes.js';

const ROWS = Number(process.env.HERALD_BENCH_IMPORT_ROWS ?? 200_000);
const ADMIN = 'bench-admin-token-0123456789abcdef';

const dataDir = mkdtempSync(join(tmpdir(), 'herald-bench-import-'));
const db = await startDatabase({ dataDir, port: await freePort() });
const pool = createPool(db.url, 4, 'bench');
await migrate(pool);
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const api = startTs('services/api/main.ts', {
  name: 'api',
  output: 'inherit',
  env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: db.url, HERALD_API_PORT: String(port), HERALD_ADMIN_TOKEN: ADMIN },
});

try {
  await waitFor('the api', () => httpOk(`${base}/readyz`), { timeoutMs: 60_000, everyMs: 100, process: api });
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(base + path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  // The synthetic plan: the bench registers devices far past a customer's API allowance.
  await admin('POST', '/admin/tenants', { id: 'bench', name: 'Bench', plan: 'synthetic' });
  const key = ((await (await admin('POST', '/admin/tenants/bench/api-keys')).json()) as { key: string }).key;
  const auth = { authorization: `Bearer ${key}` };

  let tokenSeq = 0;
  const timed = async (f: () => Promise<Response>): Promise<number> => {
    const t0 = performance.now();
    const res = await f();
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`status ${res.status}`);
    return performance.now() - t0;
  };
  const health = () => timed(() => fetch(`${base}/healthz`));
  const register = () =>
    timed(() =>
      fetch(`${base}/v1/device-tokens`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ token: `bench-token-${++tokenSeq}`, platform: 'android', tags: ['bench'] }),
      }),
    );
  const sample = async (until: () => boolean, everyMs: number) => {
    const h: number[] = [];
    const d: number[] = [];
    while (!until()) {
      h.push(await health());
      d.push(await register());
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return { health: h, register: d };
  };
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
    const r = (x: number) => Math.round(x * 10) / 10;
    return { n: s.length, p50_ms: r(q(0.5)), p95_ms: r(q(0.95)), p99_ms: r(q(0.99)), max_ms: r(s[s.length - 1] ?? NaN) };
  };

  // Idle first: the same requests with nothing else going on.
  const idleUntil = performance.now() + 3000;
  const idle = await sample(() => performance.now() > idleUntil, 50);

  const lines = ['phone,name,tags,time_zone'];
  // Valid US numbers: real area codes, exchanges 200-999, 25 lines each (10 x 800 x 25 = 200,000).
  const areas = [202, 212, 312, 415, 617, 713, 206, 303, 404, 503];
  for (let i = 0; i < ROWS; i++) {
    const area = areas[i % areas.length]!;
    const exchange = 200 + (Math.floor(i / areas.length) % 800);
    const line = 1000 + Math.floor(i / (areas.length * 800));
    lines.push(`+1${area}${exchange}${line},Person ${i},choir;youth,America/Chicago`);
  }
  const csv = Buffer.from(`${lines.join('\n')}\n`);

  const t0 = performance.now();
  const accepted = await fetch(`${base}/v1/contacts`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: csv });
  const uploadMs = performance.now() - t0;
  if (accepted.status !== 202) throw new Error(`upload: ${accepted.status} ${await accepted.text()}`);
  const url = accepted.headers.get('location')!;

  type Job = { status: string; rows_read: number; created: number; updated: number; failed: number };
  const progress: Array<{ t_s: number; status: string; rows_read: number }> = [];
  let job: Job | undefined;
  let done = false;
  const poll = (async () => {
    while (!done) {
      job = (await (await fetch(base + url, { headers: auth })).json()) as Job;
      progress.push({ t_s: Math.round((performance.now() - t0) / 100) / 10, status: job.status, rows_read: job.rows_read });
      done = job.status === 'succeeded' || job.status === 'failed';
      if (!done) await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const during = await sample(() => done, 50);
  await poll;
  const totalS = (performance.now() - t0) / 1000;
  const running = progress.filter((p) => p.status === 'running');

  console.log(
    JSON.stringify(
      {
        bench: 'import',
        rows: ROWS,
        // Two cores shared with other work: the 1-minute load average at the end says how busy the machine was.
        load_average_1m: Math.round(loadavg()[0]! * 10) / 10,
        csv_bytes: csv.length,
        upload_to_202_ms: Math.round(uploadMs),
        import_total_s: Math.round(totalS * 10) / 10,
        rows_per_s: Math.round(ROWS / totalS),
        job: job,
        progress_polls: progress.length,
        progress_polls_while_running: running.length,
        progress_samples: progress.filter((_, i) => i % Math.max(1, Math.floor(progress.length / 8)) === 0),
        latency_idle: { healthz: stats(idle.health), device_registration: stats(idle.register) },
        latency_during_import: { healthz: stats(during.health), device_registration: stats(during.register) },
      },
      null,
      2,
    ),
  );
} finally {
  await api.stop(10_000);
  await pool.end();
  await db.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
