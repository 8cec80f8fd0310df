import type { ChildProcess } from 'node:child_process';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';
import { verifyArchive } from '../../workflows/index.js';
import { TASK_QUEUE, verifyWorkflowIdFor } from '../../workflows/names.js';
import { startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { spawnWorkerProcess } from '../support/worker-process.js';

let worker: ChildProcess | undefined;

const stack = useArchiverStack({ namespace: 'metrics', worker: false });

afterAll(() => {
  worker?.kill('SIGKILL');
});

/** The value of one Prometheus sample whose name starts with `name` and whose labels include `label`. */
function sample(exposition: string, name: string, label: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(name) && l.includes(label));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

it("serves the SDK's metrics and per-customer counters and gauges on the worker's Prometheus endpoint", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const spawned = spawnWorkerProcess({
    TEMPORAL_ADDRESS: stack.temporal.address,
    TEMPORAL_NAMESPACE: stack.temporal.namespace,
    DATABASE_URL: stack.database.url,
    DROPBOX_API_BASE: stack.emulator.url,
    ARCHIVER_METRICS_ADDRESS: address,
  });
  worker = spawned.child;
  await spawned.started;

  const testStarted = Date.now();
  const token = uniqueName('tok');
  const customer = uniqueName('metered');
  stack.emulator.addAccount({ token, accountId: customer });
  stack.emulator.queueFaults(customer, [{ route: 'files/upload', fault: 'too_many_requests', retryAfter: 1 }]);
  await insertItems(stack.database.db, customer, token, stack.media.url, 6, { bytes: 1_000 });
  await startArchiving({ ...stack.temporal, taskQueue: TASK_QUEUE }, customer);
  await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 6 && s.state === 'idle');

  const label = `customer_id="${customer}"`;
  const exposition = await eventually(
    async () => {
      const text = await (await fetch(`http://${address}/metrics`)).text();
      return sample(text, 'archiver_items_archived', label) === 6 ? text : undefined;
    },
    20_000,
    'archiver_items_archived to reach 6',
  );
  expect(sample(exposition, 'archiver_bytes_archived', label)).toBe(6 * 1_000);
  expect(sample(exposition, 'archiver_dropbox_throttled', `${label}`)).toBe(1);
  expect(exposition).toMatch(/archiver_dropbox_throttled[^\n]*reason="too_many_requests"/);
  expect(sample(exposition, 'archiver_backlog', label)).toBe(0);
  expect(exposition).toContain('archiver_rate');
  // One series per state, the current one 1; and the customer's lag, 0 once nothing waits.
  const stateLines = exposition.split('\n').filter((l) => l.startsWith('archiver_state') && l.includes(label));
  expect(
    stateLines
      .find((l) => l.includes('state="idle"'))
      ?.split(' ')
      .at(-1),
    stateLines.join('\n'),
  ).toBe('1');
  expect(
    stateLines
      .find((l) => l.includes('state="needs-reauth"'))
      ?.split(' ')
      .at(-1),
  ).toBe('0');
  // 0 once nothing waits, or the insert time of an item the last lease still saw in flight.
  const oldest = sample(exposition, 'archiver_oldest_waiting_timestamp_seconds', label);
  expect(
    oldest === 0 || (oldest !== undefined && oldest >= testStarted / 1000 - 5 && oldest <= Date.now() / 1000),
  ).toBe(true);
  // The SDK's own runtime metrics are there too.
  expect(exposition).toMatch(
    /^temporal_workflow_completed|^temporal_activity_execution_latency|^temporal_worker_task_slots_available/m,
  );

  // A verification that finds a file deleted behind Archiver's back reports the drift, and when it ran.
  const [archived] = stack.emulator.files(customer);
  stack.emulator.removeFile(customer, archived?.pathLower as string);
  const verified = await stack.temporal.client.workflow.execute(verifyArchive, {
    taskQueue: TASK_QUEUE,
    workflowId: verifyWorkflowIdFor(customer),
    args: [{ customerId: customer }],
  });
  expect(verified).toMatchObject({ missing: 1, requeued: 1 });
  const afterVerify = await eventually(
    async () => {
      const text = await (await fetch(`http://${address}/metrics`)).text();
      return sample(text, 'archiver_archive_drift', label) === 1 ? text : undefined;
    },
    20_000,
    'archiver_archive_drift to reach 1',
  );
  const verifiedAt = sample(afterVerify, 'archiver_verified_timestamp_seconds', label) as number;
  expect(verifiedAt).toBeGreaterThanOrEqual(testStarted / 1000);
  expect(verifiedAt).toBeLessThanOrEqual(Date.now() / 1000);
}, 120_000);
