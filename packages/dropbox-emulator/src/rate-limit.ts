export type TakeResult = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  refilledAtMs: number;
  rate: number;
  capacity: number;
}

/** Throws unless `rate` is unset or a positive finite number. */
export function checkRate(rate: number | undefined): void {
  if (rate === undefined) return;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
    throw new RangeError(`uploadsPerSecond must be a positive number, got ${String(rate)}`);
  }
}

/**
 * Token bucket per key (the bearer token, as Dropbox limits per access token). Capacity defaults
 * to the rate (at least 1) so a client may burst one second's worth. A refused request takes
 * nothing from the bucket: the emulator models a limit a well-behaved client can recover from by
 * waiting `Retry-After`, not one that punishes retries.
 */
export class TokenBucketLimiter {
  private rate: number | undefined;
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    rate: number | undefined,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    checkRate(rate);
    this.rate = rate;
  }

  get uploadsPerSecond(): number | undefined {
    return this.rate;
  }

  /** A new rate starts every bucket full, so the change takes effect at once. */
  setRate(rate: number | undefined): void {
    checkRate(rate);
    this.rate = rate;
    this.buckets.clear();
  }

  /**
   * `rate`/`burst` override the global rate for this key (per-account settings); null = unlimited.
   * A bucket whose limits changed starts full, like after setRate.
   */
  take(key: string, rate: number | null | undefined = this.rate, burst?: number | null): TakeResult {
    if (rate === undefined || rate === null) return { ok: true };
    const capacity = burst ?? Math.max(1, rate);
    const now = this.nowMs();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.rate !== rate || bucket.capacity !== capacity) {
      bucket = { tokens: capacity, refilledAtMs: now, rate, capacity };
      this.buckets.set(key, bucket);
    } else {
      const elapsedSeconds = Math.max(0, now - bucket.refilledAtMs) / 1000;
      bucket.tokens = Math.min(capacity, bucket.tokens + elapsedSeconds * rate);
      bucket.refilledAtMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    // Retry-After is whole seconds on the wire; rounding up keeps an obedient client from
    // arriving early and being refused again.
    const waitSeconds = (1 - bucket.tokens) / rate;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitSeconds)) };
  }
}
