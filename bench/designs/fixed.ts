/**
 * Fixed-concurrency baseline: per customer, lease batches of a fixed size and upload them with a
 * fixed W at once, retrying an item after Dropbox's Retry-After (else 1 s), with no adaptation.
 * Uploads share a pool as large as the worker's activity slots. An idle customer polls every second.
 */
import { baselineActivities } from './activities.js';
import { sleep, Slots } from './slots.js';
import { WORKER_SLOTS, type DesignContext, type RunningDesign } from './types.js';

export const FIXED = { concurrency: 16, batchSize: 200, idlePollMs: 1_000, defaultRetryMs: 1_000 };

export function startFixed(ctx: DesignContext): RunningDesign {
  const acts = baselineActivities(ctx);
  const slots = new Slots(ctx.slots ?? WORKER_SLOTS);
  const loops: Array<Promise<void>> = [];
  let stopped = false;
  const uploadUntilDone = async (customerId: string, itemId: string, leaseToken: string): Promise<void> => {
    while (!stopped) {
      const result = await slots.with(() => acts.upload(customerId, itemId, leaseToken));
      if (result.ok || !result.retryable) return;
      await sleep(result.retryAfterMs ?? FIXED.defaultRetryMs);
    }
  };
  const customerLoop = async (customerId: string): Promise<void> => {
    while (!stopped) {
      const batch = await acts.fetchBatch(customerId, FIXED.batchSize).catch(() => undefined);
      if (!batch || batch.items.length === 0) {
        await sleep(FIXED.idlePollMs);
        continue;
      }
      const queue = batch.items.map((i) => i.id);
      await Promise.all(
        Array.from({ length: FIXED.concurrency }, async () => {
          for (let id = queue.shift(); id !== undefined && !stopped; id = queue.shift())
            await uploadUntilDone(customerId, id, batch.leaseToken);
        }),
      );
    }
  };
  return {
    add(ids) {
      for (const c of ids) loops.push(customerLoop(c).catch(() => undefined));
      return Promise.resolve();
    },
    status: () => Promise.resolve(undefined),
    async stop() {
      stopped = true;
      await Promise.race([Promise.all(loops), sleep(40_000)]);
    },
  };
}
