/** One (scenario, design) run: fresh database, same generated data, sampler, stop condition. */
import type { Db } from '../db/pool.js';
import { archivedCount, createCustomers, insertItems } from './data.js';
import { startDesign } from './designs/index.js';
import type { DesignName, RunningDesign } from './designs/types.js';
import type { CommitMode } from '../workflows/batch.js';
import { startSampler, type Sample } from './sampler.js';
import type { BenchStack, BenchTemporal } from './stack.js';

export interface CustomerGroup {
  ids: string[];
  items: number;
  /** Seconds after the run starts when the items are inserted and the customers started. @default 0 */
  atS?: number;
}

export interface RunSpec {
  tag: string;
  design: DesignName;
  commitMode?: CommitMode;
  /** The worker's activity slots (and the baselines' threads). @default WORKER_SLOTS */
  slots?: number;
  /** The Temporal server for the archiver. @default stack.temporal (fairness on) */
  temporal?: BenchTemporal;
  groups: CustomerGroup[];
  /** uploads/s per token at the start; null = unlimited. */
  limit: number | null;
  /** Limit changes at given seconds (applied to every customer's account). */
  limitChanges?: Array<{ atS: number; limit: number | null }>;
  /** The customer whose controller status is sampled. */
  watch?: string;
  /** Finish when this returns true (checked after each sample), or at maxSeconds. */
  done(ctx: {
    t: number;
    archived: number;
    total: number;
    archivedOf: (ids: string[]) => Promise<number>;
  }): boolean | Promise<boolean>;
  maxSeconds: number;
}

export interface RunOutcome {
  series: Sample[];
  startedAt: number;
  seconds: number;
  /**
   * CPU-seconds of the bench process during the run: the in-process worker (or the baseline's
   * threads) with the emulator, the media server and the sampler, which cost the same per item
   * for every design. Temporal and Postgres run as their own processes and are not in it.
   */
  cpuSeconds: number;
  timedOut: boolean;
  /** Whatever the scenario reads from the run's database before it is closed. */
  collected: Record<string, unknown>;
}

export async function runDesign(
  stack: BenchStack,
  spec: RunSpec,
  collect: (db: Db, startedAt: number) => Promise<Record<string, unknown>> = () => Promise.resolve({}),
): Promise<RunOutcome> {
  const database = await stack.newDatabase(spec.tag.replace(/-/g, '_'));
  let design: RunningDesign | undefined;
  try {
    const all = spec.groups.flatMap((g) => g.ids);
    await createCustomers(database.db, stack.emulator, all, spec.limit);
    const now = spec.groups.filter((g) => !g.atS);
    for (const g of now) for (const id of g.ids) await insertItems(database.db, stack.media.url, id, g.items);
    design = await startDesign(spec.design, {
      stack,
      db: database.db,
      tag: spec.tag,
      ...(spec.commitMode ? { commitMode: spec.commitMode } : {}),
      ...(spec.slots !== undefined ? { slots: spec.slots } : {}),
      ...(spec.temporal ? { temporal: spec.temporal } : {}),
    });
    const startedAt = Date.now();
    const cpuAtStart = process.cpuUsage();
    let limit = spec.limit;
    const active: string[] = [];
    const sampler = startSampler({
      db: database.db,
      emulator: stack.emulator,
      startedAt,
      customers: () => active,
      limit: () => limit,
      ...(spec.watch ? { status: () => design?.status(spec.watch as string) ?? Promise.resolve(undefined) } : {}),
    });
    const started = new Set<CustomerGroup>();
    const changes = [...(spec.limitChanges ?? [])];
    const total = spec.groups.reduce((n, g) => n + g.ids.length * g.items, 0);
    let timedOut = false;
    for (;;) {
      const t = (Date.now() - startedAt) / 1000;
      for (const g of spec.groups) {
        if (started.has(g) || (g.atS ?? 0) > t) continue;
        started.add(g);
        if (g.atS) for (const id of g.ids) await insertItems(database.db, stack.media.url, id, g.items);
        active.push(...g.ids);
        await design.add(g.ids);
      }
      while (changes[0] && changes[0].atS <= t) {
        limit = changes.shift()?.limit ?? null;
        for (const id of all) stack.emulator.configureAccount(id, { uploadsPerSecond: limit });
      }
      const last = sampler.samples.at(-1);
      if (
        last &&
        started.size === spec.groups.length &&
        (await spec.done({
          t: last.t,
          archived: last.archived,
          total,
          archivedOf: (ids) => archivedCount(database.db, ids),
        }))
      )
        break;
      if (t > spec.maxSeconds) {
        timedOut = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    await sampler.stop();
    const seconds = (Date.now() - startedAt) / 1000;
    const cpu = process.cpuUsage(cpuAtStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    await design.stop();
    design = undefined;
    const collected = await collect(database.db, startedAt);
    return { series: sampler.samples, startedAt, seconds, cpuSeconds, timedOut, collected };
  } finally {
    await design?.stop().catch(() => undefined);
    await database.close();
  }
}
