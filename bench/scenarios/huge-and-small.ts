/**
 * 3. One huge, many small: do small customers wait behind a huge backlog? Every design runs with
 * the worker's usual activity slots (WORKER_SLOTS), where each customer's own bound on in-flight
 * uploads is what shares the worker. Then the archiver runs twice more with few slots, on a
 * Temporal server that honours the activities' fairness keys (customer id) and on one that
 * dispatches FIFO, so the table shows what fairness buys when tasks queue for slots.
 */
import { emulatorProbe, latencies } from '../data.js';
import type { BenchStack } from '../stack.js';
import { WORKER_SLOTS, type DesignName } from '../designs/types.js';
import { percentile, round } from '../metrics.js';
import { runDesign } from '../run-design.js';
import type { BenchTemporal } from '../stack.js';
import type { ResultRow, Scenario } from './types.js';

const R = 20;
/** The small customers arrive this long after the huge one started, so it is in full swing. */
const SMALL_AT_S = 5;
/**
 * Activity slots of the worker (and threads of the baselines) in this scenario: two for every three
 * customers (quick: 6 customers → 4 slots; full: 21 → 14). With the usual 100 nothing ever waits
 * for a slot, no task sits in Temporal's queue, and the dispatch order, FIFO or fair, decides
 * nothing. Every customer is held to R=20/s and an upload holds its slot for tens of ms plus its
 * wait for the paced start time, so each busy customer wants one or two slots; with fewer slots
 * than customers some customers' tasks always wait in the task queue, which is where fairness
 * keys act. (Measured with fairness keys set, quick: at 8 slots the small customers' p95 beside
 * the huge one equals their p95 alone, so there was nothing left for fairness to fix; at 4 the huge
 * customer slows them down.)
 */
export function hugeAndSmallSlots(customers: number): number {
  return Math.ceil((customers * 2) / 3);
}

/** The median seconds of one files/upload of a bench item through the SDK, one at a time, nothing else running. */
async function medianUploadSeconds(stack: BenchStack, uploads = 40): Promise<number> {
  const { dbx, body } = emulatorProbe(stack.emulator, `has-upload-time-${Date.now()}`);
  const took: number[] = [];
  for (let n = 0; n < uploads; n++) {
    const started = performance.now();
    await dbx.filesUpload({
      path: `/t/${n}.bin`,
      contents: body,
      mode: { '.tag': 'add' },
      autorename: false,
      mute: true,
    });
    took.push((performance.now() - started) / 1000);
  }
  return (
    percentile(
      took.sort((a, b) => a - b),
      50,
    ) ?? 0
  );
}

export const hugeAndSmall: Scenario = async (stack, { quick, designs, log }) => {
  const [hugeItems, smallCount, smallItems] = quick ? [3_000, 5, 50] : [20_000, 20, 100];
  // A small customer's best p95: its items at R, one after another, plus one upload.
  const uploadSeconds = await medianUploadSeconds(stack);
  const optimumSeconds = smallItems / R + uploadSeconds;
  const fewSlots = hugeAndSmallSlots(smallCount + 1);
  const rows: ResultRow[] = [];
  type Variant = {
    design: DesignName;
    fairness: boolean | null;
    slots: number;
    temporal?: () => Promise<BenchTemporal>;
  };
  // Every design with the usual slots (the archiver on the default server, fairness on)…
  const variants: Variant[] = designs.map((design) =>
    design === 'archiver'
      ? { design, fairness: true, slots: WORKER_SLOTS, temporal: () => Promise.resolve(stack.temporal) }
      : { design, fairness: null, slots: WORKER_SLOTS },
  );
  // …then the archiver with few slots, fairness on (the default server) and off (a second server).
  if (designs.includes('archiver')) {
    variants.push(
      { design: 'archiver', fairness: true, slots: fewSlots, temporal: () => Promise.resolve(stack.temporal) },
      { design: 'archiver', fairness: false, slots: fewSlots, temporal: () => stack.temporalWithoutFairness() },
    );
  }
  for (const variant of variants) {
    const { design, fairness, slots } = variant;
    const temporal = await variant.temporal?.();
    if (temporal && temporal.fairness !== fairness)
      throw new Error(`expected a Temporal server with fairness ${String(fairness)}`);
    const label = `${fairness === null ? design : `${design}-fair-${fairness ? 'on' : 'off'}`}-${slots}slots`;
    const measure = async (withHuge: boolean) => {
      const tag = `has-${label}-${withHuge ? 'mixed' : 'alone'}${quick ? '-q' : ''}`;
      const huge = `${tag}-huge`;
      const smalls = Array.from({ length: smallCount }, (_, i) => `${tag}-small-${i}`);
      log(
        `huge-and-small/${label}: ${smallCount}×${smallItems} small items ${withHuge ? `beside ${hugeItems} huge` : 'alone'}, R=${R}/s each, ${slots} slots`,
      );
      const run = await runDesign(
        stack,
        {
          tag,
          design,
          limit: R,
          watch: withHuge ? huge : smalls[0],
          slots,
          ...(temporal ? { temporal } : {}),
          groups: [
            ...(withHuge ? [{ ids: [huge], items: hugeItems }] : []),
            { ids: smalls, items: smallItems, atS: SMALL_AT_S },
          ],
          done: async ({ archivedOf }) => (await archivedOf(smalls)) >= smalls.length * smallItems,
          maxSeconds: quick ? 120 : 400,
        },
        async (db) => ({
          latencies: await latencies(db, smalls),
          hugeArchived: withHuge ? (await latencies(db, [huge])).length : 0,
        }),
      );
      const c = run.collected as { latencies: number[]; hugeArchived: number };
      return {
        run,
        p50: percentile(c.latencies, 50),
        p95: percentile(c.latencies, 95),
        archived: c.latencies.length,
        hugeArchived: c.hugeArchived,
      };
    };
    const alone = await measure(false);
    const mixed = await measure(true);
    const row: ResultRow = {
      scenario: 'huge-and-small',
      design,
      fairness,
      workerSlots: slots,
      limit: R,
      hugeItems,
      smallCustomers: smallCount,
      smallItems,
      smallP50Seconds: round(mixed.p50, 2),
      smallP95Seconds: round(mixed.p95, 2),
      aloneP50Seconds: round(alone.p50, 2),
      aloneP95Seconds: round(alone.p95, 2),
      smallP95Ratio: round(mixed.p95 !== null && alone.p95 ? mixed.p95 / alone.p95 : null),
      optimumSeconds: round(optimumSeconds, 2),
      medianUploadSeconds: round(uploadSeconds, 3),
      smallP95OverOptimum: round(mixed.p95 === null ? null : mixed.p95 / optimumSeconds),
      aloneP95OverOptimum: round(alone.p95 === null ? null : alone.p95 / optimumSeconds),
      smallArchived: mixed.archived,
      aloneArchived: alone.archived,
      hugeArchivedMeanwhile: mixed.hugeArchived,
      timedOut: mixed.run.timedOut || alone.run.timedOut,
      series: mixed.run.series,
      aloneSeries: alone.run.series,
      events: [{ t: SMALL_AT_S, label: 'small customers arrive' }],
    };
    log(
      `huge-and-small/${label}: smallP95Ratio ${String(row.smallP95Ratio)} (p95 ${String(row.smallP95Seconds)} s beside the huge one, ${String(row.aloneP95Seconds)} s alone)`,
    );
    rows.push(row);
  }
  return rows;
};
