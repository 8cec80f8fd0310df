import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { initialPacing, type PacingState } from '../../workflows/pacing/controller.js';
import { WorkflowPacer } from '../../workflows/pacing/workflow-pacer.js';

/** A customer whose limit two cuts measured at 20/s, pacing at 20/s, just after its last cut. */
function measuredAt20(extra: Partial<PacingState> = {}): WorkflowPacer {
  const state: PacingState = {
    ...initialPacing(),
    ratePerSecond: 20,
    limitEstimatePerSecond: 20,
    cuts: 2,
    sinceCutMs: 0,
    ...extra,
  };
  const pacer = new WorkflowPacer(state, undefined, () => ({}), { fromDropboxOnly: true });
  pacer.busy();
  return pacer;
}

/** The gap between the batch's next two start times, ms. */
function batchGap(pacer: WorkflowPacer): number {
  const a = pacer.slot().startAt;
  return pacer.slot().startAt - a;
}

describe("the pacer's live lane", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-12-04T12:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  it("starts a live upload now although the batch's start times are booked 2 s ahead", () => {
    const pacer = measuredAt20();
    for (let n = 0; n < 40; n++) pacer.slot();
    expect(pacer.slot().startAt - Date.now()).toBeGreaterThanOrEqual(1_900);
    const lane = pacer.liveLane();
    expect(lane.slot().startAt).toBe(Date.now());
    // Live uploads that arrive together are spaced at the customer's pace among themselves.
    expect(lane.slot().startAt - Date.now()).toBeCloseTo(50, 0);
  });

  it('leaves the batch what a live stream leaves of 90% of the learned limit, and all of it once the stream ends', () => {
    const pacer = measuredAt20();
    expect(batchGap(pacer)).toBeCloseTo(50, 0);
    const lane = pacer.liveLane();
    // 4 live uploads a second for 10 s.
    for (let n = 0; n < 40; n++) {
      lane.slot();
      vi.advanceTimersByTime(250);
    }
    // 0.9 × 20 − 3.5 a second for the batch: a 5-s moving average of 4 a second is 3.5 after 10 s.
    const gap = batchGap(pacer);
    expect(1000 / gap).toBeGreaterThan(14);
    expect(1000 / gap).toBeLessThan(15);
    // Status shows the pace in all: the headroom's 18 a second, not the controller's own rate.
    expect(pacer.peek().plan.ratePerSecond).toBeCloseTo(18, 5);
    // A minute after the stream ended its rate has decayed away: the batch paces at the full rate.
    vi.advanceTimersByTime(60_000);
    expect(1000 / batchGap(pacer)).toBeGreaterThanOrEqual(20);
    expect(pacer.peek().plan.ratePerSecond).toBeGreaterThanOrEqual(20);
  });

  it('still probes past the headroom before the limit is measured twice, and a minute after the last cut', () => {
    for (const [state, probes] of [
      [{ cuts: 1 }, true],
      [{ cuts: 2, sinceCutMs: 61_000 }, true],
      [{ cuts: 2, sinceCutMs: 1_000 }, false],
    ] as const) {
      const pacer = measuredAt20(state);
      const lane = pacer.liveLane();
      for (let n = 0; n < 10; n++) {
        lane.slot();
        vi.advanceTimersByTime(100);
      }
      const batchRate = 1000 / batchGap(pacer);
      // The live lane's moving average is about 1.8 a second after this second: the batch gets
      // 20 − 1.8 a second when it may probe, 0.9 × 20 − 1.8 when it may not.
      if (probes) expect(batchRate).toBeGreaterThan(17.5);
      else expect(batchRate).toBeLessThan(16.5);
    }
  });
});
