/**
 * `npm start`: the whole Herald platform on this machine, data under .herald/.
 *
 *   HERALD_DATA_DIR   data directory (default .herald)
 *   DATABASE_URL      use this PostgreSQL instead of the embedded one
 *   LOG_LEVEL         the services' log level (default info)
 *   HERALD_LOG_QUIET  1: do not echo the services' logs here (they still go to <data>/logs)
 *
 * Ctrl-C (or SIGTERM) stops everything in reverse order and keeps the data; a second
 * Ctrl-C a few seconds later kills what has not stopped yet.
 *
 * A service that crashes is restarted with backoff, as a pod would be, and the platform
 * stays up; one that keeps crashing is reported ("crash-looping") and retried.
 *
 * Two processes: this one, in the terminal's process group, and a supervisor in a
 * process group of its own that runs the platform (devenv/local-platform.ts). A
 * Ctrl-C reaches only this one, which asks the supervisor to stop; so etcd,
 * kube-apiserver, PostgreSQL and the services never get the terminal's SIGINT
 * all at once and are stopped one after another instead.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '..');

if (process.argv.includes('--supervised')) await supervise();
else front();

function front(): void {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--supervised'], {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (firstSignalAt === 0) {
      firstSignalAt = now;
      child.kill('SIGTERM');
    } else if (now - firstSignalAt > 2_000) {
      // npm and tsx relay the terminal's SIGINT too: only a later, deliberate one forces.
      process.stderr.write(`\n${signal} again: forcing the platform down\n`);
      child.kill('SIGINT');
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

async function supervise(): Promise<void> {
  const { startLocalPlatform, formatLogLine } = await import('../devenv/local-platform.js');
  const dataDir = path.resolve(REPO, process.env.HERALD_DATA_DIR ?? '.herald');
  const quiet = process.env.HERALD_LOG_QUIET === '1';
  const color = process.stdout.isTTY;
  const colors: Record<string, string> = { platform: '1;37', simulator: '35', api: '36', worker: '33', operator: '32' };
  const print = (name: string, line: string) => {
    const tag = name.padEnd(9);
    process.stdout.write(`${color ? `\x1b[${colors[name] ?? '0'}m${tag}\x1b[0m` : tag} | ${formatLogLine(line)}\n`);
  };

  const rel = (f: string) => (f.startsWith(REPO + path.sep) ? path.relative(REPO, f) : f);
  let stopping = false;
  let platform: Awaited<ReturnType<typeof startLocalPlatform>> | undefined;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    print('platform', `stopping (reverse order; data stays in ${rel(dataDir)})`);
    try {
      await platform?.stop();
      print('platform', 'stopped');
      process.exit(code);
    } catch (err) {
      print('platform', `unclean stop: ${(err as Error).message}`);
      process.exit(1);
    }
  };
  // A signal that arrives while starting is acted on once startLocalPlatform returns (or fails).
  let pending: number | undefined;
  process.on('SIGTERM', () => (platform ? void stop(0) : (pending = 0)));
  process.on('SIGINT', () => {
    if (stopping || !platform) {
      print('platform', 'forced: exiting now (the cleanup watchdog kills what is left)');
      process.exit(130);
    }
    void stop(0);
  });
  // The terminal side went away (killed): stop as if asked.
  process.on('disconnect', () => (platform ? void stop(0) : (pending = 0)));

  try {
    platform = await startLocalPlatform({
      dataDir,
      databaseUrl: process.env.DATABASE_URL || undefined,
      ports: 'preferred',
      logLevel: process.env.LOG_LEVEL ?? 'info',
      onLog: (name, line) => {
        if (name === 'platform' || !quiet) print(name, line);
      },
      env: process.env.HERALD_ACCOUNT_SMS_PER_SECOND ? { worker: { HERALD_ACCOUNT_SMS_PER_SECOND: process.env.HERALD_ACCOUNT_SMS_PER_SECOND } } : {},
    });
  } catch (err) {
    print('platform', `failed to start: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  }
  if (pending !== undefined) return void stop(pending);

  const p = platform;
  const kubectlDir = path.dirname(p.kubectlPath);
  const seeded = p.seeded ? `${p.seeded.tenants} tenants (grace-church, northfield-university), ${p.seeded.contacts} contacts, ${p.seeded.deviceTokens} device tokens` : 'skipped';
  const text = `
Herald is running.  Data: ${rel(dataDir)}/ (kept across restarts)   Logs: ${rel(path.join(dataDir, 'logs'))}/
Demo data: ${seeded}

In another terminal, from ${REPO}:

  export KUBECONFIG=${p.kubeconfig}
  export PATH=${kubectlDir}:$PATH        # kubectl ${path.basename(path.dirname(kubectlDir)).replace(/^kubectl-/, '')} (built by npm run tools): ${p.kubectlPath}

  kubectl apply -f examples/sms-send-now.yaml     # or any manifest in examples/
  kubectl get broadcasts -A -w                    # short name: bc
  kubectl describe broadcast sunday-reminder -n grace-church

  Each tenant's Broadcasts live in its own namespace (grace-church, northfield-university),
  bound to it by the label herald.dev/tenant: the API server refuses any other tenant there.

  api          ${p.apiUrl}   admin token: ${rel(p.adminTokenFile)}
               curl -H "Authorization: Bearer $(cat ${rel(p.adminTokenFile)})" ${p.apiUrl}/admin/tenants
  simulator    ${p.simulatorUrl}/_sim/received   (what the "providers" got)
  operator     http://127.0.0.1:${p.ports.operator}/metrics   worker http://127.0.0.1:${p.ports.worker}/metrics
  kube-apiserver ${p.kubeServer}   PostgreSQL ${p.databaseUrl.replace(/\/\/[^@]*@/, '//***@')}

Ctrl-C stops everything.
`;
  process.stdout.write(text);
}
