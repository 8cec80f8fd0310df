/** 3. One huge, many small: do small customers wait behind a huge backlog? */
import { latencies } from '../data.js';
import { percentile, round } from '../metrics.js';
import { runDesign } from '../run-design.js';
import type { ResultRow, Scenario } from './types.js';

const R = 20;
/** The small customers arrive this long after the huge one started, so it is in full swing. */
const SMALL_AT_S = 5;

export const hugeAndSmall: Scenario = async (stack, { quick, designs, log }) => {
  const [hugeItems, smallCount, smallItems] = quick ? [3_000, 5, 50] : [20_000, 20, 100];
  const rows: ResultRow[] = [];
  for (const design of designs) {
    const measure = async (withHuge: boolean) => {
      const tag = `has-${design}-${withHuge ? 'mixed' : 'alone'}${quick ? '-q' : ''}`;
      const huge = `${tag}-huge`;
      const smalls = Array.from({ length: smallCount }, (_, i) => `${tag}-small-${i}`);
      log(`huge-and-small/${design}: ${smallCount}×${smallItems} small items ${withHuge ? `beside ${hugeItems} huge` : 'alone'}, R=${R}/s each`);
      const run = await runDesign(stack, {
        tag, design, limit: R, watch: withHuge ? huge : smalls[0],
        groups: [...(withHuge ? [{ ids: [huge], items: hugeItems }] : []), { ids: smalls, items: smallItems, atS: SMALL_AT_S }],
        done: async ({ archivedOf }) => (await archivedOf(smalls)) >= smalls.length * smallItems,
        maxSeconds: quick ? 120 : 400,
      }, async (db) => ({ latencies: await latencies(db, smalls), hugeArchived: withHuge ? (await latencies(db, [huge])).length : 0 }));
      const c = run.collected as { latencies: number[]; hugeArchived: number };
      return { run, p50: percentile(c.latencies, 50), p95: percentile(c.latencies, 95), archived: c.latencies.length, hugeArchived: c.hugeArchived };
    };
    const alone = await measure(false);
    const mixed = await measure(true);
    rows.push({
      scenario: 'huge-and-small', design, limit: R, hugeItems, smallCustomers: smallCount, smallItems,
      smallP50Seconds: round(mixed.p50, 2), smallP95Seconds: round(mixed.p95, 2),
      aloneP50Seconds: round(alone.p50, 2), aloneP95Seconds: round(alone.p95, 2),
      smallP95Ratio: round(mixed.p95 !== null && alone.p95 ? mixed.p95 / alone.p95 : null),
      smallArchived: mixed.archived, aloneArchived: alone.archived, hugeArchivedMeanwhile: mixed.hugeArchived,
      timedOut: mixed.run.timedOut || alone.run.timedOut,
      series: mixed.run.series, aloneSeries: alone.run.series, events: [{ t: SMALL_AT_S, label: 'small customers arrive' }],
    });
  }
  return rows;
};
