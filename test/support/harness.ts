import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { temporal as proto } from '@temporalio/proto';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { Worker } from '@temporalio/worker';
import type { ActivityDeps } from '../../activities/types.js';
import { testKeyring } from './secret-keys.js';
import { archiveCustomer } from '../../workflows/archive-customer.js';
import { statusQuery, type ArchiveCustomerInput, type CustomerStatus } from '../../workflows/messages.js';
import { searchAttributes, workflowIdFor } from '../../workflows/names.js';
import { createArchiverWorker } from '../../workers/worker.js';
import { eventually, testDataConverter, workflowBundle, type TestTemporal } from './stack.js';

export const HISTORIES_DIR = new URL('../replay/histories/', import.meta.url);

/** Activity dependencies for a test worker: the keyring defaults to the tests' own. */
export type TestActivityDeps = Omit<ActivityDeps, 'keyring'> & Partial<Pick<ActivityDeps, 'keyring'>>;

/** An in-process worker on the test file's own task queue, with the real workflow bundle. */
export async function startTestWorker(
  temporal: TestTemporal,
  activities: TestActivityDeps,
): Promise<{ worker: Worker; stop: () => Promise<void> }> {
  const worker = await createArchiverWorker({
    connection: temporal.connection,
    namespace: temporal.namespace,
    taskQueue: temporal.taskQueue,
    activities: { keyring: testKeyring(), ...activities },
    workflowBundle: await workflowBundle(),
    dataConverter: testDataConverter(),
    shutdownGraceMs: 2_000,
  });
  const running = worker.run();
  return {
    worker,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

/** Starts a customer's workflow directly on the test task queue, with optional input overrides. */
export async function startArchiving(
  temporal: TestTemporal,
  customerId: string,
  input: Partial<ArchiveCustomerInput> = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof archiveCustomer>> {
  return temporal.client.workflow.start(archiveCustomer, {
    taskQueue: temporal.taskQueue,
    workflowId: workflowIdFor(customerId),
    args: [{ customerId, ...input }],
    typedSearchAttributes: [{ key: searchAttributes.customerId, value: customerId }],
  });
}

export function status(client: Client, customerId: string): Promise<CustomerStatus> {
  return client.workflow.getHandle(workflowIdFor(customerId)).query(statusQuery);
}

/** Waits until the customer's status satisfies `predicate`, returning that status. */
export async function statusWhen(
  client: Client,
  customerId: string,
  predicate: (s: CustomerStatus) => boolean,
  timeoutMs = 60_000,
): Promise<CustomerStatus> {
  let last: CustomerStatus | undefined;
  try {
    return await eventually(
      async () => {
        last = await status(client, customerId);
        return predicate(last) ? last : undefined;
      },
      timeoutMs,
      `status of ${customerId}`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  }
}

/**
 * Saves the history of the customer's first run (the one that did the work, before any
 * continue-as-new), or of the first run `pick` accepts, as JSON under test/replay/histories when
 * RECORD_HISTORIES is set (`npm run record-histories`), for the replay test to replay against
 * today's workflow code.
 */
export async function recordHistory(
  client: Client,
  customerId: string,
  name: string,
  pick: (history: History) => boolean = () => true,
): Promise<void> {
  if (!process.env.RECORD_HISTORIES) return;
  const runs = [];
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowIdFor(customerId)}'` }))
    runs.push(run);
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  for (const run of runs) {
    const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    if (!pick(history)) continue;
    mkdirSync(HISTORIES_DIR, { recursive: true });
    writeFileSync(join(HISTORIES_DIR.pathname, `${name}.json`), historyToJSON(history));
    return;
  }
  throw new Error(`no run of ${workflowIdFor(customerId)} has what ${name}.json should record`);
}

/**
 * The slice activities (uploadItems, stageItems) of a history that took more than one attempt,
 * with why the attempt before the last one failed: a failure type such as RateLimited, or
 * `timeout:HEARTBEAT` when the worker running it died.
 */
export function retriedSlices(history: History): { activity: string; attempt: number; lastFailure: string }[] {
  const events = history.events ?? [];
  const names = new Map(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => [Number(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name ?? '']),
  );
  return events.flatMap((e) => {
    const started = e.activityTaskStartedEventAttributes;
    const activity = names.get(Number(started?.scheduledEventId)) ?? '';
    if (!started || (started.attempt ?? 1) < 2 || !['uploadItems', 'stageItems'].includes(activity)) return [];
    const failure = started.lastFailure;
    const timeout = failure?.timeoutFailureInfo?.timeoutType;
    const lastFailure =
      timeout !== undefined && timeout !== null
        ? `timeout:${proto.api.enums.v1.TimeoutType[timeout].replace('TIMEOUT_TYPE_', '')}`
        : (failure?.applicationFailureInfo?.type ?? failure?.message ?? 'unknown');
    return [{ activity, attempt: started.attempt ?? 1, lastFailure }];
  });
}
