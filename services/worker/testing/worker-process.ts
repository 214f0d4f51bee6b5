import { startTs, type Supervised } from '../../../devenv/processes.js';

/**
 * A worker as a real process (services/worker/main.ts), so a test can SIGKILL or SIGTERM
 * the process that holds the work; resolves once the worker says it is ready.
 */
export async function startWorkerProcess(env: Record<string, string>): Promise<Supervised> {
  const p = startTs('services/worker/main.ts', { name: 'worker', ipc: true, env: { ...process.env, HERALD_WORKER_PORT: '0', LOG_LEVEL: 'warn', ...env } });
  await new Promise<void>((resolve, reject) => {
    p.child.once('message', () => resolve());
    void p.exited.then((exit) => reject(new Error(`worker exited (${exit.code}) before it was ready: ${p.tail()}`)));
  });
  return p;
}
