import { connectClient } from '../../temporal/connection.js';
import { loadSecretKeyring } from '../../workers/config.js';
import { workflowIdFor } from '../../workflows/names.js';
import type { PlannedCustomer } from './plan.js';
import { archiverDataConverter } from '../../temporal/payload-codec.js';
import type { Payload } from '@temporalio/common';
import { decodePayload } from '../support/stack.js';

async function decodeSummary(payload: Payload | null | undefined): Promise<string | undefined> {
  if (!payload?.data) return undefined;
  try {
    return String(await decodePayload(payload));
  } catch {
    return '(unreadable summary)';
  }
}

function time(t: { seconds?: unknown } | null | undefined): string {
  if (!t?.seconds) return '-';
  return new Date(Number(t.seconds) * 1000).toISOString().slice(11, 19);
}

/**
 * What each customer's workflow is still waiting for, from Temporal: its pending activities with
 * their summaries ("upload item 42"), attempts, heartbeats and last failures. For the evidence of a
 * drain that did not finish.
 */
export async function pendingActivities(address: string, customers: PlannedCustomer[]): Promise<string[]> {
  const client = await connectClient({ address, namespace: 'default' }, archiverDataConverter(loadSecretKeyring()));
  const lines: string[] = [];
  try {
    for (const customer of customers) {
      const handle = client.workflow.getHandle(workflowIdFor(customer.id));
      const description = await handle.describe();
      const pending = description.raw.pendingActivities ?? [];
      if (pending.length === 0) continue;
      const summaries = new Map<string, string>();
      const history = await handle.fetchHistory();
      for (const event of history.events ?? []) {
        const id = event.activityTaskScheduledEventAttributes?.activityId;
        const summary = await decodeSummary(event.userMetadata?.summary);
        if (id && summary) summaries.set(id, summary);
      }
      for (const a of pending.slice(0, 10)) {
        const failure = a.lastFailure?.message ? ` last failure: ${a.lastFailure.message.slice(0, 200)}` : '';
        lines.push(
          `${customer.id}: ${a.activityType?.name} "${summaries.get(a.activityId ?? '') ?? a.activityId}" ` +
            `attempt ${a.attempt} started ${time(a.lastStartedTime)} last heartbeat ${time(a.lastHeartbeatTime)}` +
            ` on ${a.lastWorkerIdentity || '-'}${failure}`,
        );
      }
      if (pending.length > 10) lines.push(`${customer.id}: … and ${pending.length - 10} more pending activities`);
    }
  } finally {
    await client.connection.close();
  }
  return lines;
}
