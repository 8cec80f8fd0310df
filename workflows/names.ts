import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The task queue every Archiver worker polls. */
export const TASK_QUEUE = 'archiver';

const WORKFLOW_ID_PREFIX = 'archiver-customer-';

/** The business id of a customer's workflow: one long-lived workflow per customer. */
export function workflowIdFor(customerId: string): string {
  return WORKFLOW_ID_PREFIX + customerId;
}

/** The customer id of an Archiver workflow id, or undefined for any other id. */
export function customerIdOf(workflowId: string): string | undefined {
  return workflowId.startsWith(WORKFLOW_ID_PREFIX) ? workflowId.slice(WORKFLOW_ID_PREFIX.length) : undefined;
}

const VERIFY_ID_PREFIX = 'archiver-verify-';

/** The id of the workflow `archiver manifests <id>` starts. */
export function manifestsWorkflowIdFor(customerId: string): string {
  return `archiver-manifests-${customerId}`;
}

/** The id of a customer's verification workflow started on demand (`archiver verify`), and of its daily schedule. */
export function verifyWorkflowIdFor(customerId: string): string {
  return VERIFY_ID_PREFIX + customerId;
}

/** The id of the Temporal Schedule that verifies a customer's archive; its runs' ids start with it too. */
export function verifyScheduleIdFor(customerId: string): string {
  return VERIFY_ID_PREFIX + customerId;
}

/** Search attributes the Web UI filters on; they must be registered with the server before use. */
export const searchAttributes = {
  customerId: defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD),
  state: defineSearchAttributeKey('ArchiverState', SearchAttributeType.KEYWORD),
  backlog: defineSearchAttributeKey('ArchiverBacklog', SearchAttributeType.INT),
} as const;

/** What a customer's pipeline is doing, as shown in `status` and the `ArchiverState` attribute. */
export const ARCHIVER_STATES = [
  'running',
  'idle',
  'cooling-down',
  'paused',
  'needs-reauth',
  'storage-full',
  'quota-exceeded',
] as const;
export type ArchiverState = (typeof ARCHIVER_STATES)[number];
