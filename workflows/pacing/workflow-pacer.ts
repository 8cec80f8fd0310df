import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType } from '../failures.js';
import type { ArchiveCustomerInput } from '../messages.js';
import {
  DEFAULT_PACING_LIMITS,
  elapse,
  initialPacing,
  observe,
  plan,
  validatePacingLimits,
  warmStart,
  type OperatorLimits,
  type PacingLimits,
  type PacingPlan,
  type PacingStart,
  type PacingState,
  type ControllerOptions,
  type UploadObservation,
} from './controller.js';

/** Hands out upload start times at the customer's pace and learns from each upload's outcome. */
export interface UploadPacer {
  /** The rate, W and N to use now. */
  plan(): PacingPlan;
  /** W: uploads in flight at once, now. */
  width(): number;
  /** Reserves the next start time. */
  slot(): UploadSlot;
  /**
   * Forgets the start times handed out but not used (a 429 handed their items back): the next
   * slot is now, or one gap after `inUseUntil`, the last start time still to be used elsewhere.
   */
  replan(inUseUntil?: number): void;
  /** Reports the outcome of the upload that got `slot`. */
  done(slot: UploadSlot, outcome: UploadOutcome): void;
  /** How long an upload that goes through at once usually takes, in ms. */
  typicalUploadMs(): number;
}

export interface UploadSlot {
  /** Epoch ms; the activity waits for it. */
  startAt: number;
  /** The controller's cut count when the slot was given. */
  cut: number;
}

/**
 * What an upload reports to the pacer; `clean` means it went through on its first attempt.
 * `durationMs`: how long it took, as its activity measured it (an upload in a slice ends before
 * the workflow hears of it); undefined: from its start time until the workflow heard.
 */
export type UploadOutcome = Omit<
  UploadObservation,
  'startedAtCut' | 'cleanDurationMs' | 'endedAgoMs' | 'rateLimitedAgoMs'
> & {
  clean: boolean;
  durationMs?: number | undefined;
  /** When it ended, epoch ms as its activity saw it; undefined: just now. */
  endedAt?: number | undefined;
  /** When its 429 came, epoch ms as its activity saw it; undefined: just now. */
  rateLimitedAt?: number | undefined;
};

/**
 * Binds the pure pacing controller to workflow time (Date.now() is deterministic in a workflow):
 * hands out start times at the current rate, feeds outcomes back, and lets the rate grow only
 * while the customer has work.
 */
export class WorkflowPacer implements UploadPacer {
  /** Workflow time the controller last advanced to; undefined while idle, so idle time does not grow the rate. */
  private clockMs: number | undefined;
  private nextStartAt = 0;
  private readonly limits: PacingLimits;
  private readonly options: ControllerOptions;
  state: PacingState;

  /**
   * Goes on from `carried` (the previous run's state), or starts afresh; `limits` override the
   * controller's defaults. Throws, naming the field, if they are not valid.
   */
  constructor(
    carried: PacingState | undefined,
    limits: Partial<PacingLimits> | undefined,
    private readonly caps: () => OperatorLimits,
    /**
     * Learn from Dropbox's answers only: an upload's duration counts only if Dropbox accepted it (a
     * source that hung for its 10 s timeout is not a slow Dropbox), and leaving slow start measures
     * from the first acceptance (ControllerOptions.measureFromFirstAccept).
     */
    private readonly fromDropboxOnly = false,
  ) {
    this.options = { measureFromFirstAccept: fromDropboxOnly };
    this.limits = { ...DEFAULT_PACING_LIMITS, ...limits };
    validatePacingLimits(this.limits);
    this.state = carried ?? initialPacing(this.limits);
    this.fresh = carried === undefined;
    this.explicitInitialRate = limits?.initialRatePerSecond !== undefined;
  }

  /** True until warmStart or the first upload, for a run that started without a carried state. */
  private fresh: boolean;
  private readonly explicitInitialRate: boolean;

  /** The pacer for a run of `input`'s customer; bad pacing limits in the input fail the workflow as BadInput. */
  static forRun(
    input: Pick<ArchiveCustomerInput, 'customerId' | 'controller' | 'limits'>,
    caps: () => OperatorLimits,
    fromDropboxOnly: boolean,
  ): WorkflowPacer {
    try {
      return new WorkflowPacer(input.controller, input.limits, caps, fromDropboxOnly);
    } catch (err) {
      const message = `bad workflow input for customer ${input.customerId}: ${(err as Error).message}`;
      throw ApplicationFailure.nonRetryable(message, FailureType.BadInput);
    }
  }

  /**
   * Starts a fresh run at the pace its customer's earlier runs learned (see warmStart). Only before
   * the first upload, and only if this run did not carry a state over or get an initial rate in
   * its input; otherwise does nothing.
   */
  warmStart(start: PacingStart): void {
    if (!this.fresh) return;
    this.fresh = false;
    this.state = warmStart(
      this.explicitInitialRate ? { ...start, initialRatePerSecond: this.limits.initialRatePerSecond } : start,
      this.limits,
    );
  }

  /** The customer has work again. */
  busy(): void {
    this.clockMs ??= Date.now();
  }

  /** The customer is idle or paused: stop the growth clock. */
  idle(): void {
    this.tick();
    this.clockMs = undefined;
  }

  plan(): PacingPlan {
    this.tick();
    return plan(this.state, this.caps(), this.limits);
  }

  /**
   * The plan and state as of now, without advancing the controller: for queries, which must not
   * change workflow state (a replay would not repeat them).
   */
  peek(): { plan: PacingPlan; state: PacingState } {
    const state =
      this.clockMs === undefined ? this.state : elapse(this.state, Date.now() - this.clockMs, this.caps(), this.limits);
    return { plan: plan(state, this.caps(), this.limits), state };
  }

  width(): number {
    return this.plan().concurrency;
  }

  slot(): UploadSlot {
    this.fresh = false;
    const { ratePerSecond } = this.plan();
    // No catching up after a pause or a gap between batches: that would be a burst.
    const startAt = Math.max(this.nextStartAt, Date.now());
    this.nextStartAt = startAt + 1000 / ratePerSecond;
    return { startAt, cut: this.state.cuts };
  }

  replan(inUseUntil?: number): void {
    const now = Date.now();
    this.nextStartAt =
      inUseUntil === undefined || inUseUntil < now ? now : inUseUntil + 1000 / this.plan().ratePerSecond;
  }

  done(slot: UploadSlot, outcome: UploadOutcome): void {
    this.tick();
    const { clean, durationMs, endedAt, rateLimitedAt, ...rest } = outcome;
    const timed = clean && outcome.rateLimited === 0 && (outcome.accepted || !this.fromDropboxOnly);
    this.state = observe(
      this.state,
      {
        ...rest,
        startedAtCut: slot.cut,
        cleanDurationMs: timed ? Math.max(0, durationMs ?? Date.now() - slot.startAt) : undefined,
        ...(endedAt !== undefined ? { endedAgoMs: Math.max(0, Date.now() - endedAt) } : {}),
        ...(rateLimitedAt !== undefined ? { rateLimitedAgoMs: Math.max(0, Date.now() - rateLimitedAt) } : {}),
      },
      this.limits,
      this.options,
    );
  }

  typicalUploadMs(): number {
    return this.state.uploadMs;
  }

  private tick(): void {
    if (this.clockMs === undefined) return;
    const now = Date.now();
    this.state = elapse(this.state, now - this.clockMs, this.caps(), this.limits);
    this.clockMs = now;
  }
}
