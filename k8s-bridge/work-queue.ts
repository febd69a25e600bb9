/**
 * A keyed work queue that keeps only the newest item per key (like client-go's
 * workqueue): a burst of updates to one object becomes one call carrying the
 * latest state, one key is never handled by two calls at once (so an older
 * state can never overtake a newer one), and memory is bounded by the number
 * of distinct keys (objects), not by the event rate.
 */

export interface WorkQueueOptions<T> {
  /** Calls running at once across keys. */
  concurrency: number;
  handle(key: string, item: T): Promise<void>;
  /** Called when handle throws; the item is retried after a backoff unless a newer one arrived. */
  onError?(key: string, err: unknown, attempt: number): void;
  retry?: { initialMs: number; maxMs: number };
}

export class CoalescingQueue<T> {
  private readonly pending = new Map<string, T>();
  private readonly ready: string[] = [];
  private readonly readySet = new Set<string>();
  private readonly inFlight = new Set<string>();
  private readonly attempts = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly opts: WorkQueueOptions<T>) {}

  /** Replaces any item still waiting for this key. */
  add(key: string, item: T): void {
    if (this.closed) return;
    this.pending.set(key, item);
    this.attempts.delete(key);
    this.markReady(key);
    this.pump();
  }

  /** Items waiting plus items being handled. */
  get size(): number {
    return this.pending.size + this.inFlight.size;
  }

  /** Resolves when nothing is waiting or running (retries scheduled for later do not count). */
  idle(): Promise<void> {
    if (this.ready.length === 0 && this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking work; waits for calls in flight (not for queued items, which are dropped). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.pending.clear();
    this.ready.length = 0;
    this.readySet.clear();
    await this.idle();
  }

  private markReady(key: string): void {
    if (this.inFlight.has(key) || this.readySet.has(key)) return;
    this.ready.push(key);
    this.readySet.add(key);
  }

  private pump(): void {
    while (!this.closed && this.inFlight.size < this.opts.concurrency && this.ready.length > 0) {
      const key = this.ready.shift() as string;
      this.readySet.delete(key);
      const item = this.pending.get(key);
      if (item === undefined) continue;
      this.pending.delete(key);
      this.inFlight.add(key);
      void this.run(key, item);
    }
    if (this.ready.length === 0 && this.inFlight.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async run(key: string, item: T): Promise<void> {
    try {
      await this.opts.handle(key, item);
      this.attempts.delete(key);
    } catch (err) {
      const attempt = (this.attempts.get(key) ?? 0) + 1;
      this.attempts.set(key, attempt);
      this.opts.onError?.(key, err, attempt);
      if (!this.closed && !this.pending.has(key)) this.retryLater(key, item, attempt);
    } finally {
      this.inFlight.delete(key);
      if (this.pending.has(key)) this.markReady(key);
      this.pump();
    }
  }

  private retryLater(key: string, item: T, attempt: number): void {
    const { initialMs, maxMs } = this.opts.retry ?? { initialMs: 200, maxMs: 30_000 };
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 20)) * (0.5 + Math.random() / 2);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      // A newer item that arrived meanwhile wins; do not overwrite it with the old one.
      if (this.closed || this.pending.has(key) || this.inFlight.has(key)) return;
      const attempts = this.attempts.get(key);
      this.pending.set(key, item);
      this.markReady(key);
      if (attempts !== undefined) this.attempts.set(key, attempts);
      this.pump();
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }
}
