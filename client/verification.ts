import { ScheduleAlreadyRunning, type Client, type ScheduleOptionsAction, type ScheduleSpec } from '@temporalio/client';
import { setTimeout as delay } from 'node:timers/promises';
import { verifyArchive, type VerificationSummary } from '../workflows/verify-archive.js';
import { TASK_QUEUE, verifyScheduleIdFor, verifyWorkflowIdFor } from '../workflows/names.js';

/** How often a customer's archive is verified against its Dropbox. */
export const DEFAULT_VERIFY_EVERY = '1 day';

/**
 * Creates the customer's verification schedule, or brings an existing one to this spec and task
 * queue (keeping whether an operator paused it).
 * @returns whether it was created or updated
 */
export async function ensureVerifySchedule(
  client: Client,
  customerId: string,
  options: { taskQueue?: string; every?: string } = {},
): Promise<'created' | 'updated'> {
  const spec: ScheduleSpec = { intervals: [{ every: options.every ?? DEFAULT_VERIFY_EVERY }] };
  const action: ScheduleOptionsAction = {
    type: 'startWorkflow',
    workflowType: verifyArchive,
    args: [{ customerId }],
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    workflowId: verifyWorkflowIdFor(customerId),
  };
  try {
    await client.schedule.create({
      scheduleId: verifyScheduleIdFor(customerId),
      spec,
      action,
      // A verification still listing when the next is due is not doubled.
      policies: { overlap: 'SKIP', catchupWindow: '1 hour' },
      state: { note: `Verifies the archive of ${customerId} against its Dropbox` },
    });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(verifyScheduleIdFor(customerId)).update((previous) => ({
      ...previous,
      spec,
      action,
    }));
    return 'updated';
  }
}

/**
 * Starts a verification of the customer's archive now, or joins the one `archiver verify` started
 * already; resolves with its counts once it is done.
 */
export async function verifyNow(
  client: Client,
  customerId: string,
  options: { taskQueue?: string } = {},
): Promise<VerificationSummary> {
  const handle = await client.workflow.start(verifyArchive, {
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    workflowId: verifyWorkflowIdFor(customerId),
    args: [{ customerId }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Verifying the archive of ${customerId} against its Dropbox`,
  });
  return handle.result();
}

/** Polls `progress` every second while `work` runs; resolves or rejects as `work` does. */
export async function withProgress<T>(work: Promise<T>, progress: () => Promise<void>, everyMs = 1_000): Promise<T> {
  const settled = work.then(
    () => 'done' as const,
    () => 'done' as const,
  );
  while ((await Promise.race([settled, delay(everyMs).then(() => 'tick' as const)])) === 'tick') await progress();
  return work;
}
