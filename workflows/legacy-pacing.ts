/**
 * The first pacing controller (additive increase, multiplicative decrease of N and W per batch).
 * Workflows that started before the RATE_BASED_PACING patch keep it until they continue as new,
 * so their histories replay; new runs use the rate controller in pacing.ts. Delete this file
 * with the patch's deprecation, once no such run is left.
 */

export interface LegacyPacingLimits {
  minBatchSize: number;
  maxBatchSize: number;
  minConcurrency: number;
  maxConcurrency: number;
  /** Added to N after a batch with no 429s. */
  batchSizeStep: number;
  /** Added to W after a batch with no 429s. */
  concurrencyStep: number;
  /** N and W are multiplied by this after a batch with 429s. */
  decreaseFactor: number;
}

export const LEGACY_PACING_LIMITS: LegacyPacingLimits = {
  minBatchSize: 1,
  maxBatchSize: 200,
  minConcurrency: 1,
  maxConcurrency: 16,
  batchSizeStep: 10,
  concurrencyStep: 1,
  decreaseFactor: 0.5,
};

export interface LegacyPacingState {
  batchSize: number;
  concurrency: number;
}

export const LEGACY_INITIAL_PACING: LegacyPacingState = { batchSize: 20, concurrency: 4 };

/** What one batch's uploads reported. */
export interface BatchOutcome {
  archived: number;
  failed: number;
  /** Upload requests answered 429 `too_many_requests` (or plain-text 429). */
  rateLimited: number;
  /** Upload requests answered `too_many_write_operations`. */
  writeContention: number;
  /** Longest Retry-After seen in the batch, in ms; 0 if none. */
  maxRetryAfterMs: number;
  /** How much of that Retry-After is still ahead when the batch ends, in ms. */
  retryAfterRemainingMs: number;
}

export interface PacingDecision {
  next: LegacyPacingState;
  /** How long the whole customer waits before the next batch, in ms. */
  cooldownMs: number;
}

/**
 * Additive increase, multiplicative decrease. A batch without throttling grows N and W by a
 * step; a batch with any 429 shrinks both, so the customer backs off before Dropbox has to
 * throttle it again. Write contention only narrows W: it is a lock on the account, not a rate.
 */
export function legacyNextPacing(state: LegacyPacingState, outcome: BatchOutcome, limits: LegacyPacingLimits = LEGACY_PACING_LIMITS): PacingDecision {
  const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.round(v)));
  const batch = (v: number): number => clamp(v, limits.minBatchSize, limits.maxBatchSize);
  const conc = (v: number): number => clamp(v, limits.minConcurrency, limits.maxConcurrency);

  if (outcome.rateLimited > 0) {
    return {
      next: {
        batchSize: batch(Math.floor(state.batchSize * limits.decreaseFactor)),
        concurrency: conc(Math.floor(state.concurrency * limits.decreaseFactor)),
      },
      cooldownMs: Math.max(0, outcome.retryAfterRemainingMs),
    };
  }
  if (outcome.writeContention > 0) {
    return {
      next: { batchSize: batch(state.batchSize), concurrency: conc(Math.floor(state.concurrency * limits.decreaseFactor)) },
      cooldownMs: Math.max(0, outcome.retryAfterRemainingMs),
    };
  }
  if (outcome.archived === 0) return { next: { batchSize: batch(state.batchSize), concurrency: conc(state.concurrency) }, cooldownMs: 0 };
  return {
    next: {
      batchSize: batch(state.batchSize + limits.batchSizeStep),
      concurrency: conc(state.concurrency + limits.concurrencyStep),
    },
    cooldownMs: 0,
  };
}
