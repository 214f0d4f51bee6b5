/**
 * Child processes of the development environment (etcd, kube-apiserver, Herald's services,
 * k6): one way to start them, collect their output, and stop them. Every child is killed
 * when this Node process exits, so a test run never leaves one behind; a watchdog
 * (spawnWatchdog) covers a SIGKILL of this process, where no exit handler runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessOptions {
  /** For messages and the log header. */
  name: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Append stdout and stderr here (a header line at start, a line at exit). */
  logFile?: string;
  /** Each line of stdout and stderr, as it comes. */
  onLine?: (line: string) => void;
  /** 'inherit': the child writes to this process's stdout and stderr (benchmarks). Default: piped. */
  output?: 'pipe' | 'inherit';
  /** An IPC channel (the services send a message once ready when they have one). */
  ipc?: boolean;
  /** Called once if the child exits before stop() was called. */
  onUnexpectedExit?: (exit: Exit) => void;
}

export interface Supervised {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<Exit>;
  running(): boolean;
  /** The last 40 lines it printed, for an error message. */
  tail(): string;
  /** Send a signal if it still runs. */
  kill(signal: NodeJS.Signals): void;
  /** SIGCONT (a stopped process cannot act on SIGTERM), SIGTERM, SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<Exit>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/** Start `command` with `args`. */
export function startProcess(command: string, args: string[], o: ProcessOptions): Supervised {
  const piped = o.output !== 'inherit';
  const child = spawn(command, args, {
    cwd: o.cwd ?? REPO,
    env: o.env ?? process.env,
    stdio: ['ignore', piped ? 'pipe' : 'inherit', piped ? 'pipe' : 'inherit', ...(o.ipc ? (['ipc'] as const) : [])],
  });
  if (child.pid === undefined) throw new Error(`could not start ${o.name} (${command})`);
  live.add(child);
  killAllOnExit();
  let log: WriteStream | undefined;
  if (o.logFile) {
    log = createWriteStream(o.logFile, { flags: 'a' });
    log.write(`\n==== ${new Date().toISOString()} ${command} ${args.join(' ')}\n`);
  }
  const last: string[] = [];
  const onLine = (line: string): void => {
    last.push(line);
    if (last.length > 40) last.shift();
    log?.write(line + '\n');
    o.onLine?.(line);
  };
  if (piped) for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
  let stopping = false;
  const exited = new Promise<Exit>((resolve) => {
    const done = (exit: Exit, note: string): void => {
      live.delete(child);
      // After the last lines: readline may still hold some when 'exit' fires.
      setImmediate(() => log?.end(`\n==== ${o.name} ${note}\n`));
      if (!stopping) o.onUnexpectedExit?.(exit);
      resolve(exit);
    };
    child.once('exit', (code, signal) => done({ code, signal }, `exited code=${code} signal=${signal}`));
    child.once('error', (err) => done({ code: null, signal: null }, `error: ${err.message}`));
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null && live.has(child);
  const kill = (signal: NodeJS.Signals): void => {
    if (running()) child.kill(signal);
  };
  return {
    name: o.name,
    child,
    pid: child.pid,
    exited,
    running,
    tail: () => last.join('\n'),
    kill,
    async stop(graceMs = 10_000) {
      stopping = true;
      kill('SIGCONT');
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}

export interface RestartOptions {
  name: string;
  /** First wait before a restart; it doubles per crash up to maxBackoffMs. Default 1 s. */
  initialBackoffMs?: number;
  /** Default 30 s. */
  maxBackoffMs?: number;
  /** A process that ran this long before it exited starts the backoff afresh. Default 10 min (the kubelet's). */
  resetAfterMs?: number;
  /** This many exits in a row, each less than resetAfterMs after its start: reported as crash-looping. Default 3. */
  crashLoopAfter?: number;
  /** Each unexpected exit, with the restart planned (what a kubelet's events say). */
  onExit?: (e: { exit: Exit; restarts: number; backoffMs: number; crashLooping: boolean; tail: string }) => void;
  /** Each new process (the first one too): its pid. */
  onStart?: (p: Supervised) => void;
}

/**
 * STAND-IN for a kubelet's `restartPolicy: Always` on the process-based local platform
 * (npm start), which has no kubelet: the process `start` makes is restarted whenever it
 * exits without stop() having been called, after a backoff that doubles from 1 s to 30 s
 * and starts afresh once a process stayed up 10 minutes (the kubelet's CrashLoopBackOff
 * and its reset; its cap is 5 minutes, shorter here for a laptop). A process that keeps exiting soon after each start is reported as
 * crash-looping and keeps being retried at the longest backoff; nothing else stops.
 * `start` receives the exit handler to pass to startProcess/startTs.
 */
export class RestartAlways {
  private process: Supervised;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = Date.now();
  private backoffMs: number;
  private quickExits = 0;
  /** Restarts so far (counted when planned, at each unexpected exit). */
  restarts = 0;

  constructor(
    private readonly start: (onUnexpectedExit: (exit: Exit) => void) => Supervised,
    private readonly o: RestartOptions,
  ) {
    this.backoffMs = o.initialBackoffMs ?? 1_000;
    this.process = this.launch();
  }

  get name(): string {
    return this.o.name;
  }
  /** The current process (the last one started). */
  get current(): Supervised {
    return this.process;
  }
  get pid(): number {
    return this.process.pid;
  }
  /** Exited soon after each of its last crashLoopAfter starts. */
  get crashLooping(): boolean {
    return this.quickExits >= (this.o.crashLoopAfter ?? 3);
  }
  /** The current process runs (false while waiting out a backoff). */
  running(): boolean {
    return this.process.running();
  }
  tail(): string {
    return this.process.tail();
  }

  private launch(): Supervised {
    this.startedAt = Date.now();
    const p = this.start((exit) => this.exited(exit));
    this.o.onStart?.(p);
    return p;
  }

  private exited(exit: Exit): void {
    if (this.stopped) return;
    const upMs = Date.now() - this.startedAt;
    if (upMs >= (this.o.resetAfterMs ?? 600_000)) {
      this.backoffMs = this.o.initialBackoffMs ?? 1_000;
      this.quickExits = 0;
    } else {
      this.quickExits++;
    }
    const backoffMs = this.backoffMs;
    this.restarts++;
    this.o.onExit?.({ exit, restarts: this.restarts, backoffMs, crashLooping: this.crashLooping, tail: this.process.tail() });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.process = this.launch();
    }, backoffMs);
    this.backoffMs = Math.min(backoffMs * 2, this.o.maxBackoffMs ?? 30_000);
  }

  /** No more restarts; stop the current process (Supervised.stop). */
  async stop(graceMs?: number): Promise<Exit> {
    this.stopped = true;
    clearTimeout(this.timer);
    return this.process.stop(graceMs);
  }
}

/**
 * A TypeScript entry point of this repository (e.g. services/worker/main.ts) as its own
 * process on this Node, tsx as a loader rather than a wrapper process, so a signal sent to
 * it reaches the service itself.
 */
export function startTs(file: string, o: ProcessOptions): Supervised {
  return startProcess(process.execPath, ['--import', 'tsx', path.join(REPO, file)], o);
}

/**
 * A detached shell that outlives this process only to clean up after it: if this process
 * disappears without stopping its children (SIGKILL, a crashed test runner), it sends each
 * line's signal to each pid listed in `pidFile` ("SIGNAL PID"), then SIGKILLs what is left
 * 10 s later. It exits by itself when the file is removed (a clean stop).
 */
export function spawnWatchdog(pidFile: string): ChildProcess {
  const script = [
    'parent=$1; file=$2',
    'while kill -0 "$parent" 2>/dev/null; do [ -f "$file" ] || exit 0; sleep 1; done',
    '[ -f "$file" ] || exit 0',
    'while read sig pid; do kill -"$sig" "$pid" 2>/dev/null; done < "$file"',
    'sleep 10',
    'while read sig pid; do kill -KILL "$pid" 2>/dev/null; done < "$file"',
    'rm -f "$file"',
  ].join('\n');
  const w = spawn('sh', ['-c', script, 'herald-watchdog', String(process.pid), pidFile], { detached: true, stdio: 'ignore' });
  w.unref();
  return w;
}

/** Whether a process with this pid exists (EPERM: it does, another user's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
