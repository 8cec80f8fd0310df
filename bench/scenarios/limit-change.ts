/** 2. Limit changes: R halves mid-run, later doubles back. */
import { round, secondsUntil429Under, secondsUntilRate, share429Between, rateBetween } from '../metrics.js';
import { runDesign } from '../run-design.js';
import type { ResultRow, Scenario } from './types.js';

const R = 50;

export const limitChange: Scenario = async (stack, { quick, designs, log }) => {
  const [halveAt, doubleAt, end] = quick ? [15, 35, 60] : [40, 80, 130];
  // Enough items that nobody runs out before the end, whatever its pace.
  const items = Math.ceil((halveAt * R + (doubleAt - halveAt) * (R / 2) + (end - doubleAt) * R) * 1.3);
  const rows: ResultRow[] = [];
  for (const design of designs) {
    const id = `limit-${design}${quick ? '-q' : ''}`;
    log(`limit-change/${design}: R=${R} → ${R / 2} at ${halveAt}s → ${R} at ${doubleAt}s, until ${end}s`);
    const run = await runDesign(stack, {
      tag: id,
      design,
      groups: [{ ids: [id], items }],
      limit: R,
      watch: id,
      limitChanges: [
        { atS: halveAt, limit: R / 2 },
        { atS: doubleAt, limit: R },
      ],
      done: ({ t, archived, total }) => t >= end || archived >= total,
      maxSeconds: end + 5,
    });
    const s = run.series;
    const phase = (from: number, to: number, limit: number) => ({
      from,
      to,
      limit,
      secondsTo429Under1pct: round(secondsUntil429Under(s, from, to), 1),
      secondsTo90pctOfNewLimit: round(secondsUntilRate(s, from, to, 0.9 * limit), 1),
      rate: round(rateBetween(s, from + 10, to), 2),
      share429: round(share429Between(s, from, to), 4),
    });
    const halved = phase(halveAt, doubleAt, R / 2);
    const doubled = phase(doubleAt, end, R);
    rows.push({
      scenario: 'limit-change',
      design,
      items,
      limit: R,
      secondsTo429Under1pct: halved.secondsTo429Under1pct,
      secondsTo90pctOfNewLimit: doubled.secondsTo90pctOfNewLimit,
      afterDoubling429Under1pct: doubled.secondsTo429Under1pct,
      afterHalving90pct: halved.secondsTo90pctOfNewLimit,
      phases: [phase(0, halveAt, R), halved, doubled],
      ranOutOfItems: (s.at(-1)?.archived ?? 0) >= items,
      series: s,
      events: [
        { t: halveAt, label: `R→${R / 2}` },
        { t: doubleAt, label: `R→${R}` },
      ],
    });
  }
  return rows;
};
