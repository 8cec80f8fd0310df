import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { DATABASE_RETRY_MS, atActivityBoundary } from '../../activities/failure.js';
import { PostgresError } from '../../db/errors.js';
import { FailureType } from '../../workflows/failures.js';

describe('the activity boundary', () => {
  it('retries an activity that lost Postgres every second, not on the backoff that grows to a minute', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const { fetchBatch } = atActivityBoundary({
      fetchBatch: () => Promise.reject(new PostgresError(refused)),
    });
    const failure = await fetchBatch().catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({
      type: FailureType.DatabaseUnavailable,
      nonRetryable: false,
      nextRetryDelay: DATABASE_RETRY_MS,
      message: expect.stringMatching(/^Postgres failed: connect ECONNREFUSED/),
    });
  });
});
