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

/**
 * The live lane's rate is a moving average with this time constant: carried over with the
 * controller's state, so a new run knows it from its first batch.
 */
const LIVE_RATE_DECAY_MS = 5_000;
/** Live uploads per second below which there is no live stream to leave room for. */
const MIN_LIVE_RATE = 0.1;
/** At most this share of the pace is left to the live lane ahead of time. */
const MAX_LIVE_SHARE = 0.5;
/** While live items arrive, the customer's uploads in all stay below this share of its limit learned. */
const LIVE_HEADROOM = 0.9;
/** …except for a probe this long (busy ms) after the last cut, so that the limit is learned again. */
const LIVE_PROBE_EVERY_MS = 60_000;

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

/** How a pacer learns; each is a change that workflows already running must not see (a patch). */
export interface PacerLearning {
  /**
   * Learn from Dropbox's answers only: an upload's duration counts only if Dropbox accepted it (a
   * source that hung for its 10 s timeout is not a slow Dropbox), and leaving slow start measures
   * from the first acceptance (ControllerOptions.measureFromFirstAccept).
   */
  fromDropboxOnly?: boolean;
  /** See ControllerOptions.holdConfirmedLimit. */
  holdConfirmedLimit?: boolean;
}

/**
 * Binds the pure pacing controller to workflow time (Date.now() is deterministic in a workflow):
 * hands out start times at the current rate, feeds outcomes back, and lets the rate grow only
 * while the customer has work.
 */
export class WorkflowPacer implements UploadPacer {
  /** Workflow time the controller last advanced to; undefined while idle, so idle time does not grow the rate. */
  private clockMs: number | undefined;
  private nextStartAt = 0;
  /** The live lane's next start time (see liveLane). */
  private nextLiveStartAt = 0;
  private readonly limits: PacingLimits;
  private readonly options: ControllerOptions;
  private readonly fromDropboxOnly: boolean;
  state: PacingState;

  /**
   * Goes on from `carried` (the previous run's state), or starts afresh; `limits` override the
   * controller's defaults. Throws, naming the field, if they are not valid.
   */
  constructor(
    carried: PacingState | undefined,
    limits: Partial<PacingLimits> | undefined,
    private readonly caps: () => OperatorLimits,
    learning: PacerLearning = {},
  ) {
    this.fromDropboxOnly = learning.fromDropboxOnly ?? false;
    this.options = {
      measureFromFirstAccept: this.fromDropboxOnly,
      holdConfirmedLimit: learning.holdConfirmedLimit ?? false,
    };
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
    learning: PacerLearning,
  ): WorkflowPacer {
    try {
      return new WorkflowPacer(input.controller, input.limits, caps, learning);
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
    const planned = plan(state, this.caps(), this.limits);
    // What the customer is paced at in all, as status shows it: the live headroom included.
    return { plan: { ...planned, ratePerSecond: this.totalRate(planned.ratePerSecond, state) }, state };
  }

  width(): number {
    return this.plan().concurrency;
  }

  slot(): UploadSlot {
    this.fresh = false;
    const { ratePerSecond } = this.plan();
    // No catching up after a pause or a gap between batches: that would be a burst.
    const startAt = Math.max(this.nextStartAt, Date.now());
    this.nextStartAt = startAt + 1000 / this.batchRate(ratePerSecond);
    return { startAt, cut: this.state.cuts };
  }

  /**
   * The batch's pace at the controller's `rate`: what the live lane leaves of it (see liveLane),
   * and while live items arrive, no more in all than LIVE_HEADROOM of the limit learned. A probe
   * past the limit ends in a 429, whose Retry-After holds every upload back, the live ones too:
   * while live items wait, a backfill probes only once a minute.
   */
  private batchRate(rate: number): number {
    const live = this.liveRate();
    if (live === 0) return rate;
    const total = this.totalRate(rate, this.state);
    return Math.max(total * (1 - MAX_LIVE_SHARE), total - live);
  }

  /** The customer's pace in all at the controller's `rate`: capped at LIVE_HEADROOM while live items flow (see batchRate). */
  private totalRate(rate: number, state: PacingState): number {
    if (this.liveRate() === 0) return rate;
    const { limitEstimatePerSecond: estimate, cuts, sinceCutMs } = state;
    // Still probe now and then, or the limit would never be learned again: until two cuts have
    // measured it (slow start's first one is rough), and once a minute after.
    const probing = estimate === undefined || cuts < 2 || sinceCutMs >= LIVE_PROBE_EVERY_MS;
    return probing ? rate : Math.min(rate, estimate * LIVE_HEADROOM);
  }

  /** The live lane's moving average, decayed to `now`. */
  private decayedLiveRate(now: number): number {
    const live = this.state.live;
    return live ? live.perSecond * Math.exp(-(now - live.at) / LIVE_RATE_DECAY_MS) : 0;
  }

  /** Live-lane uploads per second lately, decayed to now (see liveLane); 0 below MIN_LIVE_RATE. */
  private liveRate(): number {
    const rate = this.decayedLiveRate(Date.now());
    return rate < MIN_LIVE_RATE ? 0 : rate;
  }

  /**
   * The pacer for live items that arrive while a batch runs (see LiveLane): their start times
   * come first, from now, at the customer's rate among themselves. The batch's own start times
   * leave room for the live lane's recent rate (up to MAX_LIVE_SHARE of the pace), and a live
   * upload beyond that pushes the batch's next start one gap later. So live items start at once,
   * without a burst on top of the batch's slices already planned, and the batch (a backfill)
   * gets the pace they leave. Learns as the pacer does.
   */
  liveLane(): UploadPacer {
    return {
      plan: () => this.plan(),
      width: () => this.width(),
      slot: () => {
        this.fresh = false;
        const rate = this.plan().ratePerSecond;
        const now = Date.now();
        const startAt = Math.max(this.nextLiveStartAt, now);
        this.nextLiveStartAt = startAt + 1000 / rate;
        if (this.liveRate() >= rate * MAX_LIVE_SHARE) this.nextStartAt = Math.max(this.nextStartAt, now) + 1000 / rate;
        const perSecond = this.decayedLiveRate(now) + 1000 / LIVE_RATE_DECAY_MS;
        this.state = { ...this.state, live: { perSecond, at: now } };
        return { startAt, cut: this.state.cuts };
      },
      replan: () => void (this.nextLiveStartAt = Date.now()),
      done: (slot, outcome) => this.done(slot, outcome),
      typicalUploadMs: () => this.typicalUploadMs(),
    };
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
