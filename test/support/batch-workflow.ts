// A workflow that runs one batch through runBatch, so workflows/batch.ts can be tested with stubbed activities.
import { emptyResult, runBatch, Stragglers, type BatchResult, type CommitMode } from '../../workflows/batch.js';
import type { OperatorLimits, PacingState } from '../../workflows/pacing/controller.js';
import { WorkflowPacer } from '../../workflows/pacing/workflow-pacer.js';

export interface BatchWorkflowInput {
  itemIds: string[];
  mode: CommitMode;
  caps?: OperatorLimits;
  /** Hand stragglers over instead of waiting for them, as the workflow does from the detach-stragglers patch on. */
  detach?: boolean;
  /** Upload activities carry several items each, as from the upload-slices patch on. */
  slices?: boolean;
  /** Items a 429 handed back are planned after the other slice's start times, as from the replan-past-other-slices patch on. */
  replanPastOtherSlices?: boolean;
}

export interface BatchWorkflowResult extends BatchResult {
  /** The `done` counts onProgress reported, in order. */
  progress: number[];
  pacer: PacingState;
  /** Workflow ms from the start until runBatch returned. */
  returnedAfterMs: number;
  /** What the stragglers it handed over added up to, once they ended. */
  late: BatchResult;
}

export async function runOneBatch({
  itemIds,
  mode,
  caps = {},
  detach = false,
  slices = false,
  replanPastOtherSlices = false,
}: BatchWorkflowInput): Promise<BatchWorkflowResult> {
  const started = Date.now();
  const late = emptyResult();
  const stragglers = new Stragglers(
    () => pacer.typicalUploadMs(),
    (_itemIds, _lease, outcome) => {
      late.archived += outcome.archived;
      late.failed += outcome.failed;
    },
  );
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
    stragglers: detach ? stragglers : undefined,
    slices,
    replanPastOtherSlices,
  });
  const returnedAfterMs = Date.now() - started;
  await stragglers.settled();
  return { ...result, progress, pacer: pacer.state, returnedAfterMs, late };
}
