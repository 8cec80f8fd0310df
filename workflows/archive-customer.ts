import * as wf from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { MAX_SLICE_ITEMS, runBatch, STRAGGLER_FLOOR_BEFORE_PATCH_MS, STRAGGLER_FLOOR_MS, Stragglers } from './batch.js';
import { CustomerState, quotaResetAfter } from './customer-state.js';
import { NON_RETRYABLE_FAILURES } from './failures.js';
import { LiveLane } from './live-lane.js';
import * as messages from './messages.js';
import { WorkflowPacer } from './pacing/workflow-pacer.js';
import { WebUiView } from './web-ui.js';

const { fetchBatch, releaseBatch } = wf.proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});
const { verifyDropbox } = wf.proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

const DEFAULT_SAFETY_POLL_MS = 15 * 60_000;
/** Patch: resuming a needs-reauth customer first checks its credentials, so a premature resume fails nothing. */
export const VERIFY_CREDENTIALS_ON_RESUME = 'verify-credentials-on-resume';
/**
 * Patch: items whose sources fail do not slow the good ones down. The pacer learns from Dropbox's
 * answers only (see WorkflowPacer), and an upload is a straggler after half a second, not 2 s.
 */
export const PACE_PAST_BAD_SOURCES = 'pace-past-bad-sources';
/** Patch: a fresh run starts at the limit its customer's earlier runs learned, kept in Postgres (see WorkflowPacer.warmStart). */
export const WARM_START = 'warm-start';
/** Patch: each upload activity carries a slice of the batch's items, not one (see BatchRun.slices). */
export const UPLOAD_SLICES = 'upload-slices';
/** Patch: items a 429 handed back are planned after the other slice's start times (see BatchRun.replanPastOtherSlices). */
export const REPLAN_PAST_OTHER_SLICES = 'replan-past-other-slices';
/**
 * Patch: a straggler that hands items back to pending wakes an idle customer. An idle customer
 * once looked at its queue every second (a NULL retry time read as 0), which hid that nothing did.
 */
export const WAKE_ON_RETURNED_ITEMS = 'wake-on-returned-items';
// Patch QUOTA_EXCEEDED_PAUSE (quota-exceeded-pause) lives in batch.ts, where the failure arrives.
/** Patch: uploads far slower than usual no longer hold back W or their batch (see BatchRun.stragglers). */
export const DETACH_STRAGGLERS = 'detach-stragglers';
/**
 * Patch: continue as new once the history reaches maxHistoryEvents, not only when Temporal
 * suggests it, and only between stragglers (see timeToContinueAsNew).
 */
export const SHORT_HISTORIES = 'short-histories';
/**
 * Patch: live items signalled while a batch runs are leased and uploaded at once beside it (see
 * LiveLane), instead of waiting for the batch to end.
 */
export const LIVE_LANE = 'live-lane';
/**
 * Patch: one 429 stays one 429 for the whole customer. After a slice reports a 429, the batch
 * plans no new slice until the customer's other slices in flight have reported, and a slice
 * waiting out a Retry-After is not a straggler (see BatchRun.awaitTheCut).
 */
export const QUIET_PROBES = 'quiet-probes';
/**
 * Patch: a probe measures the limit net of the bucket's refill, and one that confirms the
 * estimate holds the rate just under it for a while (ControllerOptions.holdConfirmedLimit).
 */
export const HOLD_CONFIRMED_LIMIT = 'hold-confirmed-limit';
/**
 * Patch: live items that a live-lane run hands back unsent (a 429 came before their start time)
 * are leased again by another run at once, instead of waiting for the backfill batch to end.
 */
export const RETRY_RETURNED_LIVE_ITEMS = 'retry-returned-live-items';
/**
 * A worker that takes over a customer whose worker died replays its history first, and the
 * customer uploads nothing meanwhile: about 1.4 ms per event on a loaded 2-core machine (a
 * 1,950-event history took 2.7 s in the chaos suite). Temporal suggests continuing as new only at
 * about 4,000 events; at this many a takeover costs at most about a second.
 */
const DEFAULT_MAX_HISTORY_EVENTS = 1_000;
/** Past this, a run continues as new even if it must wait for stragglers; Temporal warns at 10,000. */
const FORCE_CONTINUE_AS_NEW_EVENTS = 8_000;

/**
 * Whether this run should continue as new now. A run continues as new only once its stragglers
 * have ended, and one may last up to its deadline (a source's 10 s, a Dropbox request's 30 s)
 * during which the customer would upload nothing; so while one runs the run goes on, unless its
 * history is nearing Temporal's limits.
 */
function timeToContinueAsNew(input: messages.ArchiveCustomerInput, stragglers: Stragglers): boolean {
  const info = wf.workflowInfo();
  const due =
    info.continueAsNewSuggested || info.historyLength >= (input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS);
  if (!due) return false;
  if (!wf.patched(SHORT_HISTORIES)) return info.continueAsNewSuggested;
  return stragglers.count() === 0 || info.historyLength >= FORCE_CONTINUE_AS_NEW_EVENTS;
}

/**
 * One customer's archive pipeline, forever: lease a batch, upload it at the pace the controller
 * sets (start times at an estimated rate, at most W at once), sleep when there is nothing to do.
 */
export async function archiveCustomer(input: messages.ArchiveCustomerInput): Promise<void> {
  const { customerId } = input;
  const customer = new CustomerState(customerId, input);
  const pastBadSources = wf.patched(PACE_PAST_BAD_SOURCES);
  const quietProbes = wf.patched(QUIET_PROBES);
  const pacer = WorkflowPacer.forRun(input, () => customer.operatorLimits, {
    fromDropboxOnly: pastBadSources,
    holdConfirmedLimit: wf.patched(HOLD_CONFIRMED_LIMIT),
  });
  const warmStarts = wf.patched(WARM_START);
  const wakeOnReturnedItems = wf.patched(WAKE_ON_RETURNED_ITEMS);
  const ui = new WebUiView(customer);
  const liveLaneOn = wf.patched(LIVE_LANE);
  const retryReturnedLive = wf.patched(RETRY_RETURNED_LIVE_ITEMS);
  /** True while a batch uploads: only then does a signal kick the live lane. */
  let batchRunning = false;
  let reconnecting = false;
  /**
   * The live lane's leases that stragglers still hold: items they hand back go to the lane again
   * (a backfill's go to its next batch, or the lane would pace the backfill as live).
   */
  const liveLeases = new Set<string>();
  const stragglers = new Stragglers(
    () => pacer.typicalUploadMs(),
    (itemIds, leaseToken, outcome) => {
      customer.addLate(outcome, Date.now(), wf.patched(UPLOAD_SLICES));
      if (outcome.unfinished > 0)
        return releaseBatch(customerId, leaseToken, { only: itemIds }).then((n) => {
          customer.backlog += n;
          if (wakeOnReturnedItems && n > 0) customer.itemsSignalled = true;
          // A live-lane lease's items go again at once, in another run of the lane.
          if (retryReturnedLive && liveLeases.has(leaseToken)) {
            if (stragglers.itemsOf(leaseToken).length === 0) liveLeases.delete(leaseToken);
            if (n > 0 && batchRunning) lane.kick();
          }
        });
    },
    pastBadSources ? STRAGGLER_FLOOR_MS : STRAGGLER_FLOOR_BEFORE_PATCH_MS,
  );

  /**
   * Returns a lease's items that are neither archived nor failed to pending, but for its
   * stragglers' (which finish on their own), and says how many went back.
   */
  const releaseUnfinished = async (leaseToken: string, keepStragglers: boolean): Promise<number> => {
    const except = keepStragglers ? stragglers.itemsOf(leaseToken) : [];
    const returned = await releaseBatch(customerId, leaseToken, ...(except.length ? [{ except }] : []));
    customer.backlog += returned;
    return returned;
  };
  const lane = new LiveLane(async () => {
    if (!batchRunning || customer.pausedAs || customer.stopping || customer.coolingDownUntil !== undefined) return;
    const limit = Math.min(MAX_SLICE_ITEMS, Math.max(1, Math.ceil(pacer.plan().ratePerSecond)));
    const leased = await fetchBatch(customerId, limit, undefined, { liveOnly: true });
    if (leased.items.length === 0) return;
    const outcome = await runBatch({
      customerId,
      leaseToken: leased.leaseToken,
      itemIds: leased.items.map((i) => i.id),
      // One files/upload per live item: a batch commit would make it wait for others.
      mode: 'single',
      pacer: pacer.liveLane(),
      stragglers,
      slices: true,
      replanPastOtherSlices: true,
      awaitTheCut: quietProbes,
      stopped: () => customer.pausedAs !== undefined || leased.coolDownMs > 0,
      onProgress: () => undefined,
    });
    if (retryReturnedLive && stragglers.itemsOf(leased.leaseToken).length > 0) liveLeases.add(leased.leaseToken);
    const returned = outcome.unfinished > 0 ? await releaseUnfinished(leased.leaseToken, true) : 0;
    customer.addLate(outcome, Date.now(), true);
    // Lease them again in another run: their slice waits out the Retry-After first.
    if (retryReturnedLive && returned > 0) lane.kick();
  });
  /** Before continuing as new or stopping: every upload in flight has ended and its lease is settled. */
  const settled = async () => {
    await lane.settled();
    await stragglers.settled();
  };

  wf.setHandler(messages.itemsAvailableSignal, () => {
    customer.itemsSignalled = true;
    if (liveLaneOn && batchRunning) lane.kick();
  });
  wf.setHandler(messages.pauseSignal, (reason) => customer.pause('paused', reason));
  wf.setHandler(messages.resumeSignal, () => void (customer.resumeRequested = true));
  wf.setHandler(messages.stopSignal, (reason) => customer.stop(reason));
  wf.setHandler(messages.pauseUpdate, (reason) => customer.pauseByOperator(reason), {
    validator: messages.validateReason,
  });
  wf.setHandler(messages.resumeUpdate, async (): Promise<messages.ResumeResult> => {
    if (!customer.pausedAs) return { outcome: 'not-paused', state: customer.state };
    customer.resumeRequested = true;
    // The loop decides (a needs-reauth customer's credentials are checked first) and clears the request.
    await wf.condition(() => !customer.resumeRequested || customer.stopping);
    return customer.resumeOutcome();
  });
  wf.setHandler(messages.statusQuery, () => customer.status(Date.now(), pacer.peek()));
  const validator = messages.validateOperatorLimits;
  wf.setHandler(messages.setLimitsUpdate, (caps) => customer.setLimits(caps), { validator });
  wf.setHandler(
    messages.reconnectUpdate,
    async (request: messages.ReconnectRequest | undefined) => {
      reconnecting = true;
      try {
        const candidateId = request?.candidateId;
        const { accountId } = await (candidateId === undefined
          ? verifyDropbox(customerId)
          : verifyDropbox(customerId, { candidateId }));
        wf.log.info('customer reconnected', { customerId });
        return { accountId, state: customer.reconnected() };
      } finally {
        reconnecting = false;
      }
    },
    // Validators must be synchronous: an async one is ignored.
    {
      validator: (request: messages.ReconnectRequest | undefined) => {
        if (reconnecting) throw new Error('a reconnect is already in progress for this customer');
        if (request !== undefined && typeof request.candidateId !== 'string' && request.candidateId !== undefined)
          throw new Error('candidateId must be a string');
      },
    },
  );

  while (!customer.stopping) {
    if (customer.pausedAs) {
      pacer.idle();
      wf.log.info('customer paused', { customerId, state: customer.pausedAs, reason: customer.pauseReason });
      const ended = () => !customer.pausedAs || customer.resumeRequested || customer.stopping;
      if (customer.pausedAs === 'quota-exceeded') {
        // A durable timer, not a poll: the quota resets on the first of the month.
        const quotaPauseMs = input.testOnlyQuotaPauseMs;
        if (customer.pausedUntil === undefined)
          customer.pauseUntil(quotaPauseMs === undefined ? quotaResetAfter(Date.now()) : Date.now() + quotaPauseMs);
        ui.show(customer.pausedAs, customer.pauseReason ?? 'paused');
        const waitMs = (customer.pausedUntil ?? 0) - Date.now();
        const replaced = () => customer.pausedAs !== 'quota-exceeded';
        // Weeks of itemsAvailable signals would outgrow the history: continue as new meanwhile,
        // carrying the pause and its end.
        const historyFull = () => {
          const info = wf.workflowInfo();
          return (
            info.continueAsNewSuggested || info.historyLength >= (input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS)
          );
        };
        const woken = waitMs > 0 ? await wf.condition(() => ended() || replaced() || historyFull(), waitMs) : false;
        if (customer.stopping) break;
        if (woken && !ended() && !replaced()) {
          await settled();
          await wf.condition(wf.allHandlersFinished);
          return wf.continueAsNew<typeof archiveCustomer>({
            ...input,
            ...customer.carryOver(),
            controller: pacer.state,
          });
        }
        // An operator's pause replaced this one: wait for that instead, showing it.
        if (replaced() && !customer.resumeRequested) continue;
        if (!woken) {
          wf.log.info('Data Transport quota reset; customer resumes', { customerId });
          customer.resume();
          continue;
        }
      } else {
        ui.show(customer.pausedAs, customer.pauseReason ?? 'paused');
        await wf.condition(ended);
      }
      if (customer.stopping) break;
      if (customer.pausedAs === 'needs-reauth' && wf.patched(VERIFY_CREDENTIALS_ON_RESUME)) {
        const refused = await credentialsRefused(customerId);
        if (refused) {
          customer.refuseResume(`resume refused: Dropbox still rejects the credentials (${refused})`);
          continue;
        }
      }
      customer.resume();
      wf.log.info('customer resumed', { customerId });
    }
    if (timeToContinueAsNew(input, stragglers)) {
      await settled();
      await wf.condition(wf.allHandlersFinished);
      return wf.continueAsNew<typeof archiveCustomer>({ ...input, ...customer.carryOver(), controller: pacer.state });
    }

    customer.itemsSignalled = false;
    const { batchSize } = pacer.plan();
    // The controller's estimate rides along, so Postgres keeps it for the customer's next run.
    const estimate = pacer.state.limitEstimatePerSecond;
    const batch = await (warmStarts
      ? fetchBatch(customerId, batchSize, { limitEstimatePerSecond: estimate })
      : fetchBatch(customerId, batchSize));
    if (warmStarts && batch.warmStart) pacer.warmStart(batch.warmStart);
    customer.backlog = batch.backlog;
    customer.retryWaiting = batch.retryWaiting ?? 0;
    customer.oldestWaitingSince = batch.oldestWaitingSince;
    if (batch.items.length === 0) {
      pacer.idle();
      customer.ratePerSecond = 0;
      const retryInMs = batch.nextRetryInMs;
      ui.show(
        'idle',
        retryInMs === undefined
          ? 'nothing to archive; waiting for new items'
          : `${customer.retryWaiting} items wait to retry after failing; the next in ${Math.ceil(retryInMs / 1000)} s`,
      );
      const woken = () => customer.itemsSignalled || customer.pausedAs !== undefined || customer.stopping;
      // Sleep until new items, the first retry time of a failed item, or the safety poll.
      await wf.condition(woken, Math.min(input.safetyPollMs ?? DEFAULT_SAFETY_POLL_MS, (retryInMs ?? Infinity) + 1000));
      continue;
    }

    // The controller's clock runs from here, cool-downs included: they are part of the limit.
    pacer.busy();
    // Dropbox's Retry-After still holds this customer back: wait it out visibly, without
    // spending upload attempts on requests that would be refused.
    if (batch.coolDownMs > 0 && !customer.pausedAs) {
      customer.coolingDownUntil = Date.now() + batch.coolDownMs;
      ui.show('cooling-down', `Dropbox answered 429; waiting ${Math.ceil(batch.coolDownMs / 1000)} s to upload again`);
      await wf.condition(() => customer.pausedAs !== undefined || customer.stopping, batch.coolDownMs);
      customer.coolingDownUntil = undefined;
    }
    const [size, started] = [batch.items.length, Date.now()];
    ui.showUploading(0, size, pacer.peek().plan);
    const mode = input.commitMode ?? 'single';
    const detach = mode === 'single' && wf.patched(DETACH_STRAGGLERS);
    batchRunning = true;
    const outcome = await runBatch({
      customerId,
      leaseToken: batch.leaseToken,
      itemIds: batch.items.map((i) => i.id),
      mode,
      pacer,
      stragglers: detach ? stragglers : undefined,
      slices: wf.patched(UPLOAD_SLICES),
      replanPastOtherSlices: wf.patched(REPLAN_PAST_OTHER_SLICES),
      awaitTheCut: quietProbes,
      stopped: () => customer.pausedAs !== undefined,
      onProgress: (done, sofar) => {
        customer.progress(sofar);
        ui.showUploading(done, size, pacer.peek().plan);
      },
    }).finally(() => (batchRunning = false));
    // Items the batch did not finish (a pause, or retries exhausted) go back to pending.
    if (outcome.unfinished > 0) await releaseUnfinished(batch.leaseToken, detach);
    customer.addBatch(outcome, (Date.now() - started) / 1000, Date.now());
  }
  await settled();
  wf.log.info('customer stopped', { customerId, reason: customer.stopReason });
  ui.show('idle', `stopped: ${customer.stopReason}`);
}

/** Why Dropbox refuses the customer's credentials, or undefined if they work. */
async function credentialsRefused(customerId: string): Promise<string | undefined> {
  try {
    await verifyDropbox(customerId);
    return undefined;
  } catch (err) {
    return ((err as { cause?: Error }).cause ?? (err as Error)).message;
  }
}
