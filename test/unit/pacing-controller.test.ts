import { describe, expect, it } from 'vitest';
import {
  BETA,
  CONFIRMED_HOLD_MS,
  DEFAULT_PACING_LIMITS,
  elapse,
  initialPacing,
  observe,
  plan,
  validatePacingLimits,
  warmStart,
  type ControllerOptions,
  type PacingState,
  type UploadObservation,
} from '../../workflows/pacing/controller.js';
import { simulate, summarize } from '../support/pacing-sim.js';

const ok: UploadObservation = { accepted: true, rateLimited: 0, writeContention: 0, startedAtCut: 0 };
const refused: UploadObservation = { accepted: true, rateLimited: 1, writeContention: 0, startedAtCut: 0 };

/** A state that has run `seconds` at `rate` with every upload accepted. */
function ranAt(rate: number, seconds: number, from: PacingState = initialPacing()): PacingState {
  let s: PacingState = { ...from, ratePerSecond: rate };
  for (let i = 0; i < seconds; i++) {
    s = { ...elapse(s, 1000), ratePerSecond: rate };
    for (let n = 0; n < rate; n++) s = observe(s, { ...ok, startedAtCut: s.cuts });
  }
  return s;
}

describe('pacing controller', () => {
  it('grows the rate exponentially until the first 429 (slow start)', () => {
    const s = elapse(initialPacing(), 2000);
    expect(s.ratePerSecond).toBeCloseTo(DEFAULT_PACING_LIMITS.initialRatePerSecond * 1.5 ** 2);
    expect(s.limitEstimatePerSecond).toBeUndefined();
  });

  it('cuts the rate on too_many_requests, and measures the limit from what Dropbox accepted between two cuts', () => {
    // Leaving slow start at 80/s: the estimate starts from the rate that met the 429.
    let s = observe({ ...initialPacing(), ratePerSecond: 80, sinceCutMs: 5000, acceptedSinceCut: 450 }, refused);
    expect(s.limitEstimatePerSecond).toBe(80);
    expect(s.ratePerSecond).toBeCloseTo(BETA * 80);
    expect(s.cuts).toBe(1);
    // 2 s later, 60 accepted since the cut: the limit is 30/s, not 80.
    s = ranAt(s.ratePerSecond, 2, s);
    s = observe({ ...s, acceptedSinceCut: 59 }, { ...refused, startedAtCut: 1 });
    expect(s.limitEstimatePerSecond).toBeCloseTo(30);
    expect(s.ratePerSecond).toBeCloseTo(BETA * 30);
  });

  it('leaves slow start from what Dropbox accepted when the paced rate ran far ahead of it', () => {
    // Slow uploads: the rate grew to 900/s while only 100 uploads in 5 s went through.
    const s = observe({ ...initialPacing(), ratePerSecond: 900, sinceCutMs: 5000, acceptedSinceCut: 100 }, refused);
    expect(s.limitEstimatePerSecond).toBeCloseTo(20, 0);
  });

  it('leaves slow start from what Dropbox accepted since its first acceptance, not since items with bad sources began', () => {
    // The first 2 s went to items whose sources failed; then 90 uploads in 3 s went through.
    let s: PacingState = { ...initialPacing(), ratePerSecond: 60, sinceCutMs: 2000 };
    s = observe(s, ok);
    expect(s.firstAcceptedMs).toBe(2000);
    s = { ...s, sinceCutMs: 5000, acceptedSinceCut: 90 };
    const tooMany = { ...refused, accepted: false };
    expect(
      observe(s, tooMany, DEFAULT_PACING_LIMITS, { measureFromFirstAccept: true }).limitEstimatePerSecond,
    ).toBeCloseTo(30);
    // Before the option (workflows already running keep it): over all 5 s.
    expect(observe(s, tooMany).limitEstimatePerSecond).toBeCloseTo(18);
    // A cut starts the count again.
    expect(observe(s, tooMany).firstAcceptedMs).toBeUndefined();
  });

  it('starts a fresh run just below the learned limit, or in slow start from the initial rate', () => {
    const warm = warmStart({ limitEstimatePerSecond: 40, initialRatePerSecond: 10 });
    expect(warm).toMatchObject({ limitEstimatePerSecond: 40, ratePerSecond: BETA * 40, cuts: 0, sinceCutMs: 0 });
    // Back at the limit within a few seconds, as after a cut.
    expect(elapse(warm, 3000).ratePerSecond).toBeGreaterThanOrEqual(40);
    // A 429 soon after measures the limit from what Dropbox accepted, as after any cut.
    const fell = observe({ ...elapse(warm, 2000), acceptedSinceCut: 39 }, { ...refused, accepted: false });
    expect(fell.limitEstimatePerSecond).toBeCloseTo(19.5);
    const cold = warmStart({ limitEstimatePerSecond: undefined, initialRatePerSecond: 4 });
    expect(cold).toMatchObject({ limitEstimatePerSecond: undefined, ratePerSecond: 4 });
    expect(warmStart({ limitEstimatePerSecond: 1e9, initialRatePerSecond: 10 }).limitEstimatePerSecond).toBe(
      DEFAULT_PACING_LIMITS.maxRatePerSecond,
    );
  });

  it('counts an acceptance reported late (at the end of its slice) by when it happened', () => {
    const s = { ...initialPacing(), sinceCutMs: 2000, acceptedSinceCut: 10, firstAcceptedMs: 1500 };
    const late = { accepted: true, rateLimited: 0, writeContention: 0, startedAtCut: 0 };
    // Ended 1.2 s ago: 0.8 s after the count began, earlier than the first acceptance heard of.
    expect(observe(s, { ...late, endedAgoMs: 1200 })).toMatchObject({ acceptedSinceCut: 11, firstAcceptedMs: 800 });
    // Ended before the last cut: Dropbox accepted it before the count began.
    expect(observe(s, { ...late, endedAgoMs: 2500 })).toMatchObject({ acceptedSinceCut: 10, firstAcceptedMs: 1500 });
    // Reported as it ended (one upload per activity): as before.
    expect(observe(s, late)).toMatchObject({ acceptedSinceCut: 11, firstAcceptedMs: 1500 });
  });

  it('cuts as of when the 429 came, for a 429 reported after its slice was retried', () => {
    // 60 accepted in the 3 s up to the 429; its slice reported 1.5 s later.
    const s = { ...initialPacing(), ratePerSecond: 40, limitEstimatePerSecond: 25, sinceCutMs: 4500 };
    const late = observe({ ...s, acceptedSinceCut: 60 }, { ...refused, accepted: false, rateLimitedAgoMs: 1500 });
    expect(late.limitEstimatePerSecond).toBeCloseTo(20);
    // Its recovery runs from the 429, not from the report.
    expect(late.sinceCutMs).toBe(1500);
    // Reported as it came: over all 4.5 s, as before.
    expect(observe({ ...s, acceptedSinceCut: 60 }, { ...refused, accepted: false }).limitEstimatePerSecond).toBeCloseTo(
      60 / 4.5,
    );
  });

  it('cuts once per congestion event: a 429 of an upload started before the last cut is old news', () => {
    const once = observe({ ...initialPacing(), ratePerSecond: 40, sinceCutMs: 3000 }, refused);
    const again = observe(once, { ...refused, startedAtCut: 0 });
    expect(again.ratePerSecond).toBe(once.ratePerSecond);
    expect(again.cuts).toBe(1);
  });

  it('keeps an estimate that held through its plateau when the probe beyond it is refused', () => {
    const s = observe(
      {
        ...initialPacing(),
        ratePerSecond: 70,
        limitEstimatePerSecond: 50,
        cuts: 3,
        sinceCutMs: 12_000,
        acceptedSinceCut: 12 * 49,
      },
      { ...refused, startedAtCut: 3 },
    );
    expect(s.limitEstimatePerSecond).toBe(50);
    expect(s.ratePerSecond).toBeCloseTo(BETA * 50);
  });

  it('raises the estimate to what Dropbox accepted during the probe when the limit has risen', () => {
    // Estimate 25/s, but the limit has doubled: 3 s of plateau, then the probe beyond 25/s, all
    // accepted, until a 429 at 10 s.
    let s: PacingState = { ...initialPacing(), ratePerSecond: BETA * 25, limitEstimatePerSecond: 25, cuts: 2 };
    let probeAccepted = 0;
    for (let second = 0; second < 10; second++) {
      s = elapse(s, 1000);
      const n = Math.round(s.ratePerSecond);
      if (s.probeFrom) probeAccepted += n;
      for (let i = 0; i < n; i++) s = observe(s, { ...ok, startedAtCut: 2 });
    }
    const probeSeconds = (s.sinceCutMs - (s.probeFrom?.ms ?? 0)) / 1000;
    const sinceCut = s.acceptedSinceCut / (s.sinceCutMs / 1000);
    const cut = observe(s, { ...refused, startedAtCut: 2 });
    expect(cut.limitEstimatePerSecond).toBeGreaterThan(sinceCut + 3);
    expect(cut.limitEstimatePerSecond).toBeCloseTo((probeAccepted + 1) / probeSeconds, 0);
  });

  /**
   * A probe's 429, 11 s after a cut at estimate 25/s: 1 s of Retry-After, 7 s of plateau with
   * `plateauAccepted` accepted, then `probeAccepted` in the probe's `probeSeconds`.
   */
  function probeMet(plateauAccepted: number, probeSeconds: number, probeAccepted: number, options: ControllerOptions) {
    const state: PacingState = {
      ...initialPacing(),
      ratePerSecond: 40,
      limitEstimatePerSecond: 25,
      cuts: 2,
      sinceCutMs: 8_000 + probeSeconds * 1000,
      acceptedSinceCut: plateauAccepted + probeAccepted,
      probeFrom: { ms: 8_000, accepted: plateauAccepted, during: probeAccepted },
    };
    return observe(state, { ...refused, startedAtCut: 2 }, undefined, options);
  }
  const hold: ControllerOptions = { holdConfirmedLimit: true };

  it('measures a probe net of the bucket it refilled before, so a probe at an unchanged limit keeps the estimate', () => {
    // Limit 25/s, its bucket a second's worth: full after the Retry-After, so the 3-s probe gets
    // 3 × 25 and the bucket's 25. Counting the bucket, the probe seems to find 33/s.
    const unchanged = [7 * 24.5, 3, 100] as const;
    expect(probeMet(...unchanged, {}).limitEstimatePerSecond).toBeGreaterThan(30);
    expect(probeMet(...unchanged, {}).holdMs).toBeUndefined();
    const held = probeMet(...unchanged, hold);
    expect(held.limitEstimatePerSecond).toBeCloseTo(25, 0);
    // The probe confirmed the estimate: the next one waits.
    expect(held.holdMs).toBe(CONFIRMED_HOLD_MS);
  });

  it('counts an upload reported during the probe as part of it only if it ended after the probe began', () => {
    const probing: PacingState = {
      ...initialPacing(),
      limitEstimatePerSecond: 25,
      cuts: 2,
      sinceCutMs: 6_000,
      acceptedSinceCut: 50,
      probeFrom: { ms: 5_000, accepted: 40 },
    };
    const before = observe(probing, { ...ok, startedAtCut: 2, endedAgoMs: 2_000 });
    expect(before.probeFrom?.during).toBeUndefined();
    const during = observe(before, { ...ok, startedAtCut: 2, endedAgoMs: 500 });
    expect(during.probeFrom?.during).toBe(1);
    expect(during.acceptedSinceCut).toBe(52);
  });

  it('raises the estimate and does not wait when the probe finds a higher limit, or met a stall', () => {
    // Limit 50/s: the 9-s probe climbs to it, all accepted, and drains a bucket of 50.
    const raised = probeMet(7 * 24.5, 9, 330, hold);
    expect(raised.limitEstimatePerSecond).toBeGreaterThan(33);
    expect(raised.holdMs).toBeUndefined();
    // A 3-s probe that got less than 3 s of the estimate beyond the bucket: a stall during the
    // probe, not the limit.
    const stalled = probeMet(7 * 24.5, 3, 90, hold);
    expect(stalled.limitEstimatePerSecond).toBe(25);
    expect(stalled.holdMs).toBeUndefined();
  });

  it('after a probe confirmed the estimate, holds the rate just under it, then probes again', () => {
    const cut: PacingState = {
      ...initialPacing(),
      ratePerSecond: BETA * 50,
      limitEstimatePerSecond: 50,
      cuts: 1,
      holdMs: CONFIRMED_HOLD_MS,
    };
    const at = (ms: number) => elapse(cut, ms).ratePerSecond;
    for (const ms of [2_000, 10_000, CONFIRMED_HOLD_MS]) {
      expect(at(ms)).toBeGreaterThan(0.975 * 50);
      expect(at(ms)).toBeLessThan(0.985 * 50);
    }
    expect(at(CONFIRMED_HOLD_MS + 6_000)).toBeGreaterThan(50);
    expect(elapse(cut, CONFIRMED_HOLD_MS + 6_000).probeFrom).toBeDefined();
  });

  it('climbs back to the estimate, holds near it, then probes beyond it (CUBIC)', () => {
    const cut: PacingState = { ...initialPacing(), ratePerSecond: BETA * 50, limitEstimatePerSecond: 50, cuts: 1 };
    const at = (ms: number) => elapse(cut, ms).ratePerSecond;
    expect(at(1000)).toBeGreaterThan(BETA * 50);
    expect(at(1000)).toBeLessThan(50);
    expect(Math.abs(at(2900) - 50)).toBeLessThan(0.5);
    expect(at(6000)).toBeGreaterThan(50);
    expect(at(6000)).toBeLessThan(55);
    expect(at(12_000)).toBeGreaterThan(90);
  });

  it('narrows W on too_many_write_operations without touching the rate, and W recovers over time', () => {
    const s: PacingState = { ...initialPacing(), ratePerSecond: 100, limitEstimatePerSecond: 120, uploadMs: 200 };
    const before = plan(s);
    const contended = observe(s, { ...ok, writeContention: 1 });
    expect(contended.ratePerSecond).toBe(100);
    expect(contended.limitEstimatePerSecond).toBe(120);
    expect(plan(contended).concurrency).toBe(Math.floor(before.concurrency / 2));
    expect(plan(elapse(contended, 100_000)).concurrency).toBeGreaterThanOrEqual(before.concurrency);
  });

  it('leaves the rate and the estimate alone on 5xx and other transient failures', () => {
    const s: PacingState = { ...initialPacing(), ratePerSecond: 40, limitEstimatePerSecond: 45, cuts: 2 };
    const failed = observe(s, { accepted: false, rateLimited: 0, writeContention: 0, startedAtCut: 2 });
    expect(failed.ratePerSecond).toBe(40);
    expect(failed.limitEstimatePerSecond).toBe(45);
    expect(failed.cuts).toBe(2);
  });

  it('derives W from the rate and the upload duration, and N from the rate', () => {
    const s: PacingState = { ...initialPacing(), ratePerSecond: 40, uploadMs: 100 };
    expect(plan(s)).toEqual({ ratePerSecond: 40, concurrency: 7, batchSize: 400 });
    expect(plan({ ...s, uploadMs: 1000 }).concurrency).toBe(DEFAULT_PACING_LIMITS.maxConcurrency);
    expect(plan({ ...s, ratePerSecond: 0.5 })).toMatchObject({ concurrency: 2, batchSize: 5 });
  });

  it('learns the upload duration only from clean uploads', () => {
    const s = observe(initialPacing(), { ...ok, cleanDurationMs: 1000 });
    expect(s.uploadMs).toBeCloseTo(0.8 * 200 + 0.2 * 1000);
    expect(observe(s, ok).uploadMs).toBe(s.uploadMs);
  });

  it('stays within operator caps, and does not grow past a rate cap', () => {
    const caps = { maxRatePerSecond: 5, maxConcurrency: 2, maxBatchSize: 7 };
    const s = elapse({ ...initialPacing(), ratePerSecond: 40, uploadMs: 500 }, 10_000, caps);
    expect(s.ratePerSecond).toBe(5);
    expect(plan(s, caps)).toEqual({ ratePerSecond: 5, concurrency: 2, batchSize: 7 });
    expect(plan(s, {}).ratePerSecond).toBe(5);
  });

  it('keeps its whole state in plain data, so it survives continue-as-new and replay', () => {
    const s = ranAt(30, 3, observe({ ...initialPacing(), ratePerSecond: 60, sinceCutMs: 4000 }, refused));
    const carried = JSON.parse(JSON.stringify(s)) as PacingState;
    expect(carried).toEqual(s);
    expect(plan(elapse(carried, 1500))).toEqual(plan(elapse(s, 1500)));
  });

  it('rejects limits that cannot work, naming the field', () => {
    expect(() => validatePacingLimits({ ...DEFAULT_PACING_LIMITS, maxConcurrency: 0 })).toThrow(/maxConcurrency/);
    expect(() => validatePacingLimits({ ...DEFAULT_PACING_LIMITS, minBatchSize: 900 })).toThrow(/minBatchSize exceeds/);
    expect(() => validatePacingLimits({ ...DEFAULT_PACING_LIMITS, initialRatePerSecond: 5000 })).toThrow(
      /initialRatePerSecond/,
    );
  });
});

// The controller against a simulated token bucket (test/support/pacing-sim.ts): simulated time,
// so these check its dynamics exactly; `npm run bench` measures the real pipeline.
describe('pacing controller against a token bucket', () => {
  /** How a new run of the workflow learns (WorkflowPacer with every patch). */
  const learning: ControllerOptions = { measureFromFirstAccept: true, holdConfirmedLimit: true };

  it('holds at least 95% of a steady limit with at most 1% of requests refused', () => {
    const { seconds, state } = simulate({ seconds: 200, limitAt: () => 50, options: learning });
    const { rate, share429 } = summarize(seconds, 10, 200);
    expect(rate / 50).toBeGreaterThanOrEqual(0.95);
    expect(share429).toBeLessThanOrEqual(0.01);
    expect(state.limitEstimatePerSecond).toBeGreaterThan(48.5);
    expect(state.limitEstimatePerSecond).toBeLessThan(51.5);
  });

  it('from a warm start below the limit, finds it before holding there', () => {
    // Learned 44/s, now 50/s: the first probe starts with the bucket full and spends seconds under
    // the limit, so over the whole probe it reads low. It must not hold there as if confirmed.
    const { seconds } = simulate({
      seconds: 90,
      limitAt: () => 50,
      initial: warmStart({ limitEstimatePerSecond: 44, initialRatePerSecond: 10 }),
      options: learning,
    });
    const settled = seconds.filter((s) => s.t >= 40).map((s) => s.limitEstimate ?? 0);
    expect(Math.min(...settled)).toBeGreaterThan(48.5);
    expect(summarize(seconds, 40, 90).rate / 50).toBeGreaterThanOrEqual(0.95);
  });

  it('is back under 1% refused within 10 s of a halving, and at 90% of a doubled limit within 30 s', () => {
    const { seconds } = simulate({ seconds: 130, limitAt: (t) => (t < 40 ? 50 : t < 80 ? 25 : 50) });
    for (let t = 50; t + 5 <= 80; t++)
      expect(summarize(seconds, t, t + 5).share429, `refused share in [${t}, ${t + 5})`).toBeLessThan(0.01);
    expect(summarize(seconds, 50, 80).rate).toBeGreaterThan(0.9 * 25);
    const reached = seconds.findIndex((s, i) => i >= 85 && summarize(seconds, i - 5, i).rate >= 45);
    expect(reached - 80).toBeLessThanOrEqual(30);
  });

  it('with holdConfirmedLimit, meets at most one 429 in the 30 s after a halving settles, and still finds a doubling within 30 s', () => {
    const refusedSeconds = (options: ControllerOptions) => {
      const { seconds } = simulate({ seconds: 130, limitAt: (t) => (t < 40 ? 50 : t < 80 ? 25 : 50), options });
      const reached = seconds.findIndex((s, i) => i >= 85 && summarize(seconds, i - 5, i).rate >= 45);
      return { refused: seconds.filter((s) => s.t >= 50 && s.t < 80 && s.refused > 0).length, reached: reached - 80 };
    };
    const held = refusedSeconds({ holdConfirmedLimit: true, measureFromFirstAccept: true });
    expect(held.refused).toBeLessThanOrEqual(1);
    expect(held.reached).toBeLessThanOrEqual(30);
    // Probing every few seconds, as before, meets a 429 each time.
    expect(refusedSeconds({ measureFromFirstAccept: true }).refused).toBeGreaterThanOrEqual(2);
  });

  it('leaves no headroom unused when there is no limit, up to its own bounds', () => {
    const { seconds } = simulate({ seconds: 30, limitAt: () => null, latencyMs: 20 });
    expect(summarize(seconds, 20, 30).rate).toBeGreaterThan(500);
  });
});
