// `archiver manifests <id>`: writes the customer's due day manifests now, as the daily
// verification does after it has verified.
import * as wf from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureType, NON_RETRYABLE_FAILURES } from './failures.js';

/** One day manifest written. */
export interface WrittenManifest {
  /** `YYYY-MM-DD`, in the customer's time zone. */
  day: string;
  path: string;
  items: number;
  contentHash: string;
}

/** What one writeManifests call did. */
export interface ManifestsResult {
  /** False when the customer has manifests turned off; nothing is written then. */
  enabled: boolean;
  written: WrittenManifest[];
}

// A manifest is built from Postgres into an upload session page by page; the heartbeat keeps it alive.
export const { writeManifests } = wf.proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '1s',
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES, FailureType.BadInput],
  },
});

export interface WriteDayManifestsInput {
  customerId: string;
}

/** Writes the customer's due day manifests once and returns which. */
export async function writeDayManifests(input: WriteDayManifestsInput): Promise<ManifestsResult> {
  return writeManifests(input.customerId);
}
