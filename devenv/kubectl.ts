import { execFile } from 'node:child_process';
import { toolPath } from './control-plane.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The kubectl `npm run tools` built (the control plane's version). */
export function kubectlPath(): string {
  return toolPath('kubectl');
}

/**
 * kubectl with this kubeconfig; `input` goes to its stdin (for `-f -`). Never throws on a
 * non-zero exit. Killed after timeoutMs (longer for `wait`/`rollout status` with a --timeout).
 */
export function runKubectl(kubeconfig: string, args: string[], input?: string, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(kubectlPath(), ['--kubeconfig', kubeconfig, ...args], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    // kubectl may exit before reading its stdin (a command that takes none, a bad flag):
    // the exit code and stderr say what happened, so a broken pipe here is not an error.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** runKubectl that throws (with kubectl's message) on a non-zero exit. */
export async function mustKubectl(kubeconfig: string, args: string[], input?: string, timeoutMs?: number): Promise<RunResult> {
  const r = await runKubectl(kubeconfig, args, input, timeoutMs);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r;
}
