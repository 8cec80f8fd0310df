// A workflow that runs one batch through runBatch, so workflows/batch.ts can be tested with stubbed activities.
import { runBatch, type BatchResult, type CommitMode } from '../../workflows/batch.js';
import type { OperatorLimits, PacingState } from '../../workflows/pacing/controller.js';
import { WorkflowPacer } from '../../workflows/pacing/workflow-pacer.js';

export interface BatchWorkflowInput {
  itemIds: string[];
  mode: CommitMode;
  caps?: OperatorLimits;
}

export interface BatchWorkflowResult extends BatchResult {
  /** The `done` counts onProgress reported, in order. */
  progress: number[];
  pacer: PacingState;
}

export async function runOneBatch({ itemIds, mode, caps = {} }: BatchWorkflowInput): Promise<BatchWorkflowResult> {
  // Fast enough that start times do not slow the test down.
  const pacer = new WorkflowPacer(undefined, { initialRatePerSecond: 500 }, () => caps);
  pacer.busy();
  const progress: number[] = [];
  const result = await runBatch({
    customerId: 'batch-test',
    leaseToken: 'lease-1',
    itemIds,
    mode,
    stopped: () => false,
    pacer,
    onProgress: (done) => progress.push(done),
  });
  return { ...result, progress, pacer: pacer.state };
}
