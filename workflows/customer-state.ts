import type { BatchOutcome, BatchResult } from './batch.js';
import type { ArchiveCustomerInput, CustomerStatus, PauseResult, ResumeResult, Totals } from './messages.js';
import type { ArchiverState } from './names.js';
import type { OperatorLimits, PacingPlan, PacingState } from './pacing/controller.js';

export type PausedState = NonNullable<ArchiveCustomerInput['pausedState']>;

/** What a customer's workflow carries across continue-as-new, besides its input and the pacer. */
export type CarriedState = Pick<
  ArchiveCustomerInput,
  'totals' | 'pausedState' | 'pauseReason' | 'pausedUntilMs' | 'operatorLimits' | 'lastError'
>;

const EMPTY_TOTALS: Totals = { archived: 0, failed: 0, rateLimited: 0, batches: 0 };
const NOTHING_YET: BatchOutcome = { archived: 0, failed: 0, deferred: 0, rateLimited: 0, writeContention: 0 };

/** The UTC day of an epoch-ms time, as YYYY-MM-DD. */
const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const round2 = (v: number): number => Math.round(v * 100) / 100;

/**
 * When a Data Transport quota used up at `now` resets: Dropbox resets it monthly, so at midnight
 * UTC on the first of the next month. `now` is workflow time, so a replay computes the same.
 */
export function quotaResetAfter(now: number): number {
  const date = new Date(now);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}

/**
 * One customer's pipeline state, apart from pacing: totals, pause, last error, operator caps and
 * backlog. Plain and deterministic (times are passed in), so it is unit-tested without Temporal;
 * the workflow owns one and carries it across continue-as-new with `carryOver()`.
 */
export class CustomerState {
  /** What the pipeline is doing, as status and the Web UI show it. */
  state: ArchiverState;
  pausedAs: PausedState | undefined;
  pauseReason: string | undefined;
  /** When a quota-exceeded pause ends by itself, epoch ms; set by the workflow once it knows. */
  pausedUntil: number | undefined;
  /** An operator asked to resume; the workflow decides whether it may. */
  resumeRequested = false;
  /** Why the customer is stopping (its storage was disconnected); the workflow ends after the batch in flight. */
  stopReason: string | undefined;
  /** New items were signalled since the last lease. */
  itemsSignalled = false;
  lastError: string | undefined;
  operatorLimits: OperatorLimits;
  /** Pending items as of the last lease. */
  backlog = 0;
  /** Items waiting for their retry time after failing, as of the last lease. */
  retryWaiting = 0;
  /** Epoch ms when the oldest item not yet archived or failed was inserted, as of the last lease. */
  oldestWaitingSince: number | undefined;
  /** Items archived per second in the last batch. */
  ratePerSecond = 0;
  /** Epoch ms when the current cool-down ends. */
  coolingDownUntil: number | undefined;
  private readonly totals: Totals;
  /** What the batch in flight has done so far, so totals count items as they finish rather than per batch. */
  private inFlight: BatchOutcome = NOTHING_YET;

  constructor(
    readonly customerId: string,
    carried: CarriedState = {},
  ) {
    this.totals = { ...EMPTY_TOTALS, ...carried.totals };
    this.pausedAs = carried.pausedState;
    this.pauseReason = carried.pauseReason;
    this.pausedUntil = carried.pausedUntilMs;
    this.state = carried.pausedState ?? 'running';
    this.lastError = carried.lastError;
    this.operatorLimits = { ...carried.operatorLimits };
  }

  pause(as: PausedState, reason: string): void {
    this.pausedAs = as;
    this.pauseReason = reason;
    this.pausedUntil = undefined;
    this.resumeRequested = false;
  }

  /** The pause ends by itself at `until` (epoch ms), unless an operator resumes it first; the reason says when. */
  pauseUntil(until: number): void {
    this.pausedUntil = until;
    // The time first: the status table shows only the start of a long reason.
    this.pauseReason = `resumes by itself at ${new Date(until).toISOString()}; ${this.pauseReason ?? 'paused'}`;
  }

  /** An operator's pause; a customer already paused keeps its pause (needs-reauth stays needs-reauth). */
  pauseByOperator(reason: string): PauseResult {
    if (this.pausedAs) return { outcome: 'already-paused', state: this.pausedAs, reason: this.pauseReason };
    this.pause('paused', reason);
    return { outcome: 'paused', state: 'paused', reason };
  }

  /** What became of a resume the workflow has decided on (resumeRequested is false again). */
  resumeOutcome(): ResumeResult {
    if (this.pausedAs) return { outcome: 'refused', state: this.pausedAs, reason: this.pauseReason };
    if (this.stopping) return { outcome: 'refused', state: this.state, reason: `stopping: ${this.stopReason}` };
    return { outcome: 'resumed', state: 'running' };
  }

  stop(reason: string): void {
    this.stopReason = reason;
  }

  get stopping(): boolean {
    return this.stopReason !== undefined;
  }

  /** The pause is over, whatever it was. */
  resume(): void {
    this.pausedAs = undefined;
    this.pauseReason = undefined;
    this.pausedUntil = undefined;
    this.lastError = undefined;
    this.resumeRequested = false;
  }

  /** A resume was refused (the credentials still fail): the customer stays paused, saying why. */
  refuseResume(reason: string): void {
    this.resumeRequested = false;
    this.lastError = reason;
    this.pauseReason = reason;
  }

  /** The credentials work again: a needs-reauth pause is over; any other pause stays. Returns the state now. */
  reconnected(): ArchiverState {
    if (this.pausedAs === 'needs-reauth') this.resume();
    return this.pausedAs ?? 'running';
  }

  /** Merges an operator's caps (null removes one) and returns the caps now in force. */
  setLimits(caps: OperatorLimits): OperatorLimits {
    const merged = { ...this.operatorLimits, ...caps };
    this.operatorLimits = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== null && v !== undefined));
    return this.operatorLimits;
  }

  /** The batch in flight has done `sofar`. */
  progress(sofar: BatchOutcome): void {
    this.inFlight = { ...sofar };
  }

  /** Folds a finished batch into the totals; `now` decides which day "archived today" counts. */
  addBatch(outcome: BatchResult, seconds: number, now: number): void {
    this.inFlight = NOTHING_YET;
    this.fold(outcome, now);
    this.totals.batches += 1;
    this.ratePerSecond = round2(outcome.archived / Math.max(0.001, seconds));
  }

  /**
   * Folds the outcome of an upload that ended after its batch (a straggler). With
   * `recountDeferred`, its deferred items are not added to `retryWaiting`: a straggling slice may
   * have deferred some before the last lease counted them, so the caller leases again, which
   * counts them once.
   */
  addLate(outcome: BatchResult, now: number, recountDeferred = false): void {
    this.fold(outcome, now);
    // The last lease counted the items waiting to retry while this one was still in flight.
    if (!recountDeferred) this.retryWaiting += outcome.deferred;
    else if (outcome.deferred > 0) this.itemsSignalled = true;
  }

  private fold(outcome: BatchResult, now: number): void {
    const today = dayOf(now);
    this.totals.archivedToday = this.archivedToday(today) + outcome.archived;
    this.totals.day = today;
    this.totals.archived += outcome.archived;
    this.totals.failed += outcome.failed;
    this.totals.rateLimited += outcome.rateLimited;
    this.lastError = outcome.lastError ?? this.lastError;
    if (outcome.pauseAs) this.pause(outcome.pauseAs.state, outcome.pauseAs.reason);
  }

  /** Totals including the batch in flight, with "archived today" rolled over at UTC midnight. */
  liveTotals(now: number): Totals {
    const b = this.inFlight;
    return {
      ...this.totals,
      archived: this.totals.archived + b.archived,
      failed: this.totals.failed + b.failed,
      rateLimited: this.totals.rateLimited + b.rateLimited,
      archivedToday: this.archivedToday(dayOf(now)) + b.archived,
    };
  }

  /** What the status query answers, given the pacer's current plan and state. */
  status(now: number, pacing: { plan: PacingPlan; state: PacingState }): CustomerStatus {
    const estimate = pacing.state.limitEstimatePerSecond;
    return {
      customerId: this.customerId,
      state: this.state,
      backlog: this.backlog,
      retryWaiting: this.retryWaiting,
      oldestWaitingSince:
        this.oldestWaitingSince === undefined ? undefined : new Date(this.oldestWaitingSince).toISOString(),
      ratePerSecond: this.ratePerSecond,
      batchSize: pacing.plan.batchSize,
      concurrency: pacing.plan.concurrency,
      pacedRatePerSecond: round2(pacing.plan.ratePerSecond),
      limitEstimatePerSecond: estimate === undefined ? undefined : round2(estimate),
      totals: this.liveTotals(now),
      lastError: this.lastError,
      pauseReason: this.pauseReason,
      pausedUntil: this.pausedUntil === undefined ? undefined : new Date(this.pausedUntil).toISOString(),
      coolingDownUntil: this.coolingDownUntil === undefined ? undefined : new Date(this.coolingDownUntil).toISOString(),
      operatorLimits: this.operatorLimits,
    };
  }

  /** What the next run needs to go on where this one stops. */
  carryOver(): CarriedState {
    return {
      totals: { ...this.totals },
      pausedState: this.pausedAs,
      pauseReason: this.pauseReason,
      ...(this.pausedUntil === undefined ? {} : { pausedUntilMs: this.pausedUntil }),
      operatorLimits: this.operatorLimits,
      lastError: this.lastError,
    };
  }

  private archivedToday(today: string): number {
    return this.totals.day === today ? (this.totals.archivedToday ?? 0) : 0;
  }
}
