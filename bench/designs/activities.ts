/** The real activities, run outside Temporal for the baselines (same I/O, same emulator). */
import { ApplicationFailure } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities/index.js';
import type { LeasedBatch } from '../../activities/types.js';
import { loadSecretKeyring } from '../../workers/config.js';
import { NON_RETRYABLE_FAILURES } from '../../workflows/failures.js';
import type { DesignContext } from './types.js';

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export type UploadResult = { ok: true } | { ok: false; retryable: boolean; retryAfterMs: number | undefined };

export interface BaselineActivities {
  fetchBatch(customerId: string, limit: number): Promise<LeasedBatch>;
  /** One upload attempt; never throws for Dropbox/activity failures. */
  upload(customerId: string, itemId: string, leaseToken: string): Promise<UploadResult>;
}

export function baselineActivities(ctx: DesignContext): BaselineActivities {
  const acts = createActivities({ db: ctx.db, keyring: loadSecretKeyring(), dropboxApiBase: ctx.stack.emulator.url });
  const env = new MockActivityEnvironment({ attempt: 1 }, { logger: silent });
  return {
    fetchBatch: (customerId, limit) => env.run(acts.fetchBatch, customerId, limit),
    async upload(customerId, itemId, leaseToken) {
      try {
        await env.run(acts.uploadItem, { customerId, itemId, leaseToken });
        return { ok: true };
      } catch (err) {
        if (err instanceof ApplicationFailure) {
          const retryable = !err.nonRetryable && !NON_RETRYABLE_FAILURES.includes(err.type as never);
          return {
            ok: false,
            retryable,
            retryAfterMs: err.nextRetryDelay === undefined ? undefined : msToNumber(err.nextRetryDelay),
          };
        }
        return { ok: false, retryable: true, retryAfterMs: undefined };
      }
    },
  };
}
