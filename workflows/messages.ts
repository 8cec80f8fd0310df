import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ArchiverState } from './names.js';
import type { CommitMode } from './batch.js';
import type { PacingLimits, PacingState } from './pacing.js';

/** New items were inserted for this customer; wake up if idle. */
export const itemsAvailableSignal = defineSignal('itemsAvailable');
/** Stop starting uploads until resumed; in-flight uploads finish. */
export const pauseSignal = defineSignal<[reason: string]>('pause');
/** Undo a pause (also clears needs-reauth and storage-full once the operator has fixed them). */
export const resumeSignal = defineSignal('resume');
/**
 * New Dropbox credentials are stored in Postgres (never sent here): check they work and, if the
 * customer was paused as needs-reauth, resume it. Fails, leaving the customer paused, if Dropbox
 * still refuses them.
 */
export const reconnectUpdate = defineUpdate<ReconnectResult>('reconnect');

export interface ReconnectResult {
  /** The Dropbox account the credentials belong to. */
  accountId: string;
  state: ArchiverState;
}

/** Everything an operator needs to know about one customer's pipeline. */
export const statusQuery = defineQuery<CustomerStatus>('status');

export interface Totals {
  archived: number;
  failed: number;
  /** Upload requests answered 429, over the customer's lifetime. */
  rateLimited: number;
  batches: number;
}

export interface CustomerStatus {
  customerId: string;
  state: ArchiverState;
  /** Pending items as of the last lease. */
  backlog: number;
  batchSize: number;
  concurrency: number;
  /** Items archived per second in the last batch. */
  ratePerSecond: number;
  totals: Totals;
  lastError: string | undefined;
  pauseReason: string | undefined;
  /** When a cool-down ends, as an ISO time. */
  coolingDownUntil: string | undefined;
}

/** The workflow's input, and what it carries across continue-as-new. */
export interface ArchiveCustomerInput {
  customerId: string;
  pacing?: PacingState;
  limits?: Partial<PacingLimits>;
  totals?: Totals;
  pauseReason?: string;
  /** Carried so a pause survives continue-as-new. */
  pausedState?: Extract<ArchiverState, 'paused' | 'needs-reauth' | 'storage-full'>;
  /** How items reach Dropbox. @default 'single' */
  commitMode?: CommitMode;
  /** How long an idle customer sleeps before checking for items it was not signalled about. @default 15 minutes */
  safetyPollMs?: number;
}
