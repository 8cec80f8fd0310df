/** Figures computed from a run's samples and database. */
import type { Sample } from './sampler.js';

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? null;
}

export const round = (v: number | null | undefined, digits = 3): number | null =>
  v === null || v === undefined || !Number.isFinite(v) ? null : Math.round(v * 10 ** digits) / 10 ** digits;

/** Items archived per second between sample times a and b (uses the samples at or after each). */
function at(series: Sample[], t: number): Sample | undefined {
  return series.find((s) => s.t >= t) ?? series.at(-1);
}

export function rateBetween(series: Sample[], a: number, b: number): number | null {
  const s0 = at(series, a);
  const s1 = at(series, b);
  if (!s0 || !s1 || s1.t - s0.t < 0.5) return null;
  return (s1.archived - s0.archived) / (s1.t - s0.t);
}

/** Share of upload requests answered 429 between sample times a and b; null if there were none. */
export function share429Between(series: Sample[], a: number, b: number): number | null {
  const s0 = at(series, a);
  const s1 = at(series, b);
  if (!s0 || !s1) return null;
  const requests = s1.uploadRequests - s0.uploadRequests;
  return requests > 0 ? (s1.upload429 - s0.upload429) / requests : null;
}

const WINDOW_S = 5;

/**
 * Seconds from `change` until the 429 share is under 1% and stays there: the earliest sample time
 * from which every 5-second window up to `end` has under 1% of its upload requests answered 429.
 */
export function secondsUntil429Under(series: Sample[], change: number, end: number, threshold = 0.01): number | null {
  const starts = series.filter((s) => s.t >= change && s.t + WINDOW_S <= end).map((s) => s.t);
  let candidate: number | null = null;
  for (const t of starts) {
    const share = share429Between(series, t, t + WINDOW_S) ?? 0;
    if (share < threshold) candidate ??= t;
    else candidate = null;
  }
  return candidate === null ? null : candidate - change;
}

/** Seconds from `change` until the archive rate over the last ≤5 s (all after the change) reaches `target`. */
export function secondsUntilRate(series: Sample[], change: number, end: number, target: number): number | null {
  for (const s of series) {
    if (s.t < change + 2 || s.t > end) continue;
    const rate = rateBetween(series, Math.max(change, s.t - WINDOW_S), s.t);
    if (rate !== null && rate >= target) return s.t - change;
  }
  return null;
}

/** Per-second deltas for plotting: items/s and 429s/s. */
export function perSecond(series: Sample[]): Array<{ t: number; itemsPerSecond: number; rejectedPerSecond: number }> {
  const out = [];
  for (let i = 1; i < series.length; i++) {
    const a = series[i - 1] as Sample;
    const b = series[i] as Sample;
    const dt = Math.max(0.001, b.t - a.t);
    out.push({
      t: b.t,
      itemsPerSecond: (b.archived - a.archived) / dt,
      rejectedPerSecond: (b.upload429 - a.upload429) / dt,
    });
  }
  return out;
}
