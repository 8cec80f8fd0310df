// Failures inside the activities are plain errors typed by the taxonomy of workflows/failures.ts;
// they become Temporal's ApplicationFailure in one place, where createActivities hands the
// activities to the worker.

import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import { PostgresError } from '../db/errors.js';
import { FailureType, NON_RETRYABLE_FAILURES, type ThrottleDetails } from '../workflows/failures.js';

/** A failure mapped onto the taxonomy; `message` is safe to log (it never carries tokens). */
export interface ClassifiedFailure {
  type: FailureType;
  message: string;
  /** For RateLimited and WriteContention: how long Dropbox asked us to wait. */
  retryAfterMs?: number;
  /** For Transient (from the item's consecutive failures) and DatabaseUnavailable: how long to wait before the next attempt. */
  retryDelayMs?: number;
}

/**
 * How soon an activity that could not use Postgres is tried again, every time: Postgres that is
 * restarting is back within seconds, and backing off (to a minute by the retry policy) would leave
 * the customer idle long after it is.
 */
export const DATABASE_RETRY_MS = 1_000;

/** Postgres failed under an activity: DatabaseUnavailable, retried every DATABASE_RETRY_MS. */
export function databaseUnavailable(err: PostgresError): ClassifiedFailure {
  return { type: FailureType.DatabaseUnavailable, message: err.message, retryDelayMs: DATABASE_RETRY_MS };
}

/**
 * A failure an activity ends with, already typed by the taxonomy (a source that is gone, a
 * customer cooling down, an upload Dropbox refused). The activity boundary turns it into the
 * ApplicationFailure of toApplicationFailure.
 */
export class TypedFailure extends Error {
  override name = 'TypedFailure';
  constructor(readonly failure: ClassifiedFailure) {
    super(failure.message);
  }

  get type(): FailureType {
    return this.failure.type;
  }
}

/** The ApplicationFailure Temporal's retry policy acts on: Retry-After becomes nextRetryDelay. */
export function toApplicationFailure(failure: ClassifiedFailure): ApplicationFailure {
  const wait = failure.retryAfterMs;
  const details: ThrottleDetails[] = wait !== undefined ? [{ retryAfterMs: wait }] : [];
  return ApplicationFailure.create({
    type: failure.type,
    message: failure.message,
    nonRetryable: NON_RETRYABLE_FAILURES.includes(failure.type),
    details,
    ...(wait !== undefined ? { nextRetryDelay: wait } : {}),
    ...(wait === undefined && failure.retryDelayMs !== undefined ? { nextRetryDelay: failure.retryDelayMs } : {}),
    // Throttling is Dropbox working as designed, not a fault: keep it out of error logs and metrics.
    ...(failure.type === FailureType.RateLimited || failure.type === FailureType.WriteContention
      ? { category: ApplicationFailureCategory.BENIGN }
      : {}),
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any activity signature
type Activity = (...args: any[]) => Promise<unknown>;

/**
 * The activity boundary: each activity, so that a TypedFailure leaves it as its ApplicationFailure
 * and a Postgres failure as DatabaseUnavailable. Other errors pass through unchanged.
 */
export function atActivityBoundary<T extends Record<string, Activity>>(activities: T): T {
  const bounded = Object.entries(activities).map(([name, activity]) => [
    name,
    async (...args: unknown[]) => {
      try {
        return await activity(...args);
      } catch (err) {
        if (err instanceof TypedFailure) throw toApplicationFailure(err.failure);
        if (err instanceof PostgresError) throw toApplicationFailure(databaseUnavailable(err));
        throw err;
      }
    },
  ]);
  return Object.fromEntries(bounded) as T;
}
