import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ArchiverState } from './names.js';
import type { CommitMode } from './batch.js';
import type { OperatorLimits, PacingLimits, PacingState } from './pacing/controller.js';

/** New items were inserted for this customer; wake up if idle. */
export const itemsAvailableSignal = defineSignal('itemsAvailable');
/** Stop starting uploads until resumed; in-flight uploads finish. */
export const pauseSignal = defineSignal<[reason: string]>('pause');
/** Undo a pause (also clears needs-reauth and storage-full once the operator has fixed them, and ends quota-exceeded early). */
export const resumeSignal = defineSignal('resume');
/**
 * Pauses like the pause signal, and answers what happened: a customer already paused (as
 * needs-reauth, storage-full or by an operator) keeps its pause and reason.
 */
export const pauseUpdate = defineUpdate<PauseResult, [reason: string]>('pause');

export interface PauseResult {
  outcome: 'paused' | 'already-paused';
  state: ArchiverState;
  reason: string | undefined;
}

/**
 * Resumes like the resume signal, and answers once the workflow has decided: resumed, not paused
 * at all, or refused (a needs-reauth customer whose credentials Dropbox still rejects), with why.
 */
export const resumeUpdate = defineUpdate<ResumeResult>('resume');

export interface ResumeResult {
  outcome: 'resumed' | 'not-paused' | 'refused';
  state: ArchiverState;
  reason?: string | undefined;
}

/** Throws unless `reason` is a non-blank string of at most 500 characters. Synchronous, as update validators must be. */
export function validateReason(reason: unknown): void {
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 500)
    throw new Error('reason must be 1-500 characters, not blank');
}

/**
 * New Dropbox credentials are in Postgres (never sent here): check they work and, if the customer
 * was paused as needs-reauth, resume it. With a `candidateId`, the credentials are the candidate
 * the CLI stored beside the customer's, which become its credentials only if Dropbox accepts them;
 * without one (older clients), the stored credentials are checked. Fails, changing nothing, if
 * Dropbox refuses them. Histories from before the request existed hold no argument.
 */
export const reconnectUpdate = defineUpdate<ReconnectResult, [request: ReconnectRequest]>('reconnect');

export interface ReconnectRequest {
  /** Names the candidate credentials to check (db/customers.ts storeCandidateCredentials); not a secret. */
  candidateId?: string;
}

export interface ReconnectResult {
  /** The Dropbox account the credentials belong to. */
  accountId: string;
  state: ArchiverState;
}

/**
 * The customer disconnected its storage: finish the batch in flight, then end the workflow.
 * `archiver stop` also marks the customer disconnected so `start --all` leaves it alone.
 */
export const stopSignal = defineSignal<[reason: string]>('stop');

/** Caps a customer's pace (null removes a cap); answers with the caps now in force. The validator rejects bad values synchronously. */
export const setLimitsUpdate = defineUpdate<OperatorLimits, [OperatorLimits]>('setLimits');

/** Throws, naming the field, unless every cap is a positive number or null. Synchronous, as update validators must be. */
export function validateOperatorLimits(limits: OperatorLimits): void {
  if (typeof limits !== 'object' || limits === null) throw new Error('limits must be an object');
  for (const key of Object.keys(limits)) {
    if (!['maxRatePerSecond', 'maxConcurrency', 'maxBatchSize'].includes(key)) throw new Error(`unknown limit ${key}`);
    const value = limits[key as keyof OperatorLimits];
    if (value === null || value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
      throw new Error(`${key} must be a positive number or null, got ${String(value)}`);
    if (key !== 'maxRatePerSecond' && !Number.isInteger(value))
      throw new Error(`${key} must be a whole number, got ${value}`);
  }
}

/** Everything an operator needs to know about one customer's pipeline. */
export const statusQuery = defineQuery<CustomerStatus>('status');

export interface Totals {
  archived: number;
  /** Items archived on `day` (UTC), for the operator's "archived today". */
  archivedToday?: number;
  day?: string;
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
  /** Items waiting for their retry time after failing (their source or Dropbox kept failing). */
  retryWaiting?: number | undefined;
  /** When the oldest item not yet archived or failed was inserted, as an ISO time: the customer's lag. */
  oldestWaitingSince?: string | undefined;
  batchSize: number;
  concurrency: number;
  /** Items archived per second in the last batch. */
  ratePerSecond: number;
  /** Upload starts per second the controller paces the customer at now (within operator caps). */
  pacedRatePerSecond: number;
  /**
   * The controller's estimate of the token's Dropbox rate limit, in uploads per second;
   * undefined until the customer has met a 429.
   */
  limitEstimatePerSecond: number | undefined;
  totals: Totals;
  lastError: string | undefined;
  pauseReason: string | undefined;
  /** When a quota-exceeded pause ends by itself, as an ISO time. */
  pausedUntil?: string | undefined;
  /** When a cool-down ends, as an ISO time. */
  coolingDownUntil: string | undefined;
  /** Caps set by an operator (archiver set-limits). */
  operatorLimits: OperatorLimits;
}

/** The workflow's input, and what it carries across continue-as-new. */
export interface ArchiveCustomerInput {
  customerId: string;
  /** The rate controller's state; carried across continue-as-new. */
  controller?: PacingState;
  /** Bounds of the rate controller. @default DEFAULT_PACING_LIMITS */
  limits?: Partial<PacingLimits>;
  totals?: Totals;
  pauseReason?: string;
  /** Carried so a pause survives continue-as-new. */
  pausedState?: Extract<ArchiverState, 'paused' | 'needs-reauth' | 'storage-full' | 'quota-exceeded'>;
  /** When a quota-exceeded pause ends by itself, epoch ms; carried so the next run keeps the same end. */
  pausedUntilMs?: number;
  /** Caps set by an operator; carried across continue-as-new. */
  operatorLimits?: OperatorLimits;
  /** The most recent error, carried so status still shows it after continue-as-new. */
  lastError?: string | undefined;
  /** How items reach Dropbox. @default 'single' */
  commitMode?: CommitMode;
  /**
   * Tests only, never set in production: a quota-exceeded pause lasts this long instead of until
   * the first of the next month (UTC), so a test can watch it end by itself.
   */
  testOnlyQuotaPauseMs?: number;
  /** How long an idle customer sleeps before checking for items it was not signalled about. @default 15 minutes */
  safetyPollMs?: number;
  /** History length at which a run continues as new (when no straggler runs). @default 1,000 events */
  maxHistoryEvents?: number;
}
