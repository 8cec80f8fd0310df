/** What a run cost Temporal, read from the real histories of its customers' workflows (every run of each). */
import type { Client } from '@temporalio/client';
import { workflowIdFor } from '../workflows/names.js';

export interface HistoryCosts {
  /** History events, every run of every customer's workflow. */
  events: number;
  /** Activity task executions: each started activity's attempt count (a retry is another task). */
  activityTasks: number;
  /** Workflow tasks started. */
  workflowTasks: number;
  /** Workflow runs (continue-as-new starts another). */
  runs: number;
}

export async function historyCosts(client: Client, customerIds: string[]): Promise<HistoryCosts> {
  const costs: HistoryCosts = { events: 0, activityTasks: 0, workflowTasks: 0, runs: 0 };
  for (const customerId of customerIds) {
    const workflowId = workflowIdFor(customerId);
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      const history = await client.workflow.getHandle(workflowId, run.runId).fetchHistory();
      costs.runs += 1;
      for (const event of history.events ?? []) {
        costs.events += 1;
        if (event.activityTaskStartedEventAttributes)
          costs.activityTasks += event.activityTaskStartedEventAttributes.attempt ?? 1;
        if (event.workflowTaskStartedEventAttributes) costs.workflowTasks += 1;
      }
    }
  }
  return costs;
}
