/** 1. Steady limit: one customer, a large backlog, its token limited to R uploads/s. */
import { archiveTimes } from '../data.js';
import { round } from '../metrics.js';
import { runDesign } from '../run-design.js';
import { uploadCounts } from '../sampler.js';
import type { ResultRow, Scenario } from './types.js';

export const STEADY_RATE = 50;
const FROM_S = 10;

export const steady: Scenario = async (stack, { quick, designs, log }) => {
  const items = quick ? 1_500 : 10_000;
  const rows: ResultRow[] = [];
  for (const design of designs) {
    const id = `steady-${design}${quick ? '-q' : ''}`;
    log(`steady/${design}: ${items} items at R=${STEADY_RATE}/s`);
    const run = await runDesign(
      stack,
      {
        tag: id,
        design,
        groups: [{ ids: [id], items }],
        limit: STEADY_RATE,
        watch: id,
        done: ({ archived, total }) => archived >= total,
        maxSeconds: (items / STEADY_RATE) * 1.6 + 20,
      },
      async (db, startedAt) => {
        const times = await archiveTimes(db, [id]);
        const from = startedAt + FROM_S * 1000;
        const after = times.filter((t) => t >= from);
        const last = times.at(-1) ?? from;
        const { requests, rejected } = uploadCounts(stack.emulator, [id]);
        return {
          archived: times.length,
          achievedRate: after.length > 1 && last > from ? after.length / ((last - from) / 1000) : null,
          uploadRequests: requests,
          upload429: rejected,
        };
      },
    );
    const c = run.collected as {
      archived: number;
      achievedRate: number | null;
      uploadRequests: number;
      upload429: number;
    };
    rows.push({
      scenario: 'steady',
      design,
      items,
      limit: STEADY_RATE,
      archived: c.archived,
      seconds: round(run.seconds, 1),
      timedOut: run.timedOut,
      achievedRate: round(c.achievedRate, 2),
      rateRatio: round(c.achievedRate === null ? null : c.achievedRate / STEADY_RATE),
      share429: round(c.uploadRequests ? c.upload429 / c.uploadRequests : 0, 4),
      uploadRequests: c.uploadRequests,
      upload429: c.upload429,
      series: run.series,
    });
  }
  return rows;
};
