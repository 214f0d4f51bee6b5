import { describe, expect, it } from 'vitest';
import { WorkQueue } from './workqueue.js';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('coalesces a key added many times into one pending item', async () => {
    const q = new WorkQueue();
    q.add('default/a');
    q.add('default/a');
    q.add('default/b');
    q.add('default/a');
    expect(q.depth).toBe(2);
    expect(await q.get()).toBe('default/a');
    expect(await q.get()).toBe('default/b');
    expect(q.depth).toBe(0);
  });

  it('never hands a key to two workers at once; an add during processing runs once more after', async () => {
    const q = new WorkQueue();
    q.add('k');
    const first = await q.get();
    q.add('k'); // an event while k is being reconciled
    q.add('k');
    expect(q.depth).toBe(0); // held back, not handed to a second worker
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick();
    expect(second).toBeUndefined();
    q.done(first!);
    await tick();
    expect(second).toBe('k');
  });

  it('addAfter wakes a key later and keeps the earliest wake-up', async () => {
    const q = new WorkQueue();
    q.addAfter('k', 1_000);
    q.addAfter('k', 20);
    q.addAfter('k', 5_000);
    expect(q.depth).toBe(0);
    await tick(60);
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('k');
    q.shutdown();
  });

  it('backs off failures exponentially up to a cap, and forget resets it', () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1_000 });
    const delays = Array.from({ length: 6 }, () => q.addRateLimited('k'));
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(q.retries('k')).toBe(6);
    q.forget('k');
    expect(q.addRateLimited('k')).toBe(100);
    q.shutdown();
  });

  it('reports its depth and releases waiting workers on shutdown', async () => {
    const depths: number[] = [];
    const q = new WorkQueue({ onDepth: (n) => depths.push(n) });
    q.add('a');
    q.add('b');
    await q.get();
    expect(depths).toEqual([1, 2, 1]);
    await q.get();
    const waiting = q.get();
    q.shutdown();
    expect(await waiting).toBeUndefined();
    q.add('c');
    expect(await q.get()).toBeUndefined();
  });
});
