/**
 * Seed-style cron baseline (the old design): every interval, a job per customer leases a fixed
 * batch and starts a "thread" per item at once; a thread retries its item with plain exponential
 * backoff (ignoring Retry-After), sleeping in its thread. Jobs overlap when they run long, as a
 * cron's do. Threads come from one pool as large as the worker's activity slots.
 */
import { baselineActivities } from './activities.js';
import { sleep, Slots } from './slots.js';
import { WORKER_SLOTS, type DesignContext, type RunningDesign } from './types.js';

export const CRON = { intervalMs: 5_000, batchSize: 500, firstBackoffMs: 1_000, maxBackoffMs: 32_000 };

export function startCron(ctx: DesignContext): RunningDesign {
  const acts = baselineActivities(ctx);
  const threads = new Slots(ctx.slots ?? WORKER_SLOTS);
  const customers: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const track = (p: Promise<void>): void => {
    const q = p.catch(() => undefined).finally(() => inFlight.delete(q));
    inFlight.add(q);
  };
  const thread = async (customerId: string, itemId: string, leaseToken: string): Promise<void> => {
    await threads.with(async () => {
      for (let attempt = 0; !stopped; attempt++) {
        const result = await acts.upload(customerId, itemId, leaseToken);
        if (result.ok || !result.retryable) return;
        await sleep(Math.min(CRON.maxBackoffMs, CRON.firstBackoffMs * 2 ** attempt));
      }
    });
  };
  const job = async (customerId: string): Promise<void> => {
    const batch = await acts.fetchBatch(customerId, CRON.batchSize);
    await Promise.all(batch.items.map((item) => thread(customerId, item.id, batch.leaseToken)));
  };
  const tick = (): void => {
    for (const c of customers) track(job(c));
  };
  const timer = setInterval(tick, CRON.intervalMs);
  return {
    add(ids) {
      customers.push(...ids);
      for (const c of ids) track(job(c));
      return Promise.resolve();
    },
    status: () => Promise.resolve(undefined),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.race([Promise.all(inFlight), sleep(40_000)]);
    },
  };
}
