/**
 * The pacing controller: paces one customer's uploads at a rate just under its Dropbox token's
 * limit, learned from the outcomes of its uploads. Pure and deterministic, so it runs inside the
 * workflow: its state is plain workflow state, which survives worker crashes (replay) and
 * continue-as-new (it is carried in the input).
 *
 * It is CUBIC (RFC 9438) applied to a rate instead of a congestion window:
 * - Before the first 429 it grows the rate exponentially (slow start).
 * - A `too_many_requests` sets the limit estimate and cuts the rate to BETA times it. The
 *   estimate is the rate Dropbox actually accepted since the previous cut, pauses included:
 *   Dropbox refills a token bucket at the limit, so uploads accepted between two moments when
 *   the bucket ran dry, divided by the time between them, is the limit itself. This also
 *   brings the estimate down to a halved limit within one cut, where multiplying alone would
 *   take several.
 * - Without 429s the rate climbs back to the estimate (concave), stays near it for a while,
 *   then probes beyond it (convex), so it finds a raised limit within seconds. When that probe
 *   meets a 429, what Dropbox accepted during the probe raises the estimate. A probe that finds
 *   the limit where the estimate said holds the rate just under it for a while before the next
 *   (ControllerOptions.holdConfirmedLimit): every probe costs a 429 and a Retry-After.
 * - `too_many_write_operations` means another write holds the account's lock: it narrows the
 *   uploads in flight (W), not the rate.
 * - 5xx and other transient failures do not touch the rate: each upload backs off through its
 *   activity retry policy.
 * The workflow enforces the rate by giving each upload a start time; W and the batch size N
 * follow from the rate and the observed upload duration.
 */

export interface PacingLimits {
  /** Upload starts per second when nothing is known yet. */
  initialRatePerSecond: number;
  minRatePerSecond: number;
  maxRatePerSecond: number;
  /** Upper bound on uploads in flight (W) for one customer, so one customer cannot take the worker. */
  maxConcurrency: number;
  minBatchSize: number;
  maxBatchSize: number;
  /** A batch leases about this many seconds of uploads at the current rate. */
  batchSeconds: number;
}

export const DEFAULT_PACING_LIMITS: PacingLimits = {
  initialRatePerSecond: 10,
  minRatePerSecond: 0.2,
  maxRatePerSecond: 2_000,
  maxConcurrency: 32,
  minBatchSize: 1,
  maxBatchSize: 500,
  batchSeconds: 10,
};

/** The rate after a 429, as a share of the limit estimate. */
export const BETA = 0.95;
/**
 * CUBIC's scaling constant, per second cubed, relative to the estimate: the rate is back at the
 * estimate K = cbrt((1 - BETA) / C) ≈ 2.9 s after a cut, 5% above it 2.9 s later and 80% above
 * it 7.4 s later, so a doubled limit is found within about 10 s. Tuned with test/support/pacing-sim.ts.
 */
export const CUBIC_C = 0.002;
/** Seconds after a cut until the rate is back at the estimate (CUBIC's K). */
const RECOVERY_SECONDS = Math.cbrt((1 - BETA) / CUBIC_C);
/** Slow start multiplies the rate by this every second. */
export const SLOW_START_GROWTH_PER_SECOND = 1.5;
/** W recovers by one this often after write contention narrowed it, in ms. */
const WRITE_RECOVERY_MS = 5_000;
/**
 * After a probe confirmed the estimate, the rate waits this long (busy ms) at HOLD_SHARE of it
 * before probing again. Each probe costs a 429 and its Retry-After (a second or more without
 * uploads); at 25/s, a probe every few seconds put over 1% of a 5-s window's requests into 429s.
 * A limit raised just after a confirming probe is found about 35 s later.
 */
export const CONFIRMED_HOLD_MS = 25_000;
/** Where the rate waits during that hold, as a share of the estimate: under it, so the bucket refills. */
const HOLD_SHARE = 0.98;
/** Seconds before CUBIC's K at which its curve is at HOLD_SHARE of the estimate. */
const HOLD_LEAD_SECONDS = Math.cbrt((1 - HOLD_SHARE) / CUBIC_C);
/**
 * A probe confirms the estimate when what it measured is within this share of it. Much less is
 * not a confirmation either: a stall during the probe, not the limit.
 */
const CONFIRM_MARGIN = 0.1;
/**
 * Seconds of the limit a token bucket is taken to hold: Dropbox does not say; the emulator holds
 * one. Larger, and a probe still measures a little high; the next cut comes soon and measures.
 */
const BUCKET_SECONDS = 1;
/** Weight of the newest sample in the smoothed upload duration. */
const DURATION_WEIGHT = 0.2;

export interface PacingState {
  /** Upload starts per second. */
  ratePerSecond: number;
  /** What the token's limit is believed to be, uploads/s; undefined until the first 429. */
  limitEstimatePerSecond: number | undefined;
  /** Number of rate cuts so far: tells a stale 429 (from an upload started before the last cut) from a new one. */
  cuts: number;
  /** Busy time since the last cut, in ms; growth follows it, and idle time does not count. */
  sinceCutMs: number;
  /** Uploads Dropbox accepted since the last cut. */
  acceptedSinceCut: number;
  /** Busy ms since the last cut when Dropbox first accepted an upload; undefined until it does. */
  firstAcceptedMs?: number | undefined;
  /**
   * When the rate last rose past the estimate (the probe): busy ms since the cut, uploads
   * accepted by then as reported by then, and uploads since reported that ended at or after it
   * (`during`; a slice reports its uploads when it ends); undefined until it does.
   */
  probeFrom?: { ms: number; accepted: number; during?: number } | undefined;
  /**
   * Busy ms the rate waits at HOLD_SHARE of the estimate before probing: set by a cut whose probe
   * confirmed the estimate (ControllerOptions.holdConfirmedLimit); undefined: no wait.
   */
  holdMs?: number | undefined;
  /** Cap on W after write contention; recovers over time. */
  writeConcurrency: number;
  /** Smoothed time one upload takes, from its start to its result reaching the workflow, in ms. */
  uploadMs: number;
  /**
   * The live lane's uploads per second, a moving average as of epoch ms `at` (WorkflowPacer keeps
   * it; the controller passes it on); undefined until a live upload.
   */
  live?: { perSecond: number; at: number } | undefined;
}

export function initialPacing(limits: PacingLimits = DEFAULT_PACING_LIMITS): PacingState {
  return {
    ratePerSecond: limits.initialRatePerSecond,
    limitEstimatePerSecond: undefined,
    cuts: 0,
    sinceCutMs: 0,
    acceptedSinceCut: 0,
    writeConcurrency: limits.maxConcurrency,
    uploadMs: 200,
  };
}

/** What one upload reported, as the workflow saw it. */
export interface UploadObservation {
  /** Dropbox took the upload. */
  accepted: boolean;
  /** Requests answered 429 too_many_requests (or plain-text 429). */
  rateLimited: number;
  /** Requests answered 429 too_many_write_operations. */
  writeContention: number;
  /** `cuts` when the upload started. */
  startedAtCut: number;
  /** Start to result, in ms, for an upload that went through first time; undefined otherwise. */
  cleanDurationMs?: number | undefined;
  /**
   * How long before this report the upload ended, in ms: uploads in a slice are reported when the
   * slice ends. An acceptance from before the last cut is not counted as accepted since it.
   * Undefined: it ended just now.
   */
  endedAgoMs?: number | undefined;
  /**
   * For an upload answered 429: how long before this report the 429 came (a slice reports after
   * Temporal retried it). The cut then measures up to the 429 and its recovery runs from it.
   * Undefined: just now.
   */
  rateLimitedAgoMs?: number | undefined;
}

/** Operator caps on a customer's pace (archiver set-limits); null or absent means no cap. */
export interface OperatorLimits {
  /** Uploads started per second, at most. */
  maxRatePerSecond?: number | null | undefined;
  /** Uploads in flight at once (W), at most. */
  maxConcurrency?: number | null | undefined;
  /** Items leased at once (N), at most. */
  maxBatchSize?: number | null | undefined;
}

/** What the workflow does next. */
export interface PacingPlan {
  ratePerSecond: number;
  /** W: uploads in flight at once. */
  concurrency: number;
  /** N: items to lease. */
  batchSize: number;
}

/** Where a new run of a customer's workflow starts its pace. */
export interface PacingStart {
  /** The limit the customer's previous runs learned, uploads/s; undefined if none did. */
  limitEstimatePerSecond: number | undefined;
  /** Where slow start begins when there is no estimate. */
  initialRatePerSecond: number;
}

/**
 * A fresh run's state: as if the controller had just cut at the learned limit (BETA of it, back at
 * it in RECOVERY_SECONDS, and a 429 before then measures the limit afresh), or slow start from the
 * initial rate when nothing was learned.
 */
export function warmStart(start: PacingStart, limits: PacingLimits = DEFAULT_PACING_LIMITS): PacingState {
  const fresh = initialPacing(limits);
  const estimate = start.limitEstimatePerSecond;
  if (estimate === undefined || !Number.isFinite(estimate) || estimate <= 0) {
    return {
      ...fresh,
      ratePerSecond: clamp(start.initialRatePerSecond, limits.minRatePerSecond, limits.maxRatePerSecond),
    };
  }
  const limit = clamp(estimate, limits.minRatePerSecond, limits.maxRatePerSecond);
  return {
    ...fresh,
    limitEstimatePerSecond: limit,
    ratePerSecond: clamp(BETA * limit, limits.minRatePerSecond, limits.maxRatePerSecond),
  };
}

/** `ms` of busy time passed (the customer had work): the rate grows and W recovers. */
export function elapse(
  state: PacingState,
  ms: number,
  caps: OperatorLimits = {},
  limits: PacingLimits = DEFAULT_PACING_LIMITS,
): PacingState {
  if (ms <= 0) return state;
  const writeConcurrency = Math.min(limits.maxConcurrency, state.writeConcurrency + ms / WRITE_RECOVERY_MS);
  // Held at the operator's cap; time keeps counting, so the controller probes soon after the cap is lifted.
  const cap = caps.maxRatePerSecond ?? Infinity;
  if (state.ratePerSecond >= cap)
    return { ...state, ratePerSecond: cap, writeConcurrency, sinceCutMs: state.sinceCutMs + ms };
  const sinceCutMs = state.sinceCutMs + ms;
  let rate: number;
  const estimate = state.limitEstimatePerSecond;
  if (estimate === undefined) {
    rate = state.ratePerSecond * SLOW_START_GROWTH_PER_SECOND ** (ms / 1000);
  } else {
    rate = estimate * (1 + CUBIC_C * (curveSeconds(sinceCutMs, state.holdMs) - RECOVERY_SECONDS) ** 3);
  }
  const probing = estimate !== undefined && rate > estimate && state.probeFrom === undefined;
  return {
    ...state,
    ratePerSecond: clamp(Math.min(rate, cap), limits.minRatePerSecond, limits.maxRatePerSecond),
    sinceCutMs,
    writeConcurrency,
    ...(probing ? { probeFrom: { ms: sinceCutMs, accepted: state.acceptedSinceCut } } : {}),
  };
}

/** Seconds along CUBIC's curve `sinceCutMs` after a cut: the curve stops at HOLD_SHARE of the estimate for `holdMs`. */
function curveSeconds(sinceCutMs: number, holdMs = 0): number {
  const seconds = sinceCutMs / 1000;
  const holdAt = RECOVERY_SECONDS - HOLD_LEAD_SECONDS;
  return seconds <= holdAt ? seconds : Math.max(holdAt, seconds - holdMs / 1000);
}

/** Folds one upload's outcome into the state. */
export function observe(
  state: PacingState,
  upload: UploadObservation,
  limits: PacingLimits = DEFAULT_PACING_LIMITS,
  options: ControllerOptions = {},
): PacingState {
  let next = state;
  const endedAgoMs = Math.max(0, upload.endedAgoMs ?? 0);
  if (upload.accepted && endedAgoMs <= next.sinceCutMs) {
    const acceptedAtMs = next.sinceCutMs - endedAgoMs;
    const probe = next.probeFrom;
    next = {
      ...next,
      acceptedSinceCut: next.acceptedSinceCut + 1,
      firstAcceptedMs: Math.min(next.firstAcceptedMs ?? acceptedAtMs, acceptedAtMs),
      ...(probe && acceptedAtMs >= probe.ms ? { probeFrom: { ...probe, during: (probe.during ?? 0) + 1 } } : {}),
    };
  }
  if (upload.cleanDurationMs !== undefined) {
    next = { ...next, uploadMs: (1 - DURATION_WEIGHT) * next.uploadMs + DURATION_WEIGHT * upload.cleanDurationMs };
  }
  if (upload.writeContention > 0 && upload.startedAtCut === state.cuts) {
    next = { ...next, writeConcurrency: Math.max(1, Math.floor(currentWidth(next, limits) / 2)) };
  }
  // One cut per congestion event: 429s of uploads that started before the last cut are old news.
  if (upload.rateLimited > 0 && upload.startedAtCut === state.cuts)
    next = cut(next, limits, options, Math.min(next.sinceCutMs, Math.max(0, upload.rateLimitedAgoMs ?? 0)));
  return next;
}

/** How the controller measures; each option is a change that workflows already running must not see. */
export interface ControllerOptions {
  /**
   * Leaving slow start, measure what Dropbox accepted from its first acceptance on, not from the
   * start: the first seconds may go to items whose sources fail, which says nothing about Dropbox.
   */
  measureFromFirstAccept?: boolean;
  /**
   * A probe measures the limit net of the bucket's refill before it, and one that finds the
   * estimate right holds the rate just under it for CONFIRMED_HOLD_MS before probing again.
   * Without the netting, a probe at an unchanged limit measured it about a second's burst too
   * high and met a second 429 at once; without the hold, a low limit (25/s) met a probe's 429
   * every few seconds, over 1% of requests.
   */
  holdConfirmedLimit?: boolean;
}

/** Cuts as of `agoMs` before now, when the 429 came. */
function cut(state: PacingState, limits: PacingLimits, options: ControllerOptions, agoMs = 0): PacingState {
  const windowMs = state.sinceCutMs - agoMs;
  const seconds = windowMs / 1000;
  const accepted = state.acceptedSinceCut / seconds;
  const previous = state.limitEstimatePerSecond;
  let estimate: number;
  let holdMs: number | undefined;
  if (previous === undefined) {
    // Leaving slow start: the rate overshot by however much the bucket's burst allowed. Cut from
    // it, or from what Dropbox accepted if that was less (slow uploads leave the paced rate far
    // ahead of what was sent); the next 429 comes soon and measures the limit.
    const from = options.measureFromFirstAccept ? (state.firstAcceptedMs ?? 0) : 0;
    const measured = (windowMs - from) / 1000;
    estimate =
      measured >= 1 && state.acceptedSinceCut > 0
        ? Math.min(state.ratePerSecond, state.acceptedSinceCut / measured)
        : state.ratePerSecond;
  } else if (seconds < 1) {
    estimate = BETA * previous;
  } else if (seconds < RECOVERY_SECONDS || accepted < BETA * previous) {
    // Refused before the rate climbed back to the estimate, or Dropbox accepted clearly less than
    // it: the estimate is too high (the limit fell, or it overshot). The bucket ran dry at both
    // cuts, so what Dropbox accepted in between, over that time, is the limit.
    estimate = accepted;
  } else {
    // The estimate held for the whole plateau, and the probe beyond it found the edge: what
    // Dropbox accepted during the probe is the better guide, as the limit may have risen. (Without
    // holdConfirmedLimit it includes the bucket's burst; if that makes it too high, the next cut
    // comes soon and measures.) The estimate never falls here: it was just shown to hold.
    const probe = state.probeFrom;
    const probeSeconds = probe ? (windowMs - probe.ms) / 1000 : 0;
    let probed = 0;
    if (probe && probeSeconds >= 1) {
      probed = (state.acceptedSinceCut - probe.accepted) / probeSeconds;
      if (options.holdConfirmedLimit) {
        // The bucket was dry at the last cut. Until the probe it refilled by what the estimate
        // allowed beyond what was sent (the Retry-After included), up to a second's worth, if
        // the estimate was right; the probe spent that too. Uploads count by when they ended.
        const during = probe.during ?? 0;
        const before = state.acceptedSinceCut - during;
        const refill = Math.min(previous * BUCKET_SECONDS, Math.max(0, previous * (probe.ms / 1000) - before));
        probed = (during - refill) / probeSeconds;
        if (Math.abs(probed - previous) <= CONFIRM_MARGIN * previous) holdMs = CONFIRMED_HOLD_MS;
      }
    }
    estimate = Math.max(previous, accepted, Math.min(probed, state.ratePerSecond));
  }
  estimate = clamp(estimate, limits.minRatePerSecond, limits.maxRatePerSecond);
  return {
    ...state,
    limitEstimatePerSecond: estimate,
    ratePerSecond: clamp(BETA * estimate, limits.minRatePerSecond, limits.maxRatePerSecond),
    cuts: state.cuts + 1,
    sinceCutMs: agoMs,
    acceptedSinceCut: 0,
    firstAcceptedMs: undefined,
    probeFrom: undefined,
    holdMs,
  };
}

/** The rate, W and N to use now, within the operator's caps. */
export function plan(
  state: PacingState,
  caps: OperatorLimits = {},
  limits: PacingLimits = DEFAULT_PACING_LIMITS,
): PacingPlan {
  const ratePerSecond = Math.min(state.ratePerSecond, caps.maxRatePerSecond ?? Infinity);
  const concurrency = Math.min(currentWidth({ ...state, ratePerSecond }, limits), caps.maxConcurrency ?? Infinity);
  const batchSize = clamp(
    Math.ceil(ratePerSecond * limits.batchSeconds),
    limits.minBatchSize,
    Math.min(limits.maxBatchSize, caps.maxBatchSize ?? Infinity),
  );
  return { ratePerSecond, concurrency, batchSize };
}

/**
 * W by Little's law: rate × upload duration uploads are in flight on average; half as many again
 * and one more absorb jitter, and each upload waits for its start time anyway.
 */
function currentWidth(state: PacingState, limits: PacingLimits): number {
  const needed = Math.ceil((state.ratePerSecond * state.uploadMs * 1.5) / 1000) + 1;
  return clamp(needed, 1, Math.min(limits.maxConcurrency, Math.floor(state.writeConcurrency)));
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** Checks limits supplied by a workflow input; throws naming the bad field. */
export function validatePacingLimits(limits: PacingLimits): void {
  for (const [key, value] of Object.entries(limits)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new Error(`pacing limit ${key} must be a positive number, got ${String(value)}`);
    }
  }
  if (limits.minBatchSize > limits.maxBatchSize) throw new Error('pacing limit minBatchSize exceeds maxBatchSize');
  if (limits.minRatePerSecond > limits.maxRatePerSecond)
    throw new Error('pacing limit minRatePerSecond exceeds maxRatePerSecond');
  if (limits.initialRatePerSecond < limits.minRatePerSecond || limits.initialRatePerSecond > limits.maxRatePerSecond) {
    throw new Error('pacing limit initialRatePerSecond must lie between minRatePerSecond and maxRatePerSecond');
  }
}
