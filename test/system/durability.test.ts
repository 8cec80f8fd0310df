import { temporal } from '@temporalio/proto';
import { afterAll, expect, it } from 'vitest';
import { TASK_QUEUE, workflowIdFor } from '../../workflows/names.js';
import { recordHistory, retriedSlices, startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { expectArchivedExactlyOnce } from '../support/verify.js';
import { workerProcesses } from '../support/worker-process.js';

const workers = workerProcesses(() => stack);

const ITEMS = 200;
const STARTED = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

// No 429s: a slice's retry after the kill then shows the heartbeat timeout that caused it (a
// RateLimited retry would hide it), while the customers' capped pace keeps the drain going long enough.
const RATE = 10;
const stack = useArchiverStack({ namespace: 'durability', emulator: { uploadsPerSecond: 100 }, worker: false });

afterAll(() => {
  workers.killAll();
});

async function countByState(customerIds: string[]): Promise<Record<string, number>> {
  const rows = await stack.database.db.query<{ state: string; n: string }>(
    'SELECT state, count(*) AS n FROM archive_items WHERE customer_id = ANY($1) GROUP BY state',
    [customerIds],
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

it('loses and duplicates nothing when the worker is SIGKILLed mid-drain and a new one takes over', async () => {
  const customers = [uniqueName('crash'), uniqueName('crash')].map((id) => ({
    id,
    accountId: id,
    token: `token-${id}`,
  }));
  for (const c of customers) {
    stack.emulator.addAccount({ token: c.token, accountId: c.accountId });
    await insertItems(stack.database.db, c.id, c.token, stack.media.url, ITEMS, {
      kind: 'call_recording',
      bytes: 50_000,
    });
  }
  const ids = customers.map((c) => c.id);
  const first = workers.spawn();
  await first.started;
  await Promise.all(
    customers.map((c) =>
      startArchiving({ ...stack.temporal, taskQueue: TASK_QUEUE }, c.id, { limits: { maxRatePerSecond: RATE } }),
    ),
  );

  // Kill it while items are in flight: some archived, some leased, some still pending, and a
  // slice's upload activity running (not, say, every customer waiting out a Retry-After).
  const sliceRunning = async () => {
    for (const id of ids) {
      const pending = (await stack.temporal.client.workflow.getHandle(workflowIdFor(id)).describe()).raw
        .pendingActivities;
      if (pending?.some((a) => a.activityType?.name === 'uploadItems' && a.state === STARTED)) return true;
    }
    return false;
  };
  const atKill = await eventually(
    async () => {
      const counts = await countByState(ids);
      const ready = (counts.archived ?? 0) >= 60 && (counts.leased ?? 0) > 0 && (await sliceRunning());
      return ready ? counts : undefined;
    },
    60_000,
    'a drain in progress',
  );
  first.child.kill('SIGKILL');
  expect(atKill.pending ?? 0).toBeGreaterThan(0);

  const second = workers.spawn();
  await second.started;
  await Promise.all(
    ids.map((id) => statusWhen(stack.temporal.client, id, (s) => s.state === 'idle' && s.backlog === 0, 180_000)),
  );
  await eventually(
    async () => ((await countByState(ids)).archived === ITEMS * 2 ? true : undefined),
    120_000,
    'every item archived',
  );
  expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, customers)).toBe(ITEMS * 2);
  // The kill caught slices mid-flight: Temporal retried them on the new worker after their heartbeat timed out.
  const crashed = [];
  for (const id of ids) {
    for await (const run of stack.temporal.client.workflow.list({ query: `WorkflowId = '${workflowIdFor(id)}'` })) {
      const history = await stack.temporal.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      if (retriedSlices(history).some((s) => s.lastFailure === 'timeout:HEARTBEAT')) crashed.push(id);
    }
  }
  expect(crashed.length).toBeGreaterThan(0);
  await recordHistory(stack.temporal.client, crashed[0] as string, 'worker-crash-mid-slice', (history) =>
    retriedSlices(history).some((s) => s.lastFailure === 'timeout:HEARTBEAT'),
  );
  second.child.kill('SIGTERM');
}, 300_000);
