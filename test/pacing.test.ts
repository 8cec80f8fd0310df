import { describe, expect, it } from 'vitest';
import { DEFAULT_PACING_LIMITS, nextPacing, validatePacingLimits, type BatchOutcome } from '../workflows/pacing.js';

const clean: BatchOutcome = { archived: 20, failed: 0, rateLimited: 0, writeContention: 0, maxRetryAfterMs: 0, retryAfterRemainingMs: 0 };

describe('pacing controller', () => {
  it('grows N and W additively after a batch without 429s', () => {
    expect(nextPacing({ batchSize: 20, concurrency: 4 }, clean)).toEqual({ next: { batchSize: 30, concurrency: 5 }, cooldownMs: 0 });
  });

  it('halves N and W after a batch with a 429, and cools down for what is left of Retry-After', () => {
    const d = nextPacing({ batchSize: 40, concurrency: 8 }, { ...clean, rateLimited: 3, maxRetryAfterMs: 2000, retryAfterRemainingMs: 1500 });
    expect(d).toEqual({ next: { batchSize: 20, concurrency: 4 }, cooldownMs: 1500 });
  });

  it('narrows only W on write contention', () => {
    const d = nextPacing({ batchSize: 40, concurrency: 8 }, { ...clean, writeContention: 2 });
    expect(d.next).toEqual({ batchSize: 40, concurrency: 4 });
  });

  it('stays within the configured bounds', () => {
    const limits = { ...DEFAULT_PACING_LIMITS, maxBatchSize: 25, maxConcurrency: 5, minBatchSize: 5, minConcurrency: 2 };
    expect(nextPacing({ batchSize: 20, concurrency: 5 }, clean, limits).next).toEqual({ batchSize: 25, concurrency: 5 });
    expect(nextPacing({ batchSize: 6, concurrency: 2 }, { ...clean, rateLimited: 1 }, limits).next).toEqual({ batchSize: 5, concurrency: 2 });
  });

  it('does not grow on a batch that archived nothing', () => {
    expect(nextPacing({ batchSize: 20, concurrency: 4 }, { ...clean, archived: 0, failed: 20 }).next).toEqual({ batchSize: 20, concurrency: 4 });
  });

  it('converges under a steady stream of alternating outcomes instead of running away', () => {
    let state = { batchSize: 20, concurrency: 4 };
    for (let i = 0; i < 100; i++) state = nextPacing(state, i % 3 === 2 ? { ...clean, rateLimited: 1 } : clean).next;
    expect(state.batchSize).toBeLessThanOrEqual(DEFAULT_PACING_LIMITS.maxBatchSize);
    expect(state.concurrency).toBeGreaterThanOrEqual(1);
  });

  it('rejects limits that cannot work, naming the field', () => {
    expect(() => validatePacingLimits({ ...DEFAULT_PACING_LIMITS, maxConcurrency: 0 })).toThrow(/maxConcurrency/);
    expect(() => validatePacingLimits({ ...DEFAULT_PACING_LIMITS, minBatchSize: 500 })).toThrow(/minBatchSize exceeds/);
    expect(() => validatePacingLimits({ ...DEFAULT_PACING_LIMITS, decreaseFactor: 1.5 })).toThrow(/decreaseFactor/);
  });
});
