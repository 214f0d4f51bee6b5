import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..', '..');

export interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr(): string;
}

/**
 * A worker as a real process (services/worker/main.ts on this Node, tsx as a
 * loader, not a wrapper process), so a test can SIGKILL or SIGTERM the process
 * that holds the work.
 */
export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'services/worker/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, HERALD_WORKER_PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let err = '';
  child.stderr?.on('data', (d) => (err += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready: ${err}`)));
  });
  return { child, exited, stderr: () => err };
}
