import {
  ActivityFailure, allHandlersFinished, ApplicationFailure, condition, continueAsNew, log, proxyActivities,
  setHandler, upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import type { Activities, UploadOutcome } from '../activities/index.js';
import { FailureType, NON_RETRYABLE_FAILURES, type ThrottleDetails } from './failures.js';
import {
  itemsAvailableSignal, pauseSignal, resumeSignal, statusQuery,
  type ArchiveCustomerInput, type CustomerStatus, type Totals,
} from './messages.js';
import { searchAttributes, type ArchiverState } from './names.js';
import { DEFAULT_PACING_LIMITS, INITIAL_PACING, nextPacing, type BatchOutcome, type PacingLimits } from './pacing.js';

const { fetchBatch, releaseBatch } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

const { uploadItem } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '20s',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    // After this many attempts the item goes back to pending for a later batch, so one stuck item
    // cannot hold its batch forever.
    maximumAttempts: 25,
    nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
  },
});

const DEFAULT_SAFETY_POLL_MS = 15 * 60_000;
const EMPTY_TOTALS: Totals = { archived: 0, failed: 0, rateLimited: 0, batches: 0 };

type PausedState = NonNullable<ArchiveCustomerInput['pausedState']>;

/**
 * One customer's archive pipeline, forever: lease a batch, upload it at most W at a time, let the
 * pacing controller set the next N and W from what happened, sleep when there is nothing to do.
 */
export async function archiveCustomer(input: ArchiveCustomerInput): Promise<void> {
  const { customerId } = input;
  const limits: PacingLimits = { ...DEFAULT_PACING_LIMITS, ...input.limits };
  let pacing = input.pacing ?? INITIAL_PACING;
  const totals: Totals = { ...EMPTY_TOTALS, ...input.totals };
  let state: ArchiverState = input.pausedState ?? 'running';
  let pausedAs: PausedState | undefined = input.pausedState;
  let pauseReason = input.pauseReason;
  let wake = false;
  let backlog = 0;
  let ratePerSecond = 0;
  let lastError: string | undefined;
  let coolingDownUntil: number | undefined;

  setHandler(itemsAvailableSignal, () => { wake = true; });
  setHandler(pauseSignal, (reason) => { pause('paused', reason); });
  setHandler(resumeSignal, () => { pausedAs = undefined; pauseReason = undefined; });
  setHandler(statusQuery, (): CustomerStatus => ({
    customerId, state, backlog, batchSize: pacing.batchSize, concurrency: pacing.concurrency, ratePerSecond,
    totals: { ...totals }, lastError, pauseReason,
    coolingDownUntil: coolingDownUntil === undefined ? undefined : new Date(coolingDownUntil).toISOString(),
  }));

  function pause(as: PausedState, reason: string): void {
    pausedAs = as;
    pauseReason = reason;
  }

  let shownState: ArchiverState | undefined;
  let shownBacklog: number | undefined;
  /** Keeps the Web UI's search attributes current, without an event when nothing changed. */
  function show(next: ArchiverState): void {
    state = next;
    if (shownState === state && shownBacklog === backlog) return;
    upsertSearchAttributes([
      { key: searchAttributes.customerId, value: customerId },
      { key: searchAttributes.state, value: state },
      { key: searchAttributes.backlog, value: backlog },
    ]);
    shownState = state;
    shownBacklog = backlog;
  }

  for (;;) {
    if (pausedAs) {
      log.info('customer paused', { customerId, state: pausedAs, reason: pauseReason });
      show(pausedAs);
      await condition(() => pausedAs === undefined);
      log.info('customer resumed', { customerId });
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof archiveCustomer>({
        ...input, pacing, totals, pauseReason, pausedState: pausedAs,
      });
    }

    wake = false;
    const batch = await fetchBatch(customerId, pacing.batchSize);
    backlog = batch.backlog;
    if (batch.items.length === 0) {
      ratePerSecond = 0;
      show('idle');
      await condition(() => wake || pausedAs !== undefined, input.safetyPollMs ?? DEFAULT_SAFETY_POLL_MS);
      continue;
    }

    // Dropbox's Retry-After still holds this customer back: wait it out visibly, without
    // spending upload attempts on requests that would be refused.
    if (batch.coolDownMs > 0) await coolDown(batch.coolDownMs);
    show('running');
    const started = Date.now();
    const outcome = await uploadBatch(batch.items.map((i) => i.id), batch.leaseToken);
    // Items the batch did not finish (a pause, or retries exhausted) go back to pending.
    if (outcome.unfinished > 0) await releaseBatch(customerId, batch.leaseToken);
    totals.batches += 1;
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    ratePerSecond = Math.round((outcome.archived / seconds) * 100) / 100;

    const decision = nextPacing(pacing, outcome, limits);
    pacing = decision.next;
    if (decision.cooldownMs > 0) await coolDown(decision.cooldownMs);
  }

  /** Pauses the whole customer for `ms` (a pause request ends it early). */
  async function coolDown(ms: number): Promise<void> {
    if (pausedAs) return;
    coolingDownUntil = Date.now() + ms;
    show('cooling-down');
    await condition(() => pausedAs !== undefined, ms);
    coolingDownUntil = undefined;
  }

  /** Uploads one batch with at most W uploads in flight; stops starting new ones on a pause. */
  async function uploadBatch(itemIds: string[], leaseToken: string): Promise<BatchOutcome & { unfinished: number }> {
    const result = { archived: 0, failed: 0, rateLimited: 0, writeContention: 0, maxRetryAfterMs: 0, retryAfterRemainingMs: 0, unfinished: 0 };
    const queue = [...itemIds];
    const inFlight = new Set<Promise<void>>();
    const width = pacing.concurrency;

    const uploadOne = async (itemId: string): Promise<void> => {
      try {
        const done: UploadOutcome = await uploadItem({ customerId, itemId, leaseToken });
        result.rateLimited += done.rateLimited;
        totals.rateLimited += done.rateLimited;
        if (done.status === 'lease-lost') result.unfinished += 1;
        else { result.archived += 1; totals.archived += 1; }
      } catch (err) {
        recordFailure(itemId, err, result);
      }
    };

    while (queue.length > 0 && !pausedAs) {
      while (inFlight.size < width && queue.length > 0 && !pausedAs) {
        const itemId = queue.shift() as string;
        const running: Promise<void> = uploadOne(itemId).finally(() => inFlight.delete(running));
        inFlight.add(running);
      }
      await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    result.unfinished += queue.length;
    return result;
  }

  function recordFailure(itemId: string, err: unknown, result: BatchOutcome & { unfinished: number }): void {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    const type = cause instanceof ApplicationFailure ? cause.type : undefined;
    lastError = `item ${itemId}: ${cause instanceof Error ? cause.message : String(cause)}`;
    log.warn('upload gave up', { customerId, itemId, failureType: type, error: lastError });
    switch (type) {
      case FailureType.ItemRejected:
        result.failed += 1;
        totals.failed += 1;
        return;
      case FailureType.AuthRevoked:
        pause('needs-reauth', lastError);
        break;
      case FailureType.StorageFull:
        pause('storage-full', lastError);
        break;
      case FailureType.RateLimited:
      case FailureType.WriteContention: {
        const details = (cause as ApplicationFailure).details?.[0] as ThrottleDetails | undefined;
        if (type === FailureType.RateLimited) result.rateLimited += 1; else result.writeContention += 1;
        result.maxRetryAfterMs = Math.max(result.maxRetryAfterMs, details?.retryAfterMs ?? 0);
        result.retryAfterRemainingMs = Math.max(result.retryAfterRemainingMs, details?.retryAfterMs ?? 0);
        break;
      }
    }
    result.unfinished += 1;
  }
}
