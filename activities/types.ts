// The shapes activities take and return: what workflows, the worker and tests see of them.

import type { Db } from '../db/pool.js';
import type { ItemDescriptor } from '../db/items.js';
import type { DropboxApp } from './dropbox/tokens.js';
import type { StagedItem } from './session-commit.js';

export interface ActivityDeps {
  db: Db;
  /** Where the Dropbox API lives; unset means the real Dropbox. */
  dropboxApiBase?: string | undefined;
  /** The Dropbox app whose secret refreshes customers' tokens. */
  dropboxApp?: DropboxApp | undefined;
  /** How long a lease lasts before another fetch may reclaim the item. @default 15 minutes */
  leaseTtlMs?: number;
  /** Fetches item media from `source_url`. @default global fetch */
  fetchSource?: typeof fetch;
  /** Larger items go through upload sessions instead of files/upload. @default 150 MiB, Dropbox's limit */
  singleUploadLimit?: number;
  /** Bytes per upload-session append. @default 8 MiB */
  chunkSize?: number;
}

export interface LeasedBatch {
  leaseToken: string;
  items: ItemDescriptor[];
  /** Items still pending after this lease. */
  backlog: number;
  /** How much longer a Retry-After from Dropbox holds this customer back, in ms; 0 if none. */
  coolDownMs: number;
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

export interface UploadOutcome {
  itemId: string;
  status: 'archived' | 'already-archived' | 'lease-lost';
  bytes: number;
  /** Upload requests for this item that Dropbox answered 429 too_many_requests, over all attempts. */
  rateLimited: number;
  /** Upload requests for this item that Dropbox answered 429 too_many_write_operations, over all attempts. */
  writeContention: number;
  /** Activity attempts it took. */
  attempts: number;
}

/** What the pacing controller learns from an item's uploads. */
export type Throttles = Pick<UploadOutcome, 'rateLimited' | 'writeContention' | 'attempts'>;

export type StageOutcome = ({ status: 'staged'; staged: StagedItem } | { status: 'already-archived' | 'lease-lost' }) &
  Throttles;
