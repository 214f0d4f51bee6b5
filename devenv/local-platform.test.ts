/**
 * The platform as `npm start` runs it (devenv/local-platform.ts: embedded PostgreSQL in
 * its own data directory, the real kube-apiserver, the simulator, api, worker and the
 * operator as child processes), driven only through kubectl like a person would:
 * every manifest in examples/ reaches its expected phase and counts on the demo data,
 * a local-time schedule sends at 09:00 in each recipient's own zone; then the start
 * command itself (scripts/start.ts) over the same data directory finds everything and
 * re-sends nothing, and Ctrl-C stops it in reverse order leaving no process behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as yaml from 'js-yaml';
import { DateTime } from 'luxon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../lib/db/postgres.js';
import { demoDevices, demoSegment, demoTenant } from './seed-demo.js';
import { REPO, runKubectl, startLocalPlatform, type LocalPlatform, type RunResult } from './local-platform.js';

interface Bc {
  metadata: { name: string; namespace: string; generation: number };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    audienceSize?: number;
    nextRunAt?: string;
    estimatedCost?: string;
    counts?: Record<string, number>;
    preview?: Record<string, number | string>;
    observedGeneration?: number;
  };
}

const EXAMPLES = path.join(REPO, 'examples');
let dataDir: string;
let platform: LocalPlatform;
let pool: Pool;
/** What the checks talk to: the in-process platform, later the one `npm start` runs. */
let target: { kubectl(args: string[], input?: string): Promise<RunResult>; simulatorUrl: string };
let npmStart: ChildProcess | undefined;

async function listBroadcasts(): Promise<Map<string, Bc>> {
  const r = await target.kubectl(['get', 'broadcasts', '-A', '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl get broadcasts: ${r.stderr}`);
  return new Map((JSON.parse(r.stdout) as { items: Bc[] }).items.map((b) => [b.metadata.name, b]));
}

/**
 * Poll `kubectl get broadcasts` until every named expectation holds (each returns
 * undefined when met, else what is still wrong); fail after the deadline with the
 * unmet ones.
 */
async function expectBroadcasts(expectations: Record<string, (bc: Bc) => string | undefined>, timeoutMs = 120_000): Promise<Map<string, Bc>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await listBroadcasts();
    const unmet: string[] = [];
    for (const [name, check] of Object.entries(expectations)) {
      const bc = all.get(name);
      const problem = bc ? check(bc) : 'not found';
      if (problem) unmet.push(`${name}: ${problem} (status ${JSON.stringify(bc?.status ?? null)})`);
    }
    if (unmet.length === 0) return all;
    if (Date.now() > deadline) throw new Error(`broadcasts not as expected after ${timeoutMs} ms:\n${unmet.join('\n')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** An expectation on a Broadcast's status: every given field equal. */
function status(want: { phase: string; audienceSize?: number; nextRunAt?: string; counts?: Record<string, number> }) {
  return (bc: Bc): string | undefined => {
    const s = bc.status ?? {};
    if (s.phase !== want.phase) return `phase ${s.phase}, want ${want.phase}`;
    if (s.observedGeneration !== bc.metadata.generation) return 'status is of an older generation';
    if (want.audienceSize !== undefined && s.audienceSize !== want.audienceSize) return `audienceSize ${s.audienceSize}, want ${want.audienceSize}`;
    if (want.nextRunAt !== undefined && s.nextRunAt !== want.nextRunAt) return `nextRunAt ${s.nextRunAt}, want ${want.nextRunAt}`;
    for (const [k, v] of Object.entries(want.counts ?? {})) if ((s.counts?.[k] ?? 0) !== v) return `counts.${k} ${s.counts?.[k]}, want ${v}`;
    return undefined;
  };
}

interface ChannelReceived {
  accepted: number;
  perRecipient?: Record<string, number>;
}
async function simulatorReceived(recipients = false): Promise<{ sms: ChannelReceived; push: ChannelReceived }> {
  return (await (await fetch(`${target.simulatorUrl}/_sim/received${recipients ? '?recipients=1' : ''}`)).json()) as never;
}

// What the demo data makes of each example.
const church = 'grace-church';
const university = 'northfield-university';
const members = demoSegment(church, ['members']);
const membersOptedOut = members.filter((c) => c.optedOut).length;
const birthdays = demoSegment(church, ['birthday']);
const campus = demoSegment(university, ['campus']);
const students = demoDevices(university, ['students']);
const tenantZone = (id: string) => demoTenant(id).defaultTimeZone;
const at9 = (date: string, zone: string) => DateTime.fromISO(`${date}T09:00`, { zone }).toUTC();
const rfc3339 = (d: DateTime) => d.toISO({ suppressMilliseconds: true })!.replace(/\.000Z$/, 'Z');

const SMS_SENT_BY_EXAMPLES = members.length - membersOptedOut + 1 + campus.length;
const PUSH_SENT_BY_EXAMPLES = students.length + 1;

const expected: Record<string, (bc: Bc) => string | undefined> = {
  'sunday-reminder': status({
    phase: 'Completed',
    audienceSize: members.length,
    // delivered: the simulator's receipts came back through the api's webhook.
    counts: { sent: members.length - membersOptedOut, delivered: members.length - membersOptedOut, skipped: membersOptedOut, failed: 0 },
  }),
  // One inline number is a contact with consent; the two others are not contacts: skipped, counted.
  'prayer-team-callout': status({ phase: 'Completed', audienceSize: 3, counts: { sent: 1, delivered: 1, failed: 0, skipped: 2 } }),
  'welcome-week': status({ phase: 'Completed', audienceSize: students.length, counts: { sent: students.length, failed: 0 } }),
  'cs101-room-change': status({ phase: 'Completed', audienceSize: 1, counts: { sent: 1, failed: 0 } }),
  'campus-closed-ice-storm': status({ phase: 'Completed', audienceSize: campus.length, counts: { sent: campus.length, delivered: campus.length, failed: 0 } }),
  'all-members-preview': (bc) => {
    const problem = status({ phase: 'Completed', audienceSize: demoTenant(church).contacts.length, counts: { sent: 0, queued: 0 } })(bc);
    if (problem) return problem;
    const p = bc.status?.preview ?? {};
    if (p.optedOut !== 1 || p.sendable !== demoTenant(church).contacts.length - 1) return `preview ${JSON.stringify(p)}`;
    if (!/^\d+\.\d{2} USD$/.test(bc.status?.estimatedCost ?? '')) return `estimatedCost ${bc.status?.estimatedCost}`;
    return undefined;
  },
  'christmas-eve-services': status({ phase: 'Scheduled', nextRunAt: '2030-12-24T15:00:00Z', counts: { sent: 0 } }),
  // Scheduled until the first recipient's zone reaches 09:00 on the day.
  'birthday-greetings': status({
    phase: 'Scheduled',
    nextRunAt: rfc3339(DateTime.min(...birthdays.map((c) => at9('2030-06-15', c.timeZone ?? tenantZone(church))))!),
    counts: { sent: 0 },
  }),
  'weekly-service-reminder': (bc) => {
    const problem = status({ phase: 'Scheduled', counts: { sent: 0 } })(bc);
    if (problem) return problem;
    const next = DateTime.fromISO(bc.status?.nextRunAt ?? '', { zone: 'America/Chicago' });
    const inAWeek = DateTime.now().plus({ days: 7 });
    if (!next.isValid || next.weekday !== 7 || next.hour !== 8 || next.minute !== 0 || next < DateTime.now() || next > inAWeek) {
      return `nextRunAt ${bc.status?.nextRunAt} is not the next Sunday 08:00 in Chicago`;
    }
    return undefined;
  },
};

// As npm start, except the operator's resync: counts.delivered of a Broadcast already
// Completed (receipts arriving after its last status refresh) is folded in at the next
// resync, 30 s as deployed; 5 s here keeps the test short.
// Services log at debug, so the check that no log line holds a phone number reads every line there is.
const options = (dir: string) => ({ dataDir: dir, ports: 'free' as const, logLevel: 'debug', env: { operator: { HERALD_OPERATOR_RESYNC_MS: '5000' } } });

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-local-e2e-'));
  platform = await startLocalPlatform(options(dataDir));
  target = platform;
  pool = createPool(platform.databaseUrl, 2, 'e2e');
}, 240_000);

afterAll(async () => {
  await pool?.end().catch(() => {}); // (the last test may have ended it)
  await platform?.stop();
  if (npmStart?.pid && npmStart.exitCode === null) {
    process.kill(-npmStart.pid, 'SIGTERM');
    await new Promise((r) => npmStart!.once('exit', r));
  }
  if (dataDir && !process.env.HERALD_KEEP_E2E_DIR) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

describe('the local platform (npm start)', () => {
  it('every manifest in examples/ is valid and reaches its expected phase and counts on the demo data', async () => {
    // Every example has an expectation here, and every expectation an example.
    const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith('.yaml'));
    const names = await Promise.all(files.map(async (f) => (yaml.load(await readFile(path.join(EXAMPLES, f), 'utf8')) as Bc).metadata.name));
    expect(names.sort()).toEqual(Object.keys(expected).sort());

    const dry = await target.kubectl(['apply', '--dry-run=server', '-f', EXAMPLES]);
    expect(dry.stderr).toBe('');
    const applied = await target.kubectl(['apply', '-f', EXAMPLES]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout.trim().split('\n')).toHaveLength(files.length);

    await expectBroadcasts(expected);

    // The providers got exactly what the statuses say, nothing twice; the dry run sent nothing.
    const got = await simulatorReceived(true);
    expect(got.sms.accepted).toBe(SMS_SENT_BY_EXAMPLES);
    expect(got.push.accepted).toBe(PUSH_SENT_BY_EXAMPLES);
    const smsWant: Record<string, number> = {};
    const add = (to: string) => (smsWant[to] = (smsWant[to] ?? 0) + 1);
    for (const c of members) if (!c.optedOut) add(c.phone);
    add('+12062000008'); // prayer-team-callout's inline contact (its two other numbers have no consent)
    for (const c of campus) add(c.phone);
    expect(got.sms.perRecipient).toEqual(smsWant);
    expect(got.push.perRecipient).toEqual({ ...Object.fromEntries(students.map((c) => [c.deviceToken!, 1])), [`topic:${university}.students-cs101`]: 1 }); // the tenant's own topic on the wire
    const { rows } = await pool.query<{ name: string; priority: string; rows: number }>(
      `SELECT b.name, b.priority, count(d.id)::int AS rows FROM broadcasts b LEFT JOIN deliveries d ON d.broadcast_id = b.id GROUP BY 1, 2`,
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    expect(byName.get('campus-closed-ice-storm')?.priority).toBe('urgent');
    expect(byName.get('all-members-preview')?.rows ?? 0).toBe(0);

    // What kubectl shows a person.
    const table = await target.kubectl(['get', 'bc', '-n', church]);
    expect(table.stdout).toMatch(/NAME\s+TENANT\s+CHANNEL\s+PHASE\s+AUDIENCE\s+SENT\s+FAILED\s+AGE/);
    expect(table.stdout).toMatch(new RegExp(`sunday-reminder\\s+${church}\\s+sms\\s+Completed\\s+${members.length}\\s+${members.length - membersOptedOut}\\s+0`));
  }, 240_000);

  it('no service logged a whole phone number or a credential while every example ran', async () => {
    const logDir = path.join(dataDir, 'logs');
    const files = (await readdir(logDir)).filter((f) => ['api.log', 'worker.log', 'operator.log'].includes(f));
    expect(files).toHaveLength(3);
    const admin = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
    let debugLines = 0;
    for (const f of files) {
      const text = await readFile(path.join(logDir, f), 'utf8');
      debugLines += (text.match(/"level":20/g) ?? []).length;
      // E.164 with its plus, or the bare digits of one: what lib/logger.ts masks.
      const whole = /\+\d{8,15}\b|\b1\d{10}\b/.exec(text);
      expect(whole?.[0], `${f} holds a whole number`).toBeUndefined();
      expect(text.includes(admin), `${f} holds the admin token`).toBe(false);
    }
    expect(debugLines).toBeGreaterThan(10);
  });

  it('a local-time schedule whose day has passed sends at once, each row due at 09:00 in its own recipient\'s zone', async () => {
    const manifest = yaml.load(await readFile(path.join(EXAMPLES, 'sms-local-time-birthday.yaml'), 'utf8')) as Bc & {
      spec: { schedule: { date: string }; delivery: { expireAfter: string } };
    };
    const yesterday = DateTime.utc().minus({ days: 1 }).toISODate();
    manifest.metadata.name = 'birthday-greetings-yesterday';
    manifest.spec.schedule.date = yesterday;
    manifest.spec.delivery.expireAfter = '72h'; // every zone's 09:00 yesterday is within it
    const r = await target.kubectl(['apply', '-f', '-'], yaml.dump(manifest));
    expect(r.code, r.stderr).toBe(0);
    await expectBroadcasts({
      'birthday-greetings-yesterday': status({ phase: 'Completed', audienceSize: birthdays.length, counts: { sent: birthdays.length, failed: 0, expired: 0 } }),
    });
    const { rows } = await pool.query<{ address: string; due_at: Date }>(
      `SELECT d.address, d.due_at FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id WHERE b.name = 'birthday-greetings-yesterday'`,
    );
    expect(rows).toHaveLength(birthdays.length);
    const zones = new Set<string>();
    for (const row of rows) {
      const c = birthdays.find((x) => x.phone === row.address)!;
      const zone = c.timeZone ?? tenantZone(church);
      zones.add(zone);
      expect(row.due_at.toISOString()).toBe(at9(yesterday, zone).toISO());
    }
    expect(zones.size).toBeGreaterThanOrEqual(4);
  }, 180_000);

  it('stopped, then `npm start` (scripts/start.ts) over the same data: Broadcasts, statuses and deliveries all still there, nothing sent again, new work runs; Ctrl-C stops it in reverse order', async () => {
    const before = await listBroadcasts();
    const count = async (table: string) => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
    const rowsNow = async () => ({ contacts: await count('contacts'), device_tokens: await count('device_tokens'), deliveries: await count('deliveries'), tenants: await count('tenants') });
    const rowsBefore = await rowsNow();
    const token = platform.adminToken;
    await pool.end();
    await platform.stop();

    // The start command itself, in a process group of its own as in a terminal.
    npmStart = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/start.ts')], {
      cwd: REPO,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME, HERALD_DATA_DIR: dataDir, LOG_LEVEL: 'info' },
    });
    let out = '';
    npmStart.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    npmStart.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => npmStart!.once('exit', (code) => r(code)));
    const deadline = Date.now() + 180_000;
    while (!out.includes('Ctrl-C stops everything.')) {
      if (npmStart.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // What it printed is what a person uses: the kubeconfig, the kubectl, the api, the simulator.
    const kubeconfig = /export KUBECONFIG=(\S+)/.exec(out)![1]!;
    expect(kubeconfig).toBe(path.join(dataDir, 'control-plane', 'kubeconfigs', 'admin.kubeconfig'));
    expect(out).toContain(`kubectl v1.34`);
    expect(out).toContain('kubectl apply -f examples/');
    expect(out).toContain('kubectl get broadcasts -A -w');
    expect(out).toContain(`admin token: ${path.join(dataDir, 'admin-token')}`);
    const simulatorUrl = /simulator\s+(http:\/\/\S+)\/_sim\/received/.exec(out)![1]!;
    const databaseUrl = /PostgreSQL (postgres:\/\/\S+)/.exec(out)![1]!.replace('***@', 'herald:herald@');
    target = { kubectl: (args, input) => runKubectl(kubeconfig, args, input), simulatorUrl };
    pool = createPool(databaseUrl, 2, 'e2e');
    expect((await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim()).toBe(token);

    // Seeding again added nothing; the deliveries of the first run are all there.
    expect(await rowsNow()).toEqual(rowsBefore);
    // Etcd kept every Broadcast with the status the operator wrote.
    const after = await listBroadcasts();
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [name, bc] of before) {
      expect({ name, phase: after.get(name)?.status?.phase, sent: after.get(name)?.status?.counts?.sent }).toEqual({ name, phase: bc.status?.phase, sent: bc.status?.counts?.sent });
    }

    // It takes new work; and its fresh simulator sees only that.
    const manifest = yaml.load(await readFile(path.join(EXAMPLES, 'sms-send-now.yaml'), 'utf8')) as Bc;
    manifest.metadata.name = 'sunday-reminder-after-restart';
    const r = await target.kubectl(['apply', '-f', '-'], yaml.dump(manifest));
    expect(r.code, r.stderr).toBe(0);
    await expectBroadcasts({
      'sunday-reminder-after-restart': status({ phase: 'Completed', counts: { sent: members.length - membersOptedOut, skipped: membersOptedOut } }),
      // The operator reconciled the old ones again after its restart: still as they were.
      ...Object.fromEntries([...before].map(([name, bc]) => [name, status({ phase: bc.status!.phase!, counts: { sent: bc.status?.counts?.sent ?? 0 } })])),
    });
    const got = await simulatorReceived();
    expect(got.sms.accepted).toBe(members.length - membersOptedOut);
    expect(got.push.accepted).toBe(0);
    await pool.end();

    // Ctrl-C: the terminal's SIGINT to the start command's process group.
    process.kill(-npmStart.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    const order = ['stopping operator', 'stopping worker', 'stopping api', 'stopping simulator', 'stopping kube-apiserver and etcd', 'stopping PostgreSQL', 'platform  | stopped'];
    const at = order.map((line) => out.indexOf(line));
    expect(at.every((i) => i > 0), out.slice(-3000)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(out).toMatch(/operator .*released lease/);
    expect(out).toMatch(/worker .*drained=true/);
    // Nothing of it is left running (the cleanup watchdog exits within a second of a clean stop).
    const leftovers = async () =>
      (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).filter((e) => {
        try {
          return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dataDir) || readFileSync(`/proc/${e}/environ`, 'utf8').includes(`HERALD_DATA_DIR=${dataDir}`);
        } catch {
          return false;
        }
      });
    await expect.poll(leftovers, { timeout: 10_000, interval: 250 }).toEqual([]);
  }, 360_000);
});
