import { describe, expect, it } from 'vitest';
import { RestartAlways, startProcess, type Exit } from './processes.js';
import { waitFor } from './poll.js';

/** A node process that runs `ms` then exits with `code`. */
const child = (ms: number, code: number) => (onUnexpectedExit: (exit: Exit) => void) =>
  startProcess(process.execPath, ['-e', `setTimeout(() => process.exit(${code}), ${ms})`], { name: 'child', onUnexpectedExit });

describe('RestartAlways (the local stand-in for a kubelet restartPolicy: Always)', () => {
  it('restarts a process that exits, doubling the backoff up to its cap; reports it crash-looping after 3 quick exits; stop() ends it', async () => {
    const exits: { restarts: number; backoffMs: number; crashLooping: boolean; code: number | null }[] = [];
    const pids: number[] = [];
    const r = new RestartAlways(child(0, 3), {
      name: 'crasher',
      initialBackoffMs: 20,
      maxBackoffMs: 80,
      resetAfterMs: 60_000,
      onStart: (p) => pids.push(p.pid),
      onExit: (e) => exits.push({ restarts: e.restarts, backoffMs: e.backoffMs, crashLooping: e.crashLooping, code: e.exit.code }),
    });
    await waitFor('five exits', async () => exits.length >= 5, { timeoutMs: 60_000, everyMs: 20 });
    await r.stop(1_000);
    const seen = exits.slice(0, 5);
    expect(seen.map((e) => e.backoffMs)).toEqual([20, 40, 80, 80, 80]);
    expect(seen.map((e) => e.crashLooping)).toEqual([false, false, true, true, true]);
    expect(seen.map((e) => e.restarts)).toEqual([1, 2, 3, 4, 5]);
    expect(seen.every((e) => e.code === 3)).toBe(true);
    expect(new Set(pids).size).toBe(pids.length); // a new process each time
    const after = pids.length;
    await new Promise((res) => setTimeout(res, 300));
    expect(pids.length).toBe(after); // no restart after stop()
  }, 90_000);

  it('a process that stayed up past resetAfterMs starts the backoff afresh and is not crash-looping', async () => {
    const exits: { backoffMs: number; crashLooping: boolean }[] = [];
    const r = new RestartAlways(child(600, 1), {
      name: 'long-runner',
      initialBackoffMs: 20,
      resetAfterMs: 300,
      onExit: (e) => exits.push({ backoffMs: e.backoffMs, crashLooping: e.crashLooping }),
    });
    await waitFor('three exits', async () => exits.length >= 3, { timeoutMs: 60_000, everyMs: 20 });
    await r.stop(1_000);
    expect(exits.slice(0, 3)).toEqual([
      { backoffMs: 20, crashLooping: false },
      { backoffMs: 20, crashLooping: false },
      { backoffMs: 20, crashLooping: false },
    ]);
  }, 90_000);

  it('stop() stops the running process and it is not restarted', async () => {
    let starts = 0;
    const r = new RestartAlways(child(60_000, 0), { name: 'sleeper', initialBackoffMs: 10, onStart: () => starts++ });
    expect(r.running()).toBe(true);
    const exit = await r.stop(2_000);
    expect(exit.signal).toBe('SIGTERM');
    await new Promise((res) => setTimeout(res, 100));
    expect(starts).toBe(1);
    expect(r.restarts).toBe(0);
  });
});
