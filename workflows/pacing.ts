/**
 * The pacing controller: from the outcomes of one batch, decides how many items the next batch
 * leases (N), how many uploads run at once (W), and whether the customer cools down first.
 * Pure and deterministic, so it runs inside the workflow and its state survives crashes and
 * continue-as-new as plain workflow state.
 */

export interface PacingLimits {
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

export const DEFAULT_PACING_LIMITS: PacingLimits = {
  minBatchSize: 1,
  maxBatchSize: 200,
  minConcurrency: 1,
  maxConcurrency: 16,
  batchSizeStep: 10,
  concurrencyStep: 1,
  decreaseFactor: 0.5,
};

export interface PacingState {
  batchSize: number;
  concurrency: number;
}

export const INITIAL_PACING: PacingState = { batchSize: 20, concurrency: 4 };

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
  next: PacingState;
  /** How long the whole customer waits before the next batch, in ms. */
  cooldownMs: number;
}

/**
 * Additive increase, multiplicative decrease. A batch without throttling grows N and W by a
 * step; a batch with any 429 shrinks both, so the customer backs off before Dropbox has to
 * throttle it again. Write contention only narrows W: it is a lock on the account, not a rate.
 */
export function nextPacing(state: PacingState, outcome: BatchOutcome, limits: PacingLimits = DEFAULT_PACING_LIMITS): PacingDecision {
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

/** Checks limits supplied by an operator or a workflow input; throws naming the bad field. */
export function validatePacingLimits(limits: PacingLimits): void {
  for (const [key, value] of Object.entries(limits)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new Error(`pacing limit ${key} must be a positive number, got ${String(value)}`);
    }
  }
  if (limits.minBatchSize > limits.maxBatchSize) throw new Error('pacing limit minBatchSize exceeds maxBatchSize');
  if (limits.minConcurrency > limits.maxConcurrency) throw new Error('pacing limit minConcurrency exceeds maxConcurrency');
  if (limits.decreaseFactor >= 1) throw new Error('pacing limit decreaseFactor must be below 1');
}
