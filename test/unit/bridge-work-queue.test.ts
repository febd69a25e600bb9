import { setTimeout as sleep } from 'node:timers/promises';
import { CoalescingQueue } from '../../k8s-bridge/work-queue';

describe('CoalescingQueue', () => {
  it('coalesces a burst on one key into the latest item, never delivering an older one after a newer one', async () => {
    const seen: number[] = [];
    const q = new CoalescingQueue<number>({
      concurrency: 4,
      handle: async (_k, v) => {
        seen.push(v);
        await sleep(20);
      },
    });
    for (let i = 1; i <= 100; i++) q.add('a', i);
    await sleep(5);
    for (let i = 101; i <= 200; i++) q.add('a', i);
    await q.idle();
    expect(seen.length).toBeLessThanOrEqual(3);
    expect(seen[seen.length - 1]).toBe(200);
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
  });

  it('runs one call per key at a time but different keys in parallel, up to the concurrency', async () => {
    let running = 0;
    let peak = 0;
    const perKey = new Map<string, number>();
    const q = new CoalescingQueue<number>({
      concurrency: 3,
      handle: async (k) => {
        running++;
        perKey.set(k, (perKey.get(k) ?? 0) + 1);
        expect(perKey.get(k)).toBe(1);
        peak = Math.max(peak, running);
        await sleep(10);
        perKey.set(k, (perKey.get(k) ?? 0) - 1);
        running--;
      },
    });
    for (let i = 0; i < 10; i++) for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k, i);
    await q.idle();
    expect(peak).toBe(3);
  });

  it('retries a failed item with backoff unless a newer one arrived', async () => {
    const calls: number[] = [];
    let fail = 2;
    const q = new CoalescingQueue<number>({
      concurrency: 1,
      retry: { initialMs: 5, maxMs: 20 },
      handle: async (_k, v) => {
        calls.push(v);
        if (fail-- > 0) throw new Error('temporal unavailable');
      },
    });
    q.add('a', 1);
    for (let i = 0; i < 50 && calls.length < 3; i++) await sleep(10);
    expect(calls).toEqual([1, 1, 1]);
    await q.close();
  });
});
