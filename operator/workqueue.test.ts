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

  it('hands out high-priority keys before normal ones, promotes a waiting key, and keeps a re-add during processing at its priority', async () => {
    const q = new WorkQueue();
    q.add('refresh-1');
    q.add('refresh-2');
    q.add('new-1', 'high');
    q.add('refresh-2', 'high'); // promoted: a spec change on a Broadcast waiting for its refresh
    q.add('new-1'); // a later normal add does not demote it
    q.add('refresh-3');
    expect(q.depth).toBe(4);
    const order = [await q.get(), await q.get(), await q.get(), await q.get()];
    expect(order).toEqual(['new-1', 'refresh-2', 'refresh-1', 'refresh-3']);

    // A key added high while being processed comes back ahead of normal keys.
    q.add('n');
    q.add('busy');
    q.done('refresh-1');
    q.done('refresh-3');
    q.done('new-1');
    q.done('refresh-2');
    q.add('x');
    const busy = await q.get(); // 'n'
    expect(busy).toBe('n');
    q.add('n', 'high');
    q.done('n');
    expect(await q.get()).toBe('n');
    expect(await q.get()).toBe('busy');
    q.shutdown();
  });
});
