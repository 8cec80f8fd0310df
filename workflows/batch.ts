import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  sleep,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { ItemEnd, Throttles } from '../activities/types.js';
import type { StagedItem } from '../activities/session-commit.js';
import { FailureType, ITEM_FAILURES, NON_RETRYABLE_FAILURES } from './failures.js';
import type { UploadPacer } from './pacing/workflow-pacer.js';

const uploadRetry = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  // After this many attempts the item goes back to pending for a later batch, so one stuck item
  // cannot hold its batch forever.
  maximumAttempts: 25,
  nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
};

const uploadOptions: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  // A killed worker's uploads are retried elsewhere this soon; activities heartbeat every 2 s.
  heartbeatTimeout: '8s',
  retry: uploadRetry,
};
const { uploadItem, stageItem } = proxyActivities<Activities>(uploadOptions);

const commitOptions: ActivityOptions = { startToCloseTimeout: '5 minutes', retry: uploadRetry };
const { commitSessions } = proxyActivities<Activities>(commitOptions);

/** How items reach Dropbox: one files/upload each, or staged sessions committed with finish_batch_v2. */
export type CommitMode = 'single' | 'sessions';

/** How many times a batch commit is repeated for entries Dropbox could not take yet. */
const MAX_COMMIT_ROUNDS = 10;

export interface BatchRun {
  customerId: string;
  leaseToken: string;
  itemIds: string[];
  mode: CommitMode;
  /** True once the customer is paused: start nothing new. */
  stopped: () => boolean;
  /** Gives each upload its start time and learns from its outcome. */
  pacer: UploadPacer;
  /** Called as items finish, with how many of the batch are done and what they added up to so far. */
  onProgress: (done: number, sofar: Readonly<BatchResult>) => void;
}

/** What one batch's uploads added up to. */
export interface BatchOutcome {
  archived: number;
  failed: number;
  /** Items that kept failing transiently and now wait on their rows for a retry time. */
  deferred: number;
  /** Upload requests answered 429 `too_many_requests` (or plain-text 429). */
  rateLimited: number;
  /** Upload requests answered `too_many_write_operations`. */
  writeContention: number;
}

/** A batch's outcome, and what the customer must do next. */
export interface BatchResult extends BatchOutcome {
  /** Items neither archived nor failed; their leases must be released. */
  unfinished: number;
  lastError: string | undefined;
  /** Set when the customer must pause: its token is revoked or its Dropbox is full. */
  pauseAs: { state: 'needs-reauth' | 'storage-full'; reason: string } | undefined;
}

/** Runs one leased batch in the chosen mode. */
export async function runBatch(run: BatchRun): Promise<BatchResult> {
  const result: BatchResult = {
    archived: 0,
    failed: 0,
    deferred: 0,
    rateLimited: 0,
    writeContention: 0,
    unfinished: 0,
    lastError: undefined,
    pauseAs: undefined,
  };
  const stopped = () => run.stopped() || result.pauseAs !== undefined;
  const parallel = (itemIds: string[], work: (itemId: string, startAt: number) => Promise<ItemThrottles>) =>
    inParallel(itemIds, run.pacer, stopped, result, (done) => run.onProgress(done, result), work);
  // Temporal's task queue hands out tasks fairly across customers when the worker is saturated
  // (with fairness enabled on the server), so a huge backlog cannot starve the others.
  const fair = { priority: { fairnessKey: run.customerId } };
  const request = (itemId: string, startAt: number) => ({
    customerId: run.customerId,
    itemId,
    leaseToken: run.leaseToken,
    startAt,
  });
  if (run.mode === 'single') {
    await parallel(run.itemIds, async (itemId, startAt) => {
      const done = await uploadItem.executeWithOptions(
        { ...uploadOptions, ...fair, summary: `upload item ${itemId}` },
        [request(itemId, startAt)],
      );
      result.rateLimited += done.rateLimited;
      countEnd(itemId, done, result);
      return { ...done, accepted: done.status === 'archived' };
    });
    return result;
  }

  let toStage = run.itemIds;
  for (let round = 0; round < MAX_COMMIT_ROUNDS && toStage.length > 0 && !stopped(); round++) {
    const staged: StagedItem[] = [];
    await parallel(toStage, async (itemId, startAt) => {
      const done = await stageItem.executeWithOptions(
        { ...uploadOptions, ...fair, summary: `stage item ${itemId} for a batch commit` },
        [request(itemId, startAt)],
      );
      result.rateLimited += done.rateLimited;
      if (done.status === 'staged') staged.push(done.staged);
      else countEnd(itemId, done, result);
      return { ...done, accepted: done.status === 'staged' };
    });
    toStage = [];
    let toCommit = staged.sort((a, b) => Number(BigInt(a.itemId) - BigInt(b.itemId)));
    // One commit at a time for this customer: Dropbox serialises writes per account anyway.
    for (let attempt = 0; toCommit.length > 0 && attempt < MAX_COMMIT_ROUNDS && !stopped(); attempt++) {
      try {
        const committed = await commitSessions.executeWithOptions(
          { ...commitOptions, ...fair, summary: `commit ${toCommit.length} items with finish_batch_v2` },
          [run.customerId, run.leaseToken, toCommit],
        );
        result.archived += committed.archived.length;
        result.failed += committed.rejected.length;
        toStage.push(...committed.restage);
        if (committed.storageFull) {
          result.pauseAs = {
            state: 'storage-full',
            reason: 'Dropbox answered insufficient_space when committing a batch',
          };
          result.lastError = result.pauseAs.reason;
        }
        toCommit = committed.retry;
        if (toCommit.length > 0) {
          result.writeContention += toCommit.length;
          await sleep(committed.retryAfterMs);
        }
      } catch (err) {
        recordFailure(`batch of ${toCommit.length}`, err, result);
        result.unfinished += toCommit.length;
        toCommit = [];
      }
    }
    result.unfinished += toCommit.length;
  }
  result.unfinished += toStage.length;
  return result;
}

/** What one item's uploads met, for the pacer. */
type ItemThrottles = Throttles & { accepted: boolean };

/**
 * Runs `work` over `itemIds` with at most W in flight, stopping new starts once `stopped()`. Each
 * upload gets its start time from the pacer and reports its outcome back to it.
 */
async function inParallel(
  itemIds: string[],
  pacer: UploadPacer,
  stopped: () => boolean,
  result: BatchResult,
  progress: (done: number) => void,
  work: (itemId: string, startAt: number) => Promise<ItemThrottles>,
): Promise<void> {
  const queue = [...itemIds];
  const inFlight = new Set<Promise<void>>();
  let done = 0;
  while (queue.length > 0 && !stopped()) {
    while (inFlight.size < pacer.width() && queue.length > 0 && !stopped()) {
      const itemId = queue.shift() as string;
      const slot = pacer.slot();
      const running: Promise<void> = work(itemId, slot.startAt)
        .then((t) => {
          pacer.done(slot, {
            accepted: t.accepted,
            rateLimited: t.rateLimited,
            writeContention: t.writeContention,
            clean: t.attempts === 1,
          });
        })
        .catch((err: unknown) => {
          const type = recordFailure(`item ${itemId}`, err, result);
          if (!ITEM_FAILURES.includes(type as FailureType)) result.unfinished += 1;
          pacer.done(slot, {
            accepted: false,
            clean: false,
            rateLimited: type === FailureType.RateLimited ? 1 : 0,
            writeContention: type === FailureType.WriteContention ? 1 : 0,
          });
        })
        .finally(() => {
          inFlight.delete(running);
          progress((done += 1));
        });
      inFlight.add(running);
    }
    if (inFlight.size > 0) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  result.unfinished += queue.length;
}

/** Folds how an item's upload ended into the batch result. */
function countEnd(itemId: string, done: { status: ItemEnd; error?: string | undefined }, result: BatchResult): void {
  switch (done.status) {
    case 'archived':
    case 'already-archived':
      result.archived += 1;
      break;
    case 'lease-lost':
      result.unfinished += 1;
      break;
    case 'deferred':
      result.deferred += 1;
      result.lastError = `item ${itemId}: ${done.error ?? 'failed; waiting to retry'}`;
      break;
    case 'failed':
      result.failed += 1;
      result.lastError = `item ${itemId}: ${done.error ?? 'failed'}`;
      break;
  }
}

/** Folds an activity's final failure into the batch result; returns its taxonomy type. */
function recordFailure(what: string, err: unknown, result: BatchResult): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
  result.lastError = `${what}: ${cause instanceof Error ? cause.message : String(cause)}`;
  switch (type) {
    // Activities now return item failures; earlier ones threw them, as replayed histories show.
    case FailureType.ItemRejected:
    case FailureType.SourceGone:
      result.failed += 1;
      break;
    case FailureType.AuthRevoked:
      result.pauseAs = { state: 'needs-reauth', reason: result.lastError };
      break;
    case FailureType.StorageFull:
      result.pauseAs = { state: 'storage-full', reason: result.lastError };
      break;
    case FailureType.RateLimited:
      result.rateLimited += 1;
      break;
    case FailureType.WriteContention:
      result.writeContention += 1;
      break;
  }
  return type;
}
