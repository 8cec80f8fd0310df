import {
  ApplicationFailure, allHandlersFinished, condition, continueAsNew, log, metricMeter, patched, proxyActivities, setCurrentDetails, setHandler,
  upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { runBatch } from './batch.js';
import { NON_RETRYABLE_FAILURES } from './failures.js';
import {
  itemsAvailableSignal, pauseSignal, reconnectUpdate, resumeSignal, setLimitsUpdate, statusQuery, stopSignal,
  validateOperatorLimits, type ArchiveCustomerInput, type CustomerStatus, type OperatorLimits, type ReconnectResult, type Totals,
} from './messages.js';
import { searchAttributes, type ArchiverState } from './names.js';
import { LEGACY_INITIAL_PACING, legacyNextPacing } from './legacy-pacing.js';
import { CustomerPacer } from './pacer.js';
import { DEFAULT_PACING_LIMITS, initialPacing, validatePacingLimits, type PacingLimits } from './pacing.js';

const { fetchBatch, releaseBatch } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

const { verifyDropbox } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

const DEFAULT_SAFETY_POLL_MS = 15 * 60_000;
const EMPTY_TOTALS: Totals = { archived: 0, failed: 0, rateLimited: 0, batches: 0 };
/**
 * Patch: resuming a customer paused as needs-reauth first checks its credentials with Dropbox, so
 * a resume before the credentials are fixed does not fail every upload again. Histories recorded
 * before it (test/histories/needs-reauth.json) resume without the check.
 */
export const VERIFY_CREDENTIALS_ON_RESUME = 'verify-credentials-on-resume';
/**
 * Patch: uploads are paced by the rate controller in pacing.ts (start times at an estimated rate,
 * W and N derived from it). Runs that started before it keep the per-batch AIMD of
 * legacy-pacing.ts until they continue as new.
 */
export const RATE_BASED_PACING = 'rate-based-pacing';

type PausedState = NonNullable<ArchiveCustomerInput['pausedState']>;

/**
 * One customer's archive pipeline, forever: lease a batch, upload it at most W at a time, let the
 * pacing controller set the next N and W from what happened, sleep when there is nothing to do.
 */
export async function archiveCustomer(input: ArchiveCustomerInput): Promise<void> {
  const { customerId } = input;
  const rateBased = patched(RATE_BASED_PACING);
  const limits: PacingLimits = { ...DEFAULT_PACING_LIMITS, ...input.limits };
  try {
    validatePacingLimits(limits);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`bad workflow input for customer ${customerId}: ${(err as Error).message}`, 'BadInput');
  }
  let operatorLimits: OperatorLimits = { ...input.operatorLimits };
  const pacer = new CustomerPacer(input.controller ?? initialPacing(limits), () => operatorLimits, limits);
  let pacing = input.pacing ?? LEGACY_INITIAL_PACING;
  const totals: Totals = { ...EMPTY_TOTALS, ...input.totals };
  let state: ArchiverState = input.pausedState ?? 'running';
  let pausedAs: PausedState | undefined = input.pausedState;
  let pauseReason = input.pauseReason;
  let resumeRequested = false;
  let stopping: string | undefined;
  let wake = false;
  let backlog = 0;
  let ratePerSecond = 0;
  let limitEstimatePerSecond = input.limitEstimatePerSecond;
  let lastError: string | undefined;
  let coolingDownUntil: number | undefined;

  setHandler(itemsAvailableSignal, () => { wake = true; });
  setHandler(pauseSignal, (reason) => { pause('paused', reason); });
  setHandler(resumeSignal, () => { resumeRequested = true; });
  setHandler(stopSignal, (reason) => { stopping = reason; });
  setHandler(setLimitsUpdate, (caps) => {
    operatorLimits = withoutNulls({ ...operatorLimits, ...caps });
    log.info('operator limits changed', { customerId, operatorLimits });
    return operatorLimits;
  }, { validator: validateOperatorLimits });
  let reconnecting = false;
  setHandler(reconnectUpdate, async (): Promise<ReconnectResult> => {
    reconnecting = true;
    try {
      const { accountId } = await verifyDropbox(customerId);
      if (pausedAs === 'needs-reauth') {
        pausedAs = undefined;
        pauseReason = undefined;
        lastError = undefined;
      }
      log.info('customer reconnected', { customerId });
      return { accountId, state: pausedAs ?? 'running' };
    } finally {
      reconnecting = false;
    }
  }, {
    // Validators must be synchronous: an async one is ignored.
    validator: () => {
      if (reconnecting) throw new Error('a reconnect is already in progress for this customer');
    },
  });
  setHandler(statusQuery, (): CustomerStatus => ({
    customerId, state, backlog, ratePerSecond, ...pacingStatus(),
    totals: liveTotals(),
    lastError, pauseReason,
    coolingDownUntil: coolingDownUntil === undefined ? undefined : new Date(coolingDownUntil).toISOString(),
    operatorLimits,
  }));

  /** The batch in flight so far, so status counts items as they finish rather than per batch. */
  let batchSoFar: Pick<Totals, 'archived' | 'failed' | 'rateLimited'> | undefined;
  function liveTotals(): Totals {
    const today = new Date(Date.now()).toISOString().slice(0, 10);
    const b = batchSoFar ?? { archived: 0, failed: 0, rateLimited: 0 };
    return {
      ...totals, archived: totals.archived + b.archived, failed: totals.failed + b.failed, rateLimited: totals.rateLimited + b.rateLimited,
      archivedToday: (totals.day === today ? totals.archivedToday ?? 0 : 0) + b.archived,
    };
  }

  /** N, W, the paced rate and the limit estimate, as status shows them. */
  function pacingStatus(): Pick<CustomerStatus, 'batchSize' | 'concurrency' | 'pacedRatePerSecond' | 'limitEstimatePerSecond'> {
    if (!rateBased) return { batchSize: pacing.batchSize, concurrency: pacing.concurrency, pacedRatePerSecond: undefined, limitEstimatePerSecond };
    const { plan: now, state: controller } = pacer.peek();
    const estimate = controller.limitEstimatePerSecond;
    return {
      batchSize: now.batchSize, concurrency: now.concurrency, pacedRatePerSecond: round2(now.ratePerSecond),
      limitEstimatePerSecond: estimate === undefined ? undefined : round2(estimate),
    };
  }

  function pause(as: PausedState, reason: string): void {
    pausedAs = as;
    pauseReason = reason;
    resumeRequested = false;
  }

  let shownState: ArchiverState | undefined;
  let shownBacklog: number | undefined;
  /** Keeps the Web UI's search attributes and details current, without an event when nothing changed. */
  function show(next: ArchiverState, details: string): void {
    state = next;
    const live = liveTotals();
    setCurrentDetails(`**${next}**: ${details}. Archived ${live.archived}, failed ${live.failed}, 429s ${live.rateLimited}.`);
    // Gauges for the worker's Prometheus endpoint (not emitted while replaying).
    const tags = { customer_id: customerId };
    metricMeter.createGauge('archiver_backlog', 'int', 'items', 'Pending items of the customer').set(backlog, tags);
    metricMeter.createGauge('archiver_rate', 'float', 'items/s', 'Items archived per second in the last batch').set(ratePerSecond, tags);
    if (shownState === state && shownBacklog === backlog) return;
    upsertSearchAttributes([
      { key: searchAttributes.customerId, value: customerId },
      { key: searchAttributes.state, value: state },
      { key: searchAttributes.backlog, value: backlog },
    ]);
    shownState = state;
    shownBacklog = backlog;
  }

  while (stopping === undefined) {
    if (pausedAs) {
      pacer.idle();
      log.info('customer paused', { customerId, state: pausedAs, reason: pauseReason });
      show(pausedAs, pauseReason ?? 'paused');
      await condition(() => pausedAs === undefined || resumeRequested || stopping !== undefined);
      if (stopping !== undefined) break;
      if (pausedAs && !(await mayResume())) continue;
      pausedAs = undefined;
      pauseReason = undefined;
      lastError = undefined;
      log.info('customer resumed', { customerId });
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof archiveCustomer>({
        ...input, totals, pauseReason, pausedState: pausedAs, operatorLimits,
        ...(rateBased ? { controller: pacer.state } : { pacing, limitEstimatePerSecond }),
      });
    }

    wake = false;
    const batch = await fetchBatch(customerId, rateBased ? pacer.plan().batchSize : Math.min(pacing.batchSize, operatorLimits.maxBatchSize ?? Infinity));
    backlog = batch.backlog;
    if (batch.items.length === 0) {
      pacer.idle();
      ratePerSecond = 0;
      show('idle', 'nothing to archive; waiting for new items');
      await condition(() => wake || pausedAs !== undefined || stopping !== undefined, input.safetyPollMs ?? DEFAULT_SAFETY_POLL_MS);
      continue;
    }

    // The controller's clock runs from here, cool-downs included: they are part of the limit.
    if (rateBased) pacer.busy();
    // Dropbox's Retry-After still holds this customer back: wait it out visibly, without
    // spending upload attempts on requests that would be refused.
    if (batch.coolDownMs > 0) await coolDown(batch.coolDownMs);
    const width = Math.min(pacing.concurrency, operatorLimits.maxConcurrency ?? Infinity);
    const size = batch.items.length;
    const pace = (): string => {
      if (!rateBased) return `${width} at once`;
      const now = pacer.peek().plan;
      return `${now.ratePerSecond.toFixed(1)}/s, up to ${now.concurrency} at once`;
    };
    show('running', `uploading a batch of ${size}, ${pace()}`);
    const started = Date.now();
    const outcome = await runBatch({
      customerId, leaseToken: batch.leaseToken, itemIds: batch.items.map((i) => i.id),
      mode: input.commitMode ?? 'single', stopped: () => pausedAs !== undefined,
      pacer: rateBased ? pacer : undefined, concurrency: width,
      minStartIntervalMs: operatorLimits.maxRatePerSecond ? 1000 / operatorLimits.maxRatePerSecond : 0,
      onProgress: (done, sofar) => {
        batchSoFar = { archived: sofar.archived, failed: sofar.failed, rateLimited: sofar.rateLimited };
        show('running', `uploading ${done} of ${size} in this batch, ${pace()}`);
      },
    });
    batchSoFar = undefined;
    totals.archived += outcome.archived;
    const today = new Date(Date.now()).toISOString().slice(0, 10);
    totals.archivedToday = (totals.day === today ? totals.archivedToday ?? 0 : 0) + outcome.archived;
    totals.day = today;
    totals.failed += outcome.failed;
    totals.rateLimited += outcome.rateLimited;
    lastError = outcome.lastError ?? lastError;
    if (outcome.pauseAs) pause(outcome.pauseAs.state, outcome.pauseAs.reason);
    // Items the batch did not finish (a pause, or retries exhausted) go back to pending.
    if (outcome.unfinished > 0) backlog += await releaseBatch(customerId, batch.leaseToken);
    totals.batches += 1;
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    ratePerSecond = round2(outcome.archived / seconds);
    // The rate controller paces and learns per upload, and the activities hold the customer back
    // for Retry-After themselves; what follows is the pre-patch per-batch AIMD.
    if (rateBased) continue;
    // Uploads (archived plus refused) per second in a batch that met 429s bound the limit from above.
    if (outcome.rateLimited > 0) {
      const attempted = (outcome.archived + outcome.rateLimited) / seconds;
      const estimate = limitEstimatePerSecond === undefined ? attempted : 0.7 * limitEstimatePerSecond + 0.3 * attempted;
      limitEstimatePerSecond = Math.round(estimate * 100) / 100;
    }

    const decision = legacyNextPacing(pacing, outcome);
    pacing = decision.next;
    if (decision.cooldownMs > 0) await coolDown(decision.cooldownMs);
  }
  log.info('customer stopped', { customerId, reason: stopping });
  show('idle', `stopped: ${stopping}`);

  /** Pauses the whole customer for `ms` (a pause or stop request ends it early). */
  async function coolDown(ms: number): Promise<void> {
    if (pausedAs) return;
    coolingDownUntil = Date.now() + ms;
    show('cooling-down', `Dropbox answered 429; waiting ${Math.ceil(ms / 1000)} s before uploading again`);
    await condition(() => pausedAs !== undefined || stopping !== undefined, ms);
    coolingDownUntil = undefined;
  }

  /** A resume of a needs-reauth customer first checks the credentials (see the patch above). */
  async function mayResume(): Promise<boolean> {
    resumeRequested = false;
    if (pausedAs !== 'needs-reauth' || !patched(VERIFY_CREDENTIALS_ON_RESUME)) return true;
    try {
      await verifyDropbox(customerId);
      return true;
    } catch (err) {
      const cause = (err as { cause?: Error }).cause ?? (err as Error);
      lastError = `resume refused: Dropbox still rejects the credentials (${cause.message})`;
      pauseReason = lastError;
      return false;
    }
  }
}

const round2 = (v: number): number => Math.round(v * 100) / 100;

function withoutNulls(caps: OperatorLimits): OperatorLimits {
  return Object.fromEntries(Object.entries(caps).filter(([, v]) => v !== null && v !== undefined));
}
