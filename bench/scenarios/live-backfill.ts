/**
 * 7. Live before backfill: one customer with a large backfill (items that occurred 30 days ago)
 * gets live items at 20% of R while it drains, beside the same live stream for a customer with
 * nothing else to do. The live items' p95 insert → archived latency with the backfill over
 * without it (goal ≤ 1.5), and the backfill's share of R meanwhile; and, for contrast, the same
 * with a live window of 0 (every lease oldest first, as before live items came first). Archiver
 * only: the baselines lease in id order.
 */
import { wakeCustomer } from '../../client/archiver-client.js';
import { archivedCount, backfillArchivedBetween, createCustomers, insertItems, liveLatencies } from '../data.js';
import { startDesign } from '../designs/index.js';
import { percentile, round } from '../metrics.js';
import type { BenchStack } from '../stack.js';
import type { ResultRow, Scenario } from './types.js';

const RATE = 50;
const LIVE_SHARE = 0.2;
const BACKFILL_AGO_MS = 30 * 24 * 3600_000;
/** The worker's default live window: what the latencies count as live. */
const LIVE_WINDOW_MS = 24 * 3600_000;
/** The backfill's customer runs this long before the live stream starts, so its pace is at R. */
const WARM_UP_S = 10;

/** The backfill's size: --backfill-items, else 20,000 (2,000 with --quick). */
export const DEFAULT_BACKFILL_ITEMS = { full: 20_000, quick: 2_000 };

interface LiveRun {
  p50: number | null;
  p95: number | null;
  live: number;
  /** Backfill items archived per second while the live stream ran, over R. */
  backfillShareOfR: number | null;
  liveSeconds: number;
}

async function liveRun(
  stack: BenchStack,
  id: string,
  backfill: number,
  liveSeconds: number,
  log: (m: string) => void,
  liveWindowMs?: number,
): Promise<LiveRun> {
  const database = await stack.newDatabase(id.replace(/-/g, '_'));
  const { db } = database;
  try {
    await createCustomers(db, stack.emulator, [id], RATE);
    if (backfill) await insertItems(db, stack.media.url, id, backfill, { occurredAgoMs: BACKFILL_AGO_MS });
    const design = await startDesign('archiver', {
      stack,
      db,
      tag: id,
      ...(liveWindowMs !== undefined ? { liveWindowMs } : {}),
    });
    try {
      await design.add([id]);
      if (backfill) await new Promise((r) => setTimeout(r, WARM_UP_S * 1000));
      const liveTotal = Math.round(liveSeconds * RATE * LIVE_SHARE);
      log(`live-backfill/archiver: ${liveTotal} live items at ${RATE * LIVE_SHARE}/s beside ${backfill} to backfill`);
      const liveStart = Date.now();
      let inserted = 0;
      while (inserted < liveTotal) {
        const due = Math.min(liveTotal, Math.floor(((Date.now() - liveStart) / 1000) * RATE * LIVE_SHARE));
        if (due > inserted) {
          await insertItems(db, stack.media.url, id, due - inserted, { first: backfill + inserted });
          inserted = due;
          // What the worker's notifier does on each insert (the bench's worker runs without one).
          await wakeCustomer(stack.temporal.client, id).catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const liveEnd = Date.now();
      // Oldest first, the live items wait for the whole backfill.
      const deadline = liveEnd + 120_000 + (backfill / RATE) * 2_000;
      while ((await liveLatencies(db, id, LIVE_WINDOW_MS)).length < liveTotal) {
        if (Date.now() > deadline) throw new Error(`${id}: live items not archived in time`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const latencies = await liveLatencies(db, id, LIVE_WINDOW_MS);
      const backfilled = backfill ? await backfillArchivedBetween(db, id, LIVE_WINDOW_MS, liveStart, liveEnd) : null;
      const remaining = backfill ? backfill + liveTotal - (await archivedCount(db, [id])) : 0;
      log(`live-backfill/archiver: ${id} done, ${remaining} of the backfill left`);
      return {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        live: latencies.length,
        backfillShareOfR: backfilled === null ? null : backfilled / ((liveEnd - liveStart) / 1000) / RATE,
        liveSeconds: (liveEnd - liveStart) / 1000,
      };
    } finally {
      await design.stop();
    }
  } finally {
    await database.close();
  }
}

export const liveBackfill: Scenario = async (stack, { quick, designs, log, backfillItems }) => {
  if (!designs.includes('archiver')) return [];
  const backfill = backfillItems ?? (quick ? DEFAULT_BACKFILL_ITEMS.quick : DEFAULT_BACKFILL_ITEMS.full);
  // The live stream runs while the backfill still has work: about 80% of R goes to it.
  const liveSeconds = quick ? 30 : 120;
  const suffix = quick ? '-q' : '';
  const alone = await liveRun(stack, `live-alone${suffix}`, 0, liveSeconds, log);
  const beside = await liveRun(stack, `live-backfill${suffix}`, backfill, liveSeconds, log);
  const oldestFirst = await liveRun(stack, `live-oldest-first${suffix}`, backfill, liveSeconds, log, 0);
  const row: ResultRow = {
    scenario: 'live-backfill',
    design: 'archiver',
    backfillItems: backfill,
    limit: RATE,
    liveRate: RATE * LIVE_SHARE,
    liveItems: beside.live,
    liveSeconds: round(beside.liveSeconds, 1),
    liveP95Ratio: round(alone.p95 && beside.p95 !== null ? beside.p95 / alone.p95 : null, 2),
    liveP95Seconds: round(beside.p95, 2),
    aloneP95Seconds: round(alone.p95, 2),
    liveP50Seconds: round(beside.p50, 2),
    aloneP50Seconds: round(alone.p50, 2),
    backfillShareOfR: round(beside.backfillShareOfR, 3),
    oldestFirstP95Seconds: round(oldestFirst.p95, 2),
    oldestFirstBackfillShareOfR: round(oldestFirst.backfillShareOfR, 3),
  };
  return [row];
};
