/**
 * 6. Warm start: one customer drains, is stopped, gets new items and is started again. The seconds
 * until it reaches 90% of R on the second run (which starts at the limit the first one learned,
 * kept in Postgres), beside the first (slow start from the initial rate). Archiver only: the
 * baselines do not learn a limit.
 */
import { archiveTimes, archivedCount, createCustomers, insertItems } from '../data.js';
import { startDesign } from '../designs/index.js';
import { round } from '../metrics.js';
import { stopSignal } from '../../workflows/messages.js';
import { workflowIdFor } from '../../workflows/names.js';
import type { ResultRow, Scenario } from './types.js';

const RATE = 50;
/** The rate is measured over the last second of archivals. */
const WINDOW_MS = 1_000;

/** Seconds from `fromMs` until `times` (ms, sorted) first hold 90% of R over WINDOW_MS; null if never. */
export function secondsTo90pct(times: number[], fromMs: number): number | null {
  const needed = Math.ceil(0.9 * RATE * (WINDOW_MS / 1000));
  const after = times.filter((t) => t >= fromMs);
  for (let i = needed - 1; i < after.length; i++) {
    if ((after[i] as number) - (after[i - needed + 1] as number) <= WINDOW_MS)
      return ((after[i] as number) - fromMs) / 1000;
  }
  return null;
}

export const warmStart: Scenario = async (stack, { quick, designs, log }) => {
  if (!designs.includes('archiver')) return [];
  const items = quick ? 400 : 1_500;
  const id = `warm-start${quick ? '-q' : ''}`;
  const database = await stack.newDatabase(id.replace(/-/g, '_'));
  const handle = stack.temporal.client.workflow.getHandle(workflowIdFor(id));
  try {
    await createCustomers(database.db, stack.emulator, [id], RATE);
    const design = await startDesign('archiver', { stack, db: database.db, tag: id });
    try {
      const runs: { startedAt: number; seconds: number }[] = [];
      for (const run of [1, 2]) {
        log(`warm-start/archiver: run ${run}, ${items} items at R=${RATE}/s`);
        await insertItems(database.db, stack.media.url, id, items);
        const startedAt = Date.now();
        await design.add([id]);
        const deadline = startedAt + ((items / RATE) * 3 + 30) * 1000;
        while ((await archivedCount(database.db, [id])) < items * run) {
          if (Date.now() > deadline) throw new Error(`warm-start run ${run} did not drain in time`);
          await new Promise((r) => setTimeout(r, 250));
        }
        runs.push({ startedAt, seconds: (Date.now() - startedAt) / 1000 });
        await handle.signal(stopSignal, `bench: warm-start run ${run} drained`);
        await handle.result();
      }
      const times = await archiveTimes(database.db, [id]);
      const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
      const stored = await database.db.query<{ limit_estimate_per_second: number | null }>(
        'SELECT limit_estimate_per_second FROM customers WHERE id = $1',
        [id],
      );
      const row: ResultRow = {
        scenario: 'warm-start',
        design: 'archiver',
        items,
        limit: RATE,
        firstRunSecondsTo90pct: round(secondsTo90pct(times, first.startedAt), 2),
        secondRunSecondsTo90pct: round(secondsTo90pct(times, second.startedAt), 2),
        firstRunSeconds: round(first.seconds, 1),
        secondRunSeconds: round(second.seconds, 1),
        storedLimitEstimate: round(stored[0]?.limit_estimate_per_second ?? null, 2),
      };
      return [row];
    } finally {
      await design.stop();
    }
  } finally {
    await database.close();
  }
};
