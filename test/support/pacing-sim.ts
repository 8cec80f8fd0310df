/**
 * A discrete-time simulation of one customer against a Dropbox-like token bucket, driving the
 * pacing controller the way the workflow does: uploads start no faster than the planned rate,
 * at most W in flight; a 429 holds the whole customer back for Retry-After (as the activities'
 * shared throttle does), and the workflow learns an upload's outcome only when it finishes.
 * Simulated time, so tests of the controller's dynamics are exact and not at the mercy of a
 * noisy machine.
 */
import {
  elapse,
  initialPacing,
  observe,
  plan,
  type ControllerOptions,
  type OperatorLimits,
  type PacingState,
} from '../../workflows/pacing/controller.js';

export interface SimOptions {
  seconds: number;
  /** The token's limit, uploads/s, as a function of time in seconds; null = unlimited. */
  limitAt: (t: number) => number | null;
  /** Upload round trip, ms. @default 30 */
  latencyMs?: number;
  caps?: OperatorLimits;
  initial?: PacingState;
  options?: ControllerOptions;
}

export interface SimSecond {
  t: number;
  accepted: number;
  refused: number;
  rate: number;
  limitEstimate: number | undefined;
  concurrency: number;
}

interface Upload {
  startedAt: number;
  atCut: number;
  rateLimited: number;
  /** When its first 429 reached the activity, ms. */
  rateLimitedAt?: number;
  sendAt: number;
  clean: boolean;
}

export function simulate(options: SimOptions): { seconds: SimSecond[]; state: PacingState } {
  const latency = options.latencyMs ?? 30;
  const caps = options.caps ?? {};
  let state = options.initial ?? initialPacing();
  let tokens = 0;
  let bucketLimit: number | null | undefined;
  let throttledUntil = 0;
  let nextSlot = 0;
  const inFlight: Array<Upload & { doneAt?: number }> = [];
  const seconds: SimSecond[] = [];
  let second: SimSecond | undefined;
  for (let now = 0; now < options.seconds * 1000; now++) {
    const limit = options.limitAt(now / 1000);
    if (limit !== bucketLimit) {
      bucketLimit = limit;
      tokens = limit === null ? 0 : Math.max(1, limit); // a new limit starts with a full bucket, as in the emulator
    } else if (limit !== null) {
      tokens = Math.min(Math.max(1, limit), tokens + limit / 1000);
    }
    if (now % 1000 === 0) {
      second = { t: now / 1000, accepted: 0, refused: 0, rate: 0, limitEstimate: undefined, concurrency: 0 };
      seconds.push(second);
    }
    const s = second as SimSecond;
    // Finished uploads reach the workflow.
    for (let i = inFlight.length - 1; i >= 0; i--) {
      const u = inFlight[i] as Upload & { doneAt?: number };
      if (u.doneAt !== undefined && u.doneAt <= now) {
        inFlight.splice(i, 1);
        state = observe(
          state,
          {
            accepted: true,
            rateLimited: u.rateLimited,
            // As the workflow learns it from the slice's report: when the 429 came.
            ...(u.rateLimitedAt !== undefined ? { rateLimitedAgoMs: now - u.rateLimitedAt } : {}),
            writeContention: 0,
            startedAtCut: u.atCut,
            cleanDurationMs: u.clean ? now - u.startedAt : undefined,
          },
          undefined,
          options.options,
        );
      }
    }
    // Requests reach Dropbox at sendAt; the answer arrives a round trip later.
    for (const u of inFlight) {
      if (u.doneAt !== undefined || u.sendAt > now) continue;
      if (now < throttledUntil) {
        u.sendAt = throttledUntil;
        u.clean = false;
        continue;
      }
      if (limit === null || tokens >= 1) {
        if (limit !== null) tokens -= 1;
        s.accepted++;
        u.doneAt = now + latency;
      } else {
        s.refused++;
        u.rateLimited++;
        u.rateLimitedAt ??= now + latency;
        u.clean = false;
        const retryAfterMs = Math.max(1, Math.ceil((1 - tokens) / limit)) * 1000;
        // The 429 is seen a round trip after sending; the activity records the hold-back then.
        throttledUntil = Math.max(throttledUntil, now + latency + retryAfterMs);
        u.sendAt = now + latency + retryAfterMs;
      }
    }
    state = elapse(state, 1, caps);
    const p = plan(state, caps);
    while (inFlight.length < p.concurrency && Math.max(nextSlot, now) <= now) {
      nextSlot = Math.max(nextSlot, now) + 1000 / p.ratePerSecond;
      inFlight.push({ startedAt: now, atCut: state.cuts, rateLimited: 0, sendAt: now, clean: true });
    }
    if (nextSlot < now) nextSlot = now;
    s.rate = p.ratePerSecond;
    s.limitEstimate = state.limitEstimatePerSecond;
    s.concurrency = p.concurrency;
  }
  return { seconds, state };
}

/** Accepted uploads per second and the share refused over seconds [from, to). */
export function summarize(seconds: SimSecond[], from: number, to: number): { rate: number; share429: number } {
  const span = seconds.filter((s) => s.t >= from && s.t < to);
  const accepted = span.reduce((n, s) => n + s.accepted, 0);
  const refused = span.reduce((n, s) => n + s.refused, 0);
  return { rate: accepted / span.length, share429: refused / Math.max(1, accepted + refused) };
}
