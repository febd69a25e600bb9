/**
 * Token buckets: `burst` calls at once, then `perSecond` on average. Used
 * for the agent API (per agent token) and for discovery (new unknown MACs).
 *
 * Example: burst 60, 20/s. A flood of 1,000 calls in one second gets 60 + 20
 * = 80 through; an agent polling 5 times a second never waits.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = nowMs();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const now = this.nowMs();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Seconds until the next token (for Retry-After), at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((1 - this.tokens) / this.perSecond));
  }
}

/**
 * One bucket per key, the least recently used key forgotten past `maxKeys`
 * (a forgotten key starts with a full bucket again, which only ever lets a
 * caller through sooner, never locks one out).
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly maxKeys = 4096,
    private readonly nowMs: () => number = Date.now,
  ) {}

  bucket(key: string): TokenBucket {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
    } else {
      b = new TokenBucket(this.burst, this.perSecond, this.nowMs);
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    return b;
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }
}
