// The shapes activities take and return: what workflows, the worker and tests see of them.

import type { Db } from '../db/pool.js';
import type { Keyring } from '../secrets/keyring.js';
import type { ItemDescriptor } from '../db/items.js';
import type { ItemRetryPolicy } from '../db/items.js';
import type { DropboxTimeouts } from './dropbox/client.js';
import type { DropboxApp } from './dropbox/tokens.js';
import type { SourceTimeouts } from './source.js';
import type { StagedItem } from './session-commit.js';

export interface ActivityDeps {
  db: Db;
  /** Opens and seals customers' Dropbox tokens in Postgres (db/sealed-tokens.ts); workers/config.ts loads it. */
  keyring: Keyring;
  /** Where the Dropbox API lives; unset means the real Dropbox. */
  dropboxApiBase?: string | undefined;
  /** The Dropbox app whose secret refreshes customers' tokens. */
  dropboxApp?: DropboxApp | undefined;
  /** How long a lease lasts before another fetch may reclaim the item. @default 15 minutes */
  leaseTtlMs?: number;
  /**
   * Items that occurred within this long before the lease are live, and are leased before older
   * ones (a backfill). @default DEFAULT_LIVE_WINDOW_MS, 24 hours
   */
  liveWindowMs?: number | undefined;
  /** Fetches item media from `source_url`. @default global fetch */
  fetchSource?: typeof fetch;
  /** How long an item's source may take to answer, and to send each chunk. @default DEFAULT_SOURCE_TIMEOUTS */
  sourceTimeouts?: Partial<SourceTimeouts> | undefined;
  /** How an item that keeps failing waits and when it is given up. @default DEFAULT_ITEM_RETRY */
  itemRetry?: Partial<ItemRetryPolicy> | undefined;
  /** How long one Dropbox request may take before it counts as lost. @default DEFAULT_DROPBOX_TIMEOUTS */
  dropboxTimeouts?: Partial<DropboxTimeouts> | undefined;
  /** Larger items go through upload sessions instead of files/upload. @default 150 MiB, Dropbox's limit */
  singleUploadLimit?: number;
  /** Bytes per upload-session append. @default 8 MiB */
  chunkSize?: number;
  /** Who archived an item, in its audit row. @default pid@host, Temporal's default worker identity */
  workerIdentity?: string | undefined;
  /** Uploads/s a customer with no learned limit starts at. @default DEFAULT_PACING_LIMITS.initialRatePerSecond */
  initialRatePerSecond?: number;
  /** Files per list_folder page when verifying a customer's archive. @default DEFAULT_VERIFY_PAGE_SIZE (2,000) */
  verifyPageSize?: number | undefined;
  /** The current time, whose date in a customer's time zone says which of its days are over (day manifests). @default the clock */
  now?: (() => Date) | undefined;
}

/** What the workflow tells fetchBatch about its pace. */
export interface PacingReport {
  /** The controller's current estimate of the customer's upload limit, if it has one; kept in Postgres. */
  limitEstimatePerSecond?: number | undefined;
}

export interface LeasedBatch {
  leaseToken: string;
  items: ItemDescriptor[];
  /** Items still pending after this lease. */
  backlog: number;
  /** How much longer a Retry-After from Dropbox holds this customer back, in ms; 0 if none. */
  coolDownMs: number;
  /** Items waiting for their retry time after failing; not in `backlog`. */
  retryWaiting: number;
  /** When the first of those may be tried again, in ms from now; undefined if none waits. */
  nextRetryInMs: number | undefined;
  /** Epoch ms when the oldest item not yet archived or failed was inserted: the customer's lag. */
  oldestWaitingSince: number | undefined;
  /** Where a new run of the customer's workflow starts its pace (see WorkflowPacer.warmStart). */
  warmStart?: WarmStart;
}

/** The customer's learned limit, if Postgres has one, and the initial rate for when it does not. */
export interface WarmStart {
  limitEstimatePerSecond: number | undefined;
  initialRatePerSecond: number;
}

export interface UploadRequest {
  customerId: string;
  itemId: string;
  leaseToken: string;
  /**
   * When the pacing controller lets this upload start, in epoch ms. The workflow hands out start
   * times at the customer's rate and the activity waits for its own, which costs no history events.
   */
  startAt?: number | undefined;
}

/**
 * How an item's upload ended. `deferred`: it kept failing transiently, gave its slot back and
 * waits on its row for a retry time; `failed`: it can never be archived as it is (its source is
 * gone, Dropbox refused it, or it failed too often), and `error` says why.
 */
export type ItemEnd = 'archived' | 'already-archived' | 'lease-lost' | 'deferred' | 'failed';

export interface UploadOutcome {
  itemId: string;
  status: ItemEnd;
  bytes: number;
  /** Why a deferred or failed item did not make it. */
  error?: string | undefined;
  /** Upload requests for this item that Dropbox answered 429 too_many_requests, over all attempts. */
  rateLimited: number;
  /** Upload requests for this item that Dropbox answered 429 too_many_write_operations, over all attempts. */
  writeContention: number;
  /** Activity attempts it took. */
  attempts: number;
}

/** What the pacing controller learns from an item's uploads. */
export type Throttles = Pick<UploadOutcome, 'rateLimited' | 'writeContention' | 'attempts'>;

export type StageOutcome = (
  | { status: 'staged'; staged: StagedItem }
  | { status: 'already-archived' | 'lease-lost' }
  | { status: 'deferred' | 'failed'; error: string }
) &
  Throttles;

/** An item of a slice, with the start time the pacer gave it (epoch ms). */
export interface SliceItem {
  itemId: string;
  startAt: number;
}

/**
 * Several items of one leased batch for one upload activity: as many as the pacer starts in the
 * next second or so. The activity starts each at its time, with at most `concurrency` in flight.
 */
export interface SliceRequest {
  customerId: string;
  leaseToken: string;
  items: SliceItem[];
  /** W when the slice was planned: uploads of this slice in flight at once, at most. */
  concurrency: number;
  /**
   * An upload in flight this long (ms) no longer counts against `concurrency` (a source that
   * hangs must not hold back the slice's other items); undefined: every upload counts.
   */
  stragglerAfterMs?: number | undefined;
}

/** How one item of a slice ended. `staged` (batch mode): its bytes wait in a closed upload session. */
export interface SliceItemResult extends Throttles {
  itemId: string;
  status: ItemEnd | 'staged';
  bytes: number;
  error?: string | undefined;
  staged?: StagedItem | undefined;
  /** From its start to its end in this activity, in ms: what the pacer learns an upload's duration from. */
  durationMs: number;
  /** When it ended, epoch ms: the pacer counts what Dropbox accepted by when it happened. */
  endedAt: number;
}

/** The failures that pause the customer rather than fail or retry a slice. */
export type PauseFailure = 'AuthRevoked' | 'StorageFull' | 'QuotaExceeded';

export interface SliceOutcome {
  /** The items that ended, in the order of the request. */
  items: SliceItemResult[];
  /** Items not started or not ended, because the customer must pause; the workflow releases them. */
  unfinished: string[];
  /** Items a 429 kept from starting: the workflow plans them again, at the pace the 429 taught it. */
  unstarted?: string[] | undefined;
  /** When a 429 last failed an earlier attempt of this slice, epoch ms: the pacer cuts as of then. */
  rateLimitedAt?: number | undefined;
  /** Set when an item met a revoked token, a full Dropbox or a used-up Data Transport quota: the customer pauses. */
  pause?: { type: PauseFailure; message: string } | undefined;
}
