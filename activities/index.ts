import { randomUUID } from 'node:crypto';
import { activityInfo, heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../workflows/failures.js';
import type { Db } from './db.js';
import { createDropboxClient } from './dropbox/client.js';
import { dropboxContentHash } from './dropbox/content-hash.js';
import { classifyDropboxError, toApplicationFailure, type ClassifiedFailure } from './dropbox/errors.js';
import {
  leaseItems, pendingAndThrottle, loadUploadSubject, markArchived, markFailed, recordAttemptFailed, recordRateLimited,
  releaseLease, type ItemDescriptor,
} from './items.js';
import { remotePathFor } from './paths.js';
import { readItemContent } from './source.js';

export interface ActivityDeps {
  db: Db;
  /** Where the Dropbox API lives; unset means the real Dropbox. */
  dropboxApiBase?: string | undefined;
  /** How long a lease lasts before another fetch may reclaim the item. @default 15 minutes */
  leaseTtlMs?: number;
  /** Fetches item media from `source_url`. @default global fetch */
  fetchSource?: typeof fetch;
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
}

export interface UploadOutcome {
  itemId: string;
  status: 'archived' | 'already-archived' | 'lease-lost';
  bytes: number;
  /** Upload requests for this item that Dropbox answered 429, over all attempts. */
  rateLimited: number;
  /** Activity attempts it took. */
  attempts: number;
}

const DEFAULT_LEASE_TTL_MS = 15 * 60_000;
const HEARTBEAT_INTERVAL_MS = 5_000;

/** All of Archiver's I/O, bound to its dependencies. Workflows see only the types. */
export function createActivities(deps: ActivityDeps) {
  const { db } = deps;
  const leaseTtlMs = deps.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  const fetchSource = deps.fetchSource ?? fetch;

  /** Leases the customer's next items; returns descriptors only, never content. */
  async function fetchBatch(customerId: string, limit: number): Promise<LeasedBatch> {
    const leaseToken = randomUUID();
    const items = await leaseItems(db, customerId, limit, leaseToken, leaseTtlMs);
    const { pending, throttledForMs } = await pendingAndThrottle(db, customerId);
    return { leaseToken, items, backlog: pending, coolDownMs: throttledForMs };
  }

  /** Returns the batch's items that are neither archived nor failed to pending. */
  async function releaseBatch(customerId: string, leaseToken: string): Promise<number> {
    return releaseLease(db, customerId, leaseToken);
  }

  /**
   * Copies one item to its customer's Dropbox and marks it archived, fenced by the lease.
   * @throws ApplicationFailure typed by the taxonomy in workflows/failures.ts
   */
  async function uploadItem(request: UploadRequest): Promise<UploadOutcome> {
    // Heartbeats let Temporal notice a dead worker within the heartbeat timeout, not the 10-minute limit.
    const ticker = setInterval(() => heartbeat(), HEARTBEAT_INTERVAL_MS);
    try {
      return await uploadOnce(request);
    } finally {
      clearInterval(ticker);
    }
  }

  async function uploadOnce({ customerId, itemId, leaseToken }: UploadRequest): Promise<UploadOutcome> {
    const attempts = activityInfo().attempt;
    const subject = await loadUploadSubject(db, customerId, itemId);
    if (!subject) throw ApplicationFailure.nonRetryable(`item ${itemId} of customer ${customerId} does not exist`, FailureType.ItemRejected);
    const outcome = (status: UploadOutcome['status'], bytes = 0): UploadOutcome => ({ itemId, status, bytes, rateLimited: subject.rateLimitedCount, attempts });
    if (subject.state === 'archived') return outcome('already-archived');
    if (subject.leaseToken !== leaseToken) return outcome('lease-lost');

    // Another upload of this customer was answered 429: wait out its Retry-After without asking Dropbox.
    const throttledForMs = subject.throttledUntil ? subject.throttledUntil.getTime() - Date.now() : 0;
    if (throttledForMs > 0) {
      throw toApplicationFailure({ type: FailureType.RateLimited, message: `customer ${customerId} is cooling down after a 429` }, throttledForMs);
    }
    if (!subject.accessToken) {
      throw toApplicationFailure({ type: FailureType.AuthRevoked, message: `customer ${customerId} has no Dropbox credentials` });
    }

    let content: Uint8Array;
    try {
      content = await readItemContent(subject, fetchSource);
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === FailureType.ItemRejected) await markFailed(db, itemId, leaseToken, err.message);
      throw err;
    }
    const contentHash = dropboxContentHash(content);
    const path = remotePathFor(subject);
    const dropbox = createDropboxClient({ accessToken: subject.accessToken, apiBase: deps.dropboxApiBase });

    let uploaded;
    try {
      uploaded = await dropbox.filesUpload({
        path,
        contents: content,
        mode: { '.tag': 'add' },
        autorename: false,
        mute: true,
        // Dropbox checks the bytes it received against this, catching corruption in transit.
        content_hash: contentHash,
        client_modified: subject.occurredAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      });
    } catch (err) {
      throw await failUpload(customerId, itemId, leaseToken, classifyDropboxError(err));
    }
    if (uploaded.result.content_hash !== contentHash) {
      const message = `Dropbox stored ${path} with content hash ${String(uploaded.result.content_hash)}, expected ${contentHash}`;
      await recordAttemptFailed(db, itemId, leaseToken, message);
      throw ApplicationFailure.retryable(message, FailureType.Transient);
    }
    const marked = await markArchived(db, itemId, leaseToken, { path, rev: uploaded.result.rev, contentHash, size: content.byteLength });
    log.info('item archived', { customerId, itemId, bytes: content.byteLength, attempts });
    return outcome(marked ? 'archived' : 'lease-lost', content.byteLength);
  }

  /** Records why an upload failed where operators can see it, and returns what to throw. */
  async function failUpload(customerId: string, itemId: string, leaseToken: string, failure: ClassifiedFailure): Promise<ApplicationFailure> {
    log.warn('upload failed', { customerId, itemId, failureType: failure.type, error: failure.message });
    if (failure.type === FailureType.RateLimited) {
      await recordRateLimited(db, customerId, itemId, leaseToken, failure.retryAfterMs ?? 0, leaseTtlMs, failure.message);
    } else if (failure.type === FailureType.ItemRejected) {
      await markFailed(db, itemId, leaseToken, failure.message);
    } else {
      await recordAttemptFailed(db, itemId, leaseToken, failure.message);
    }
    return toApplicationFailure(failure);
  }

  return { fetchBatch, releaseBatch, uploadItem };
}

export type Activities = ReturnType<typeof createActivities>;
