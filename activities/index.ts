import { randomUUID } from 'node:crypto';
import { activityInfo, log } from '@temporalio/activity';
import { FailureType } from '../workflows/failures.js';
import { commitStagedSessions, type SessionCommitOutcome, type StagedItem } from './session-commit.js';
import type { ActivityDeps, LeasedBatch, StageOutcome, Throttles, UploadOutcome, UploadRequest } from './types.js';
import { resumeFrom, waitForStartTime, withHeartbeats } from './attempt.js';
import { DropboxAccounts } from './dropbox/account.js';
import { dropboxContentHash } from './dropbox/content-hash.js';
import { classifyDropboxError } from './dropbox/errors.js';
import { CustomerTokens } from './dropbox/tokens.js';
import {
  leaseItems,
  markArchived,
  markFailed,
  pendingAndThrottle,
  recordAttemptFailed,
  recordRateLimited,
  releaseLease,
} from '../db/items.js';
import { loadUploadSubject, type UploadSubject } from '../db/upload-subjects.js';
import { atActivityBoundary, TypedFailure, type ClassifiedFailure } from './failure.js';
import { countArchived, countThrottled } from './metrics.js';
import { remotePathFor } from './paths.js';
import { uploadToSession } from './sessions.js';
import { openItemContent, readAll } from './source.js';

const DEFAULT_LEASE_TTL_MS = 15 * 60_000;
const MIB = 1024 * 1024;

/**
 * All of Archiver's I/O, bound to its dependencies. Workflows see only the types.
 * @throws ApplicationFailure typed by the taxonomy in workflows/failures.ts, from any activity
 */
export function createActivities(deps: ActivityDeps) {
  const { db } = deps;
  const leaseTtlMs = deps.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  const fetchSource = deps.fetchSource ?? fetch;
  const singleUploadLimit = deps.singleUploadLimit ?? 150 * MIB;
  const chunkSize = deps.chunkSize ?? 8 * MIB;
  const accounts = new DropboxAccounts(
    new CustomerTokens({ db, app: deps.dropboxApp, apiBase: deps.dropboxApiBase }),
    deps.dropboxApiBase,
  );

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

  /** Checks that the customer's Dropbox credentials work, e.g. after a reconnect. */
  async function verifyDropbox(customerId: string): Promise<{ accountId: string }> {
    try {
      const account = await accounts.call(customerId, (d) => d.usersGetCurrentAccount());
      return { accountId: account.result.account_id };
    } catch (err) {
      throw new TypedFailure(classifyDropboxError(err));
    }
  }

  /**
   * Copies one item to its customer's Dropbox and marks it archived, fenced by the lease. Items
   * up to `singleUploadLimit` go in one files/upload; larger ones stream through an upload session.
   * @throws ApplicationFailure typed by the taxonomy in workflows/failures.ts
   */
  async function uploadItem(request: UploadRequest): Promise<UploadOutcome> {
    return withHeartbeats(async (report) => {
      const { customerId, itemId, leaseToken } = request;
      await waitForStartTime(request.startAt);
      const subject = await leasedSubject(request);
      const outcome = (status: UploadOutcome['status'], bytes = 0): UploadOutcome => ({
        itemId,
        status,
        bytes,
        ...throttlesOf(subject),
      });
      if (subject.state === 'archived') return outcome('already-archived');
      if (subject.leaseToken !== leaseToken) return outcome('lease-lost');
      holdBackWhileThrottled(subject);
      const content = await openContent(subject, leaseToken);
      const path = remotePathFor(subject);
      try {
        let metadata: { rev: string; content_hash?: string | undefined };
        let contentHash: string;
        let size: number;
        if (content.size !== null && content.size <= singleUploadLimit) {
          const bytes = await readAll(content.chunks);
          contentHash = dropboxContentHash(bytes);
          size = bytes.byteLength;
          metadata = (
            await accounts.call(customerId, (d) =>
              d.filesUpload({
                path,
                contents: bytes,
                mode: { '.tag': 'add' },
                autorename: false,
                mute: true,
                // Dropbox checks the bytes it received against this, catching corruption in transit.
                content_hash: contentHash,
                client_modified: dropboxTime(subject.occurredAt),
              }),
            )
          ).result;
        } else {
          const session = await uploadToSession(accounts, content, {
            customerId,
            chunkSize,
            close: false,
            resume: resumeFrom(),
            onProgress: report,
          });
          contentHash = session.contentHash;
          size = session.size;
          metadata = (
            await accounts.call(customerId, (d) =>
              d.filesUploadSessionFinish({
                cursor: { session_id: session.sessionId, offset: session.size },
                commit: {
                  path,
                  mode: { '.tag': 'add' },
                  autorename: false,
                  mute: true,
                  client_modified: dropboxTime(subject.occurredAt),
                },
              }),
            )
          ).result;
        }
        await archiveVerified(subject, leaseToken, path, metadata, contentHash, size);
        return outcome('archived', size);
      } catch (err) {
        throw await failUpload(subject, leaseToken, err);
      }
    });
  }

  /**
   * Batch mode, step one: streams an item's bytes into a closed upload session, to be committed
   * with others by commitSessions. Nothing is visible in Dropbox until then.
   */
  async function stageItem(request: UploadRequest): Promise<StageOutcome> {
    return withHeartbeats(async (report) => {
      const { customerId, leaseToken } = request;
      await waitForStartTime(request.startAt);
      const subject = await leasedSubject(request);
      if (subject.state === 'archived') return { status: 'already-archived', ...throttlesOf(subject) };
      if (subject.leaseToken !== leaseToken) return { status: 'lease-lost', ...throttlesOf(subject) };
      holdBackWhileThrottled(subject);
      const content = await openContent(subject, leaseToken);
      try {
        const session = await uploadToSession(accounts, content, {
          customerId,
          chunkSize,
          close: true,
          resume: resumeFrom(),
          onProgress: report,
        });
        return { status: 'staged', staged: { itemId: subject.id, ...session }, ...throttlesOf(subject) };
      } catch (err) {
        throw await failUpload(subject, leaseToken, err);
      }
    });
  }

  /** Batch mode, step two: commits staged items with one finish_batch_v2. */
  async function commitSessions(
    customerId: string,
    leaseToken: string,
    staged: StagedItem[],
  ): Promise<SessionCommitOutcome> {
    try {
      const outcome = await commitStagedSessions({ db, accounts, leaseToken, customerId, staged });
      const sizes = new Map(staged.map((s) => [s.itemId, s.size]));
      for (const itemId of outcome.archived) countArchived(customerId, sizes.get(itemId) ?? 0);
      for (let i = 0; i < outcome.retry.length; i++) countThrottled(customerId, 'too_many_write_operations');
      return outcome;
    } catch (err) {
      const failure = classifyDropboxError(err);
      if (failure.type === FailureType.RateLimited || failure.type === FailureType.WriteContention) {
        countThrottled(
          customerId,
          failure.type === FailureType.RateLimited ? 'too_many_requests' : 'too_many_write_operations',
        );
      }
      if (failure.type === FailureType.RateLimited) {
        await recordRateLimited(
          db,
          customerId,
          undefined,
          leaseToken,
          failure.retryAfterMs ?? 0,
          leaseTtlMs,
          failure.message,
        );
      }
      throw new TypedFailure(failure);
    }
  }

  async function leasedSubject({ customerId, itemId }: UploadRequest): Promise<UploadSubject> {
    const subject = await loadUploadSubject(db, customerId, itemId);
    if (!subject)
      throw new TypedFailure({
        type: FailureType.ItemRejected,
        message: `item ${itemId} of customer ${customerId} does not exist`,
      });
    return subject;
  }

  /** Another upload of this customer was answered 429: wait out its Retry-After without asking Dropbox. */
  function holdBackWhileThrottled(subject: UploadSubject): void {
    const throttledForMs = subject.throttledUntil ? subject.throttledUntil.getTime() - Date.now() : 0;
    if (throttledForMs > 0) {
      throw new TypedFailure({
        type: FailureType.RateLimited,
        message: `customer ${subject.customerId} is cooling down after a 429`,
        retryAfterMs: throttledForMs,
      });
    }
  }

  async function openContent(subject: UploadSubject, leaseToken: string) {
    try {
      return await openItemContent(subject, fetchSource);
    } catch (err) {
      if (err instanceof TypedFailure && err.type === FailureType.ItemRejected)
        await markFailed(db, subject.id, leaseToken, err.message);
      throw err;
    }
  }

  async function archiveVerified(
    subject: UploadSubject,
    leaseToken: string,
    path: string,
    metadata: { rev: string; content_hash?: string | undefined },
    contentHash: string,
    size: number,
  ): Promise<void> {
    if (metadata.content_hash !== contentHash) {
      throw new TypedFailure({
        type: FailureType.Transient,
        message: `Dropbox stored ${path} with content hash ${String(metadata.content_hash)}, expected ${contentHash}`,
      });
    }
    await markArchived(db, subject.id, leaseToken, { path, rev: metadata.rev, contentHash, size });
    countArchived(subject.customerId, size);
    log.info('item archived', { customerId: subject.customerId, itemId: subject.id, bytes: size });
  }

  /** Records why an upload failed where operators can see it, and returns what to throw. */
  async function failUpload(subject: UploadSubject, leaseToken: string, err: unknown): Promise<TypedFailure> {
    if (err instanceof TypedFailure) {
      await recordAttemptFailed(db, subject.id, leaseToken, err.message);
      return err;
    }
    const failure: ClassifiedFailure = classifyDropboxError(err);
    log.warn('upload failed', {
      customerId: subject.customerId,
      itemId: subject.id,
      failureType: failure.type,
      error: failure.message,
    });
    if (failure.type === FailureType.RateLimited) {
      countThrottled(subject.customerId, 'too_many_requests');
      await recordRateLimited(
        db,
        subject.customerId,
        subject.id,
        leaseToken,
        failure.retryAfterMs ?? 0,
        leaseTtlMs,
        failure.message,
      );
    } else if (failure.type === FailureType.WriteContention) {
      countThrottled(subject.customerId, 'too_many_write_operations');
      await recordAttemptFailed(db, subject.id, leaseToken, failure.message, true);
    } else if (failure.type === FailureType.ItemRejected) {
      await markFailed(db, subject.id, leaseToken, failure.message);
    } else {
      await recordAttemptFailed(db, subject.id, leaseToken, failure.message);
    }
    return new TypedFailure(failure);
  }

  // Failures inside are TypedFailures; Temporal sees ApplicationFailures, made in one place.
  return atActivityBoundary({ fetchBatch, releaseBatch, verifyDropbox, uploadItem, stageItem, commitSessions });
}

export type Activities = ReturnType<typeof createActivities>;

/** Dropbox wants whole seconds: `2026-11-03T14:05:09Z`. */
function dropboxTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function throttlesOf(subject: UploadSubject): Throttles {
  return {
    rateLimited: subject.rateLimitedCount,
    writeContention: subject.writeContentionCount,
    attempts: activityInfo().attempt,
  };
}
