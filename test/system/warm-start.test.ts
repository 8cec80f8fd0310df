// A new run of a customer's workflow starts at the limit its earlier runs learned, which Postgres
// keeps; a customer with none starts at the worker's initial rate.
import { describe, expect, it } from 'vitest';
import { startCustomer } from '../../client/archiver-client.js';
import { limitEstimate } from '../../db/customers.js';
import { stopSignal } from '../../workflows/messages.js';
import { workflowIdFor } from '../../workflows/names.js';
import { recordHistory, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const TOKEN = 'token-warm-start';
const UPLOADS_PER_SECOND = 20;
/** ARCHIVER_INITIAL_RATE of this file's worker, well below the default 10, so it shows. */
const INITIAL_RATE = 4;

const stack = useArchiverStack({
  emulator: { accounts: [{ token: TOKEN, accountId: 'warm' }], uploadsPerSecond: UPLOADS_PER_SECOND },
  worker: { initialRatePerSecond: INITIAL_RATE },
});

async function start(customer: string) {
  await startCustomer(stack.temporal.client, customer, 'Warm start', { taskQueue: stack.temporal.taskQueue });
}

describe('warm start', () => {
  it('starts a customer with no learned limit at the initial rate, and a new run at the learned limit', async () => {
    const customer = uniqueName('warm');
    const db = stack.database.db;
    await insertItems(db, customer, TOKEN, stack.media.url, 150, { bytes: 500 });
    await start(customer);
    // Nothing learned yet: slow start from the worker's initial rate, not the default 10/s.
    const first = await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived > 0);
    expect(first.limitEstimatePerSecond).toBeUndefined();
    expect(first.pacedRatePerSecond).toBeLessThan(10);
    const drained = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.totals.archived === 150 && s.state === 'idle' && s.limitEstimatePerSecond !== undefined,
      90_000,
    );
    // What the run learned is in Postgres once its next lease has carried it there.
    const learned = drained.limitEstimatePerSecond as number;
    await eventually(
      async () => {
        const stored = await limitEstimate(db, customer);
        return stored !== undefined && Math.abs(stored - learned) < 0.01 ? stored : undefined;
      },
      10_000,
      'the learned limit kept in Postgres',
    );

    // Stopped, then started again with new items: a fresh workflow, which starts at the learned limit.
    const handle = stack.temporal.client.workflow.getHandle(workflowIdFor(customer));
    await handle.signal(stopSignal, 'test: stop before starting again');
    await handle.result();
    await insertItems(db, customer, TOKEN, stack.media.url, 100, { bytes: 500 });
    await start(customer);
    const again = await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived > 0);
    expect(again.limitEstimatePerSecond).toBeCloseTo(learned, 1);
    expect(again.pacedRatePerSecond).toBeGreaterThan(0.9 * learned);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 100 && s.state === 'idle', 60_000);
    await recordHistory(stack.temporal.client, customer, 'warm-start');
  });
});
