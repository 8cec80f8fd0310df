/** 4. Pipeline ceiling: no rate limit; the pipeline's items/s next to the emulator's own capacity. */
import { archiveTimes, emulatorProbe } from '../data.js';
import { historyCosts, type HistoryCosts } from '../histories.js';
import { round } from '../metrics.js';
import { runDesign } from '../run-design.js';
import type { BenchStack } from '../stack.js';
import type { CommitMode } from '../../workflows/batch.js';
import type { DesignName } from '../designs/types.js';
import type { ResultRow, Scenario } from './types.js';

const CUSTOMERS = 4;

/** files/upload hammered straight through the Dropbox SDK, many at once, no database or Temporal. */
async function emulatorCapacity(stack: BenchStack, seconds: number, concurrency = 64): Promise<number> {
  const { dbx, body } = emulatorProbe(stack.emulator, `ceiling-emulator-${Date.now()}`);
  const until = Date.now() + seconds * 1000;
  let done = 0;
  let n = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        await dbx.filesUpload({
          path: `/cap/${n++}.bin`,
          contents: body,
          mode: { '.tag': 'add' },
          autorename: false,
          mute: true,
        });
        done++;
      }
    }),
  );
  return done / ((Date.now() - started) / 1000);
}

export const ceiling: Scenario = async (stack, { quick, designs, log }) => {
  const perCustomer = quick ? 300 : 2_500;
  const capacity = await emulatorCapacity(stack, quick ? 4 : 10);
  log(`ceiling: emulator alone ${capacity.toFixed(0)} uploads/s`);
  const runs = designs.flatMap((d): Array<{ design: DesignName; mode: CommitMode }> =>
    d === 'archiver'
      ? [
          { design: d, mode: 'single' },
          { design: d, mode: 'sessions' },
        ]
      : [{ design: d, mode: 'single' }],
  );
  const rows: ResultRow[] = [];
  for (const { design, mode } of runs) {
    const tag = `ceil-${design}-${mode}${quick ? '-q' : ''}`;
    const ids = Array.from({ length: CUSTOMERS }, (_, i) => `${tag}-${i}`);
    log(`ceiling/${design} (${mode}): ${CUSTOMERS}×${perCustomer} items, no limit`);
    const run = await runDesign(
      stack,
      {
        tag,
        design,
        commitMode: mode,
        groups: [{ ids, items: perCustomer }],
        limit: null,
        watch: ids[0],
        done: ({ archived, total }) => archived >= total,
        maxSeconds: quick ? 120 : 400,
      },
      async (db, startedAt) => {
        const times = await archiveTimes(db, ids);
        return { archived: times.length, seconds: ((times.at(-1) ?? startedAt) - startedAt) / 1000 };
      },
    );
    const c = run.collected as { archived: number; seconds: number };
    const itemsPerSecond = c.seconds > 0 ? c.archived / c.seconds : null;
    // The archiver's cost to a Temporal cluster, from the histories its workflows left.
    const costs: HistoryCosts | undefined =
      design === 'archiver' ? await historyCosts(stack.temporal.client, ids) : undefined;
    const perItem = (n: number | undefined) => (n === undefined || c.archived === 0 ? null : round(n / c.archived, 2));
    rows.push({
      scenario: 'ceiling',
      design,
      commitMode: mode,
      customers: CUSTOMERS,
      items: CUSTOMERS * perCustomer,
      archived: c.archived,
      seconds: round(c.seconds, 1),
      timedOut: run.timedOut,
      itemsPerSecond: round(itemsPerSecond, 1),
      emulatorItemsPerSecond: round(capacity, 1),
      ratioToEmulator: round(itemsPerSecond === null ? null : itemsPerSecond / capacity),
      eventsPerItem: perItem(costs?.events),
      activityTasksPerItem: perItem(costs?.activityTasks),
      workflowTasksPerItem: perItem(costs?.workflowTasks),
      workflowRuns: costs?.runs ?? null,
      cpuSecondsPer1000Items: c.archived > 0 ? round((run.cpuSeconds / c.archived) * 1000, 2) : null,
      series: run.series,
    });
  }
  return rows;
};
