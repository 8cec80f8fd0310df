// A customer's reconciliation against its Dropbox: one verification run, then a wake-up for the
// customer's workflow if items were re-queued, so their re-archival follows the customer's pace.
import * as wf from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureType, NON_RETRYABLE_FAILURES } from './failures.js';
import { itemsAvailableSignal } from './messages.js';
import { workflowIdFor } from './names.js';
import { writeManifests } from './write-manifests.js';

export interface VerifyArchiveInput {
  customerId: string;
}

/** What one verification found; the same counts are kept per run in Postgres (verification_runs). */
export interface VerificationSummary {
  runId: string;
  /** Files and pages listed in the customer's archive folder. */
  listed: number;
  pages: number;
  /** Archived items the run expected to find (archived before it started). */
  expected: number;
  present: number;
  missing: number;
  /** Found with a content hash other than the one stored when the item was archived. */
  changed: number;
  /** Missing and changed items put back to pending. */
  requeued: number;
  /** Files no item accounts for: reported, never touched. */
  unknown: number;
  /** Day manifests written after the verification (absent in runs before manifests existed). */
  manifestsWritten?: number;
}

/** Marks verification runs that write the customer's due day manifests once verified. */
export const DAY_MANIFESTS_PATCH = 'day-manifests';

const { startVerification } = wf.proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '30s', nonRetryableErrorTypes: [FailureType.BadInput] },
});
// Hundreds of thousands of files take a while to list; the heartbeat carries the cursor, so a retry resumes.
const { reconcileWithDropbox } = wf.proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1s',
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES, FailureType.BadInput],
  },
});

/** Verifies the customer's archive once and returns what it found. */
export async function verifyArchive(input: VerifyArchiveInput): Promise<VerificationSummary> {
  const { customerId } = input;
  const { runId } = await startVerification(customerId);
  const summary = await reconcileWithDropbox({ customerId, runId });
  if (summary.requeued > 0) {
    try {
      await wf.getExternalWorkflowHandle(workflowIdFor(customerId)).signal(itemsAvailableSignal);
    } catch (err) {
      // A customer that is not running picks its re-queued items up when it starts.
      wf.log.info('customer workflow not running; re-queued items wait for its start', {
        customerId,
        error: String(err),
      });
    }
  }
  if (wf.patched(DAY_MANIFESTS_PATCH)) {
    const { written } = await writeManifests(customerId);
    return { ...summary, manifestsWritten: written.length };
  }
  return summary;
}
