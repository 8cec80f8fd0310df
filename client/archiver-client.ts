import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { archiveCustomer } from '../workflows/archive-customer.js';
import type { CommitMode } from '../workflows/batch.js';
import {
  itemsAvailableSignal,
  pauseUpdate,
  reconnectUpdate,
  resumeUpdate,
  setLimitsUpdate,
  statusQuery,
  stopSignal,
  type CustomerStatus,
  type PauseResult,
  type ReconnectResult,
  type ResumeResult,
} from '../workflows/messages.js';
import type { OperatorLimits } from '../workflows/pacing/controller.js';
import { searchAttributes, TASK_QUEUE, workflowIdFor } from '../workflows/names.js';
import { ensureVerifySchedule } from './verification.js';

/** Thrown for an operator mistake (unknown customer, workflow not running); the CLI prints only the message. */
export class OperatorError extends Error {
  override name = 'OperatorError';
}

/** The customer's workflow or Dropbox refused what the operator asked (e.g. credentials still fail); exit 1. */
export class CustomerRefused extends Error {
  override name = 'CustomerRefused';
}

export interface StartResult {
  customerId: string;
  /** False when the customer's workflow was already running (starting is idempotent). */
  started: boolean;
}

/** Continue-as-new keeps it. */
const WORKFLOW_TASK_TIMEOUT = '5s';

/** Starts a customer's workflow, or finds the one already running, and schedules the verification of its archive. */
export async function startCustomer(
  client: Client,
  customerId: string,
  name: string,
  options: { commitMode?: CommitMode; taskQueue?: string } = {},
): Promise<StartResult> {
  await ensureVerifySchedule(client, customerId, { taskQueue: options.taskQueue });
  if (await isRunning(client, customerId)) return { customerId, started: false };
  // USE_EXISTING keeps a concurrent start of the same customer from failing.
  await client.workflow.start(archiveCustomer, {
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    workflowId: workflowIdFor(customerId),
    args: [{ customerId, ...(options.commitMode ? { commitMode: options.commitMode } : {}) }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    // A workflow task taken by a worker that then dies is retried after this long (default 10 s,
    // during which the customer uploads nothing). Its tasks take milliseconds.
    workflowTaskTimeout: WORKFLOW_TASK_TIMEOUT,
    memo: { customerName: name },
    typedSearchAttributes: [
      { key: searchAttributes.customerId, value: customerId },
      { key: searchAttributes.state, value: 'running' },
      { key: searchAttributes.backlog, value: 0 },
    ],
    staticSummary: `Archiving ${name} (${customerId}) into Dropbox`,
  });
  return { customerId, started: true };
}

/** Whether the customer's workflow is running now. */
export async function isRunning(client: Client, customerId: string): Promise<boolean> {
  try {
    const description = await client.workflow.getHandle(workflowIdFor(customerId)).describe();
    return description.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Runs an operation against a customer's running workflow, turning "not found" into a clear error. */
async function onRunningWorkflow<T>(
  client: Client,
  customerId: string,
  op: (h: ReturnType<Client['workflow']['getHandle']>) => Promise<T>,
): Promise<T> {
  try {
    return await op(client.workflow.getHandle(workflowIdFor(customerId)));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new OperatorError(
        `customer ${customerId} has no running archiver workflow (start it with: archiver start ${customerId})`,
      );
    }
    throw err;
  }
}

export function customerStatus(client: Client, customerId: string): Promise<CustomerStatus> {
  return onRunningWorkflow(client, customerId, (h) => h.query(statusQuery));
}

/** Pauses the customer, unless it is paused already; answers which. */
export function pauseCustomer(client: Client, customerId: string, reason: string): Promise<PauseResult> {
  return onRunningWorkflow(client, customerId, (h) => h.executeUpdate(pauseUpdate, { args: [reason] }));
}

/** Asks the customer's workflow to resume, and answers once it has decided: resumed, not paused, or refused. */
export function resumeCustomer(client: Client, customerId: string): Promise<ResumeResult> {
  return onRunningWorkflow(client, customerId, (h) => h.executeUpdate(resumeUpdate));
}

/**
 * Asks the customer's workflow to check new credentials and leave needs-reauth: the candidate
 * `candidateId` the CLI stored, promoted only if Dropbox accepts it, or else the stored credentials.
 */
export function reconnectCustomer(client: Client, customerId: string, candidateId?: string): Promise<ReconnectResult> {
  return onRunningWorkflow(client, customerId, (h) =>
    h.executeUpdate(reconnectUpdate, { args: [candidateId === undefined ? {} : { candidateId }] }),
  );
}

/** Caps the customer's pace; answers with the caps now in force. */
export function setCustomerLimits(client: Client, customerId: string, limits: OperatorLimits): Promise<OperatorLimits> {
  return onRunningWorkflow(client, customerId, (h) => h.executeUpdate(setLimitsUpdate, { args: [limits] }));
}

/** Ends the customer's workflow after its batch in flight, and waits for it to finish. */
export function stopCustomer(client: Client, customerId: string, reason: string): Promise<void> {
  return onRunningWorkflow(client, customerId, async (h) => {
    await h.signal(stopSignal, reason);
    await h.result();
  });
}

/** Tells the customer's workflow there is work, e.g. after failed items were re-queued. */
export function wakeCustomer(client: Client, customerId: string): Promise<void> {
  return onRunningWorkflow(client, customerId, (h) => h.signal(itemsAvailableSignal));
}
