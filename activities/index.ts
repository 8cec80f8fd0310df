import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { activityInfo, log } from '@temporalio/activity';
import { FailureType } from '../workflows/failures.js';
import { DEFAULT_PACING_LIMITS } from '../workflows/pacing/controller.js';
import { commitStagedSessions, type SessionCommitOutcome, type StagedItem } from './session-commit.js';
import type {
  ActivityDeps,
  LeasedBatch,
  PacingReport,
  SliceOutcome,
  SliceRequest,
  StageOutcome,
  Throttles,
  UploadOutcome,
  UploadRequest,
} from './types.js';
import { resumeFrom, waitForStartTime, withHeartbeats } from './attempt.js';
import { runSlice } from './slice.js';
import { markingInGroups } from './grouped-marks.js';
import type { SessionProgress } from './sessions.js';
import { DropboxAccounts } from './dropbox/account.js';
import { promoteIfAccepted } from './dropbox/candidates.js';
import { dropboxContentHash } from './dropbox/content-hash.js';
import { classifyDropboxError } from './dropbox/errors.js';
import { CustomerTokens } from './dropbox/tokens.js';
import { limitEstimate, saveLimitEstimate } from '../db/customers.js';
import { PostgresError, reportingPostgresErrors } from '../db/errors.js';
import {
  deferItem,
  leaseItems,
  markArchived,
  markFailed,
  markManyArchived,
  type ArchivalMark,
  queueState,
  recordRateLimited,
  recordTransientFailure,
  recordWriteContention,
  releaseLease,
  type ItemActor,
  type ItemRetryPolicy,
} from '../db/items.js';
import { loadUploadSubject, type UploadSubject } from '../db/upload-subjects.js';
import { atActivityBoundary, databaseUnavailable, TypedFailure, type ClassifiedFailure } from './failure.js';
import { countArchived, countThrottled } from './metrics.js';
import { remotePathFor, writeModeFor } from './paths.js';
import { sidecarFor, sidecarOf, uploadSidecar } from './sidecar.js';
import { uploadToSession } from './sessions.js';
import { DEFAULT_SOURCE_TIMEOUTS, openItemContent, readAll } from './source.js';
import { DEFAULT_DROPBOX_TIMEOUTS } from './dropbox/client.js';
import { createManifestActivities } from './manifests.js';
import { createVerificationActivities } from './verify.js';

/** Where an upload session of an earlier attempt stands, and where to report progress. */
interface SessionResume {
  resume: SessionProgress | undefined;
  report: (progress: SessionProgress) => void;
  /** For an item of a slice: when its start time was planned, epoch ms (see ItemContext.plannedAt). */
  plannedAt?: number | undefined;
  /** For an item of a slice: Dropbox took it (see ItemContext.accepted). */
  accepted?: (() => void) | undefined;
  /** For an item of a slice: marks it archived together with other items finishing on this worker (see markingInGroups). */
  markArchived?: ((mark: ArchivalMark) => Promise<boolean>) | undefined;
}

const DEFAULT_LEASE_TTL_MS = 15 * 60_000;
/**
 * A slice's archived item waits this long for others to be marked with it in one transaction: a
 * few ms on an upload, against a transaction and an audit-chain lock per item.
 */
const ARCHIVAL_LINGER_MS = 10;

/** Items that occurred within a day are live: leased before any backfill (see leaseItems). */
export const DEFAULT_LIVE_WINDOW_MS = 24 * 3600_000;
const MIB = 1024 * 1024;

/**
 * A failing item waits 30 s, then twice as long after each further failure, up to 6 h; it fails
 * after 20 failed attempts (about 3 days of waits) or 3 days since its first failure, whichever
 * comes first. A legal archive would rather wait out a long source outage than drop an item.
 */
export const DEFAULT_ITEM_RETRY: ItemRetryPolicy = {
  initialDelayMs: 30_000,
  maxDelayMs: 6 * 3600_000,
  maxAttempts: 20,
  maxAgeMs: 3 * 24 * 3600_000,
};

/**
 * Dropbox transient failures (5xx, lost answers) of one item are retried by its activity, backing
 * off from 1 s by its consecutive failures (so 429s met before do not lengthen the wait); after
 * this many in a row the item gives its slot back and waits on its row instead.
 */
const TRANSIENT_RETRIES_IN_ACTIVITY = 5;
const TRANSIENT_MAX_DELAY_MS = 30_000;

/**
 * All of Archiver's I/O, bound to its dependencies. Workflows see only the types.
 * @throws ApplicationFailure typed by the taxonomy in workflows/failures.ts, from any activity
 */
export function createActivities(deps: ActivityDeps) {
  // A Postgres failure anywhere below is reported as Postgres's, not as the call it interrupted.
  const db = reportingPostgresErrors(deps.db);
  const itemRetry: ItemRetryPolicy = { ...DEFAULT_ITEM_RETRY, ...deps.itemRetry };
  const sourceTimeouts = { ...DEFAULT_SOURCE_TIMEOUTS, ...deps.sourceTimeouts };
  const leaseTtlMs = deps.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  const liveWindowMs = deps.liveWindowMs ?? DEFAULT_LIVE_WINDOW_MS;
  const fetchSource = deps.fetchSource ?? fetch;
  const singleUploadLimit = deps.singleUploadLimit ?? 150 * MIB;
  const chunkSize = deps.chunkSize ?? 8 * MIB;
  const keyring = deps.keyring;
  const tokens = new CustomerTokens({ db, keyring, app: deps.dropboxApp, apiBase: deps.dropboxApiBase });
  const dropboxTimeouts = { ...DEFAULT_DROPBOX_TIMEOUTS, ...deps.dropboxTimeouts };
  const accounts = new DropboxAccounts(tokens, deps.dropboxApiBase, dropboxTimeouts);
  const workerIdentity = deps.workerIdentity ?? `${process.pid}@${hostname()}`;
  // The slices' archivals, of every customer on this worker, grouped into few transactions.
  const markInGroup = markingInGroups((marks) => markManyArchived(db, marks), { lingerMs: ARCHIVAL_LINGER_MS });

  /** The worker and the activity attempt that change an item's state, for its audit row. */
  function actor(): ItemActor {
    const info = activityInfo();
    return {
      actor: workerIdentity,
      details: { workflowId: info.workflowExecution?.workflowId ?? null, activityAttempt: info.attempt },
    };
  }

  /**
   * Leases the customer's next items (with `liveOnly`, live ones only: the workflow's live lane);
   * returns descriptors only, never content.
   */
  async function fetchBatch(
    customerId: string,
    limit: number,
    pacing?: PacingReport,
    options: { liveOnly?: boolean } = {},
  ): Promise<LeasedBatch> {
    const leaseToken = randomUUID();
    const estimate = pacing?.limitEstimatePerSecond;
    if (estimate !== undefined && Number.isFinite(estimate) && estimate > 0)
      await saveLimitEstimate(db, customerId, estimate);
    const items = await leaseItems(db, customerId, limit, leaseToken, leaseTtlMs, liveWindowMs, options.liveOnly);
    const queue = await queueState(db, customerId);
    return {
      warmStart: {
        limitEstimatePerSecond: estimate ?? (await limitEstimate(db, customerId)),
        initialRatePerSecond: deps.initialRatePerSecond ?? DEFAULT_PACING_LIMITS.initialRatePerSecond,
      },
      leaseToken,
      items,
      backlog: queue.pending,
      coolDownMs: queue.throttledForMs,
      retryWaiting: queue.retryWaiting,
      nextRetryInMs: queue.nextRetryInMs,
      oldestWaitingSince: queue.oldestWaitingSince?.getTime(),
    };
  }

  /** Returns the batch's items that are neither archived nor failed to pending (all, only some, or all but some). */
  async function releaseBatch(
    customerId: string,
    leaseToken: string,
    items?: { only?: string[]; except?: string[] },
  ): Promise<number> {
    return releaseLease(db, customerId, leaseToken, items);
  }

  /**
   * Checks that the customer's Dropbox credentials work. With `candidateId` (a reconnect), checks
   * the candidate credentials the CLI stored instead, and makes them the customer's only if they work.
   */
  async function verifyDropbox(
    customerId: string,
    options: { candidateId?: string } = {},
  ): Promise<{ accountId: string }> {
    try {
      if (options.candidateId !== undefined)
        return await promoteIfAccepted(
          { db, keyring, tokens, apiBase: deps.dropboxApiBase, timeouts: dropboxTimeouts },
          customerId,
          options.candidateId,
        );
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
      await waitForStartTime(request.startAt);
      return uploadOne(request, { resume: resumeFrom(), report });
    });
  }

  /**
   * Copies several items of one lease to Dropbox, each at its paced start time, as uploadItem
   * does one (see runSlice for how failures and retries go).
   * @throws ApplicationFailure typed by the taxonomy in workflows/failures.ts
   */
  async function uploadItems(request: SliceRequest): Promise<SliceOutcome> {
    const { customerId, leaseToken } = request;
    return runSlice(request, (itemId, context) =>
      uploadOne({ customerId, itemId, leaseToken }, { ...context, markArchived: markInGroup }),
    );
  }

  /** Batch mode, step one, for several items: stages each in a closed upload session (see stageItem). */
  async function stageItems(request: SliceRequest): Promise<SliceOutcome> {
    const { customerId, leaseToken } = request;
    return runSlice(request, async (itemId, context) => {
      const { status, rateLimited, writeContention, attempts, ...rest } = await stageOne(
        { customerId, itemId, leaseToken },
        context,
      );
      const throttles = { rateLimited, writeContention, attempts };
      if (status === 'staged' && 'staged' in rest)
        return { itemId, status, bytes: rest.staged.size, staged: rest.staged, ...throttles };
      return { itemId, status, bytes: 0, error: 'error' in rest ? rest.error : undefined, ...throttles };
    });
  }

  /** One item's upload, for uploadItem and uploadItems. */
  async function uploadOne(request: UploadRequest, progress: SessionResume): Promise<UploadOutcome> {
    const { customerId, itemId, leaseToken } = request;
    const subject = await leasedSubject(request);
    const outcome = (status: UploadOutcome['status'], bytes = 0, error?: string): UploadOutcome => ({
      itemId,
      status,
      bytes,
      ...(error !== undefined ? { error } : {}),
      ...throttlesOf(subject),
    });
    if (subject.state === 'archived') return outcome('already-archived');
    if (subject.leaseToken !== leaseToken) return outcome('lease-lost');
    holdBackWhileThrottled(subject, progress.plannedAt);
    const path = remotePathFor(subject);
    try {
      const content = await openItemContent(subject, fetchSource, sourceTimeouts);
      let metadata: { rev: string; content_hash?: string | undefined };
      let contentHash: string;
      let size: number;
      if (content.size !== null && content.size <= singleUploadLimit) {
        const bytes = await readAll(content.chunks);
        contentHash = dropboxContentHash(bytes);
        size = bytes.byteLength;
        metadata = (
          await accounts.call(
            customerId,
            (d) =>
              d.filesUpload({
                path,
                contents: bytes,
                mode: writeModeFor(subject),
                autorename: false,
                mute: true,
                // Dropbox checks the bytes it received against this, catching corruption in transit.
                content_hash: contentHash,
                client_modified: dropboxTime(subject.occurredAt),
              }),
            subject.sealedTokens,
          )
        ).result;
      } else {
        const session = await uploadToSession(accounts, content, {
          customerId,
          chunkSize,
          close: false,
          resume: progress.resume,
          onProgress: progress.report,
        });
        contentHash = session.contentHash;
        size = session.size;
        metadata = (
          await accounts.call(customerId, (d) =>
            d.filesUploadSessionFinish({
              cursor: { session_id: session.sessionId, offset: session.size },
              commit: {
                path,
                mode: writeModeFor(subject),
                autorename: false,
                mute: true,
                client_modified: dropboxTime(subject.occurredAt),
              },
            }),
          )
        ).result;
      }
      progress.accepted?.();
      await archiveVerified(subject, leaseToken, path, metadata, contentHash, size, progress.markArchived);
      return outcome('archived', size);
    } catch (err) {
      const ended = await settleFailure(subject, leaseToken, err);
      return outcome(ended.status, 0, ended.error);
    }
  }

  /**
   * Batch mode, step one: streams an item's bytes into a closed upload session, to be committed
   * with others by commitSessions. Nothing is visible in Dropbox until then.
   */
  async function stageItem(request: UploadRequest): Promise<StageOutcome> {
    return withHeartbeats(async (report) => {
      await waitForStartTime(request.startAt);
      return stageOne(request, { resume: resumeFrom(), report });
    });
  }

  /** One item's staging, for stageItem and stageItems. */
  async function stageOne(request: UploadRequest, progress: SessionResume): Promise<StageOutcome> {
    const { customerId, leaseToken } = request;
    const subject = await leasedSubject(request);
    if (subject.state === 'archived') return { status: 'already-archived', ...throttlesOf(subject) };
    if (subject.leaseToken !== leaseToken) return { status: 'lease-lost', ...throttlesOf(subject) };
    holdBackWhileThrottled(subject, progress.plannedAt);
    try {
      const content = await openItemContent(subject, fetchSource, sourceTimeouts);
      const session = await uploadToSession(accounts, content, {
        customerId,
        chunkSize,
        close: true,
        resume: progress.resume,
        onProgress: progress.report,
        sealedTokens: subject.sealedTokens,
      });
      progress.accepted?.();
      return { status: 'staged', staged: { itemId: subject.id, ...session }, ...throttlesOf(subject) };
    } catch (err) {
      return { ...(await settleFailure(subject, leaseToken, err)), ...throttlesOf(subject) };
    }
  }

  /** Batch mode, step two: commits staged items with one finish_batch_v2. */
  async function commitSessions(
    customerId: string,
    leaseToken: string,
    staged: StagedItem[],
  ): Promise<SessionCommitOutcome> {
    try {
      const outcome = await commitStagedSessions({ db, accounts, leaseToken, customerId, staged, by: actor() });
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
        await recordRateLimited(db, customerId, undefined, leaseToken, failure.retryAfterMs ?? 0, leaseTtlMs);
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

  /**
   * Another upload of this customer was answered 429: wait out its Retry-After without asking
   * Dropbox. And an item whose start time was planned (`plannedAt`) before that 429 came is not
   * sent at all: its pace is the one that met the 429, and after the Retry-After the token bucket
   * holds only a second or so of uploads, which that pace would use up into the next 429. Its
   * slice hands it back to the workflow, which plans it again at the pace the 429 taught.
   */
  function holdBackWhileThrottled(subject: UploadSubject, plannedAt?: number): void {
    const throttledForMs = subject.throttledUntil ? subject.throttledUntil.getTime() - Date.now() : 0;
    const stalePlan = plannedAt !== undefined && (subject.rateLimitedAt?.getTime() ?? -Infinity) > plannedAt;
    if (throttledForMs > 0 || stalePlan) {
      throw new TypedFailure({
        type: FailureType.RateLimited,
        message: `customer ${subject.customerId} is cooling down after a 429`,
        retryAfterMs: Math.max(0, throttledForMs),
      });
    }
  }

  async function archiveVerified(
    subject: UploadSubject,
    leaseToken: string,
    path: string,
    metadata: { rev: string; content_hash?: string | undefined },
    contentHash: string,
    size: number,
    markTogether: SessionResume['markArchived'],
  ): Promise<void> {
    if (metadata.content_hash !== contentHash) {
      throw new TypedFailure({
        type: FailureType.Transient,
        message: `Dropbox stored ${path} with content hash ${String(metadata.content_hash)}, expected ${contentHash}`,
      });
    }
    // The item counts as archived only once its sidecar is in Dropbox too. A failed sidecar upload
    // fails the item's attempt like its own upload would (a 429 fails the slice); the retry uploads
    // the item again, which Dropbox answers as identical content, then the sidecar.
    const sidecarPath = sidecarFor(subject);
    if (sidecarPath !== undefined)
      await uploadSidecar(
        accounts,
        subject.customerId,
        sidecarPath,
        sidecarOf(subject, { contentHash, size }, new Date()),
      );
    const remote = { path, rev: metadata.rev, contentHash, size, sidecarPath: sidecarPath ?? null };
    if (markTogether) await markTogether({ itemId: subject.id, leaseToken, remote, by: actor() });
    else await markArchived(db, subject.id, leaseToken, remote, actor());
    countArchived(subject.customerId, size);
    log.info('item archived', { customerId: subject.customerId, itemId: subject.id, bytes: size });
  }

  /**
   * Decides what a failed upload attempt means for its item, records it on the row where operators
   * see it, and returns how the item ends: deferred (it waits for its retry time, giving its slot
   * back) or failed. Throws what Temporal should retry (or pause the customer on) instead.
   */
  async function settleFailure(
    subject: UploadSubject,
    leaseToken: string,
    err: unknown,
  ): Promise<{ status: 'deferred' | 'failed'; error: string }> {
    const failure: ClassifiedFailure =
      err instanceof TypedFailure
        ? err.failure
        : err instanceof PostgresError
          ? databaseUnavailable(err)
          : classifyDropboxError(err);
    const fields = { customerId: subject.customerId, itemId: subject.id, failureType: failure.type };
    log.warn('upload failed', { ...fields, error: failure.message });
    switch (failure.type) {
      case FailureType.SourceGone:
      case FailureType.ItemRejected:
        await markFailed(db, subject.id, leaseToken, failure.message, actor());
        return { status: 'failed', error: failure.message };
      case FailureType.SourceUnavailable:
        return defer(subject, leaseToken, failure.message);
      case FailureType.Transient: {
        if (subject.failedAttempts + 1 >= TRANSIENT_RETRIES_IN_ACTIVITY)
          return defer(subject, leaseToken, failure.message);
        const failedAttempts = await recordTransientFailure(db, subject.id, leaseToken, failure.message);
        throw new TypedFailure({ ...failure, retryDelayMs: transientRetryDelay(failedAttempts) });
      }
      case FailureType.RateLimited:
        countThrottled(subject.customerId, 'too_many_requests');
        await recordRateLimited(db, subject.customerId, subject.id, leaseToken, failure.retryAfterMs ?? 0, leaseTtlMs);
        throw new TypedFailure(failure);
      case FailureType.WriteContention:
        countThrottled(subject.customerId, 'too_many_write_operations');
        await recordWriteContention(db, subject.id, leaseToken);
        throw new TypedFailure(failure);
      default:
        // Postgres trouble, an expired or revoked token, a full Dropbox: the activity's retry
        // policy or the workflow deals with them; the item stays leased.
        throw new TypedFailure(failure);
    }
  }

  /** The item gives its slot back and waits on its row; or fails, once it has failed too often. */
  async function defer(
    subject: UploadSubject,
    leaseToken: string,
    error: string,
  ): Promise<{ status: 'deferred' | 'failed'; error: string }> {
    const deferred = await deferItem(db, subject.id, leaseToken, error, itemRetry, actor());
    if (deferred?.state === 'failed')
      return { status: 'failed', error: `gave up after ${deferred.failedAttempts} failed attempts: ${error}` };
    log.info('item deferred', {
      customerId: subject.customerId,
      itemId: subject.id,
      failedAttempts: deferred?.failedAttempts,
      nextAttemptAt: deferred?.nextAttemptAt?.toISOString(),
    });
    return { status: 'deferred', error };
  }

  // Failures inside are TypedFailures; Temporal sees ApplicationFailures, made in one place.
  return atActivityBoundary({
    fetchBatch,
    releaseBatch,
    verifyDropbox,
    uploadItem,
    stageItem,
    uploadItems,
    stageItems,
    commitSessions,
    ...createVerificationActivities({ db, accounts, pageSize: deps.verifyPageSize, workerIdentity }),
    ...createManifestActivities({ db, accounts, now: deps.now }),
  });
}

export type Activities = ReturnType<typeof createActivities>;

/** Dropbox wants whole seconds: `2026-11-03T14:05:09Z`. */
function dropboxTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The backoff before retrying an item's n-th consecutive transient failure: 1 s, 2 s, 4 s … 30 s, ±20%. */
function transientRetryDelay(failedAttempts: number): number {
  const base = Math.min(TRANSIENT_MAX_DELAY_MS, 1000 * 2 ** Math.max(0, failedAttempts - 1));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

function throttlesOf(subject: UploadSubject): Throttles {
  return {
    rateLimited: subject.rateLimitedCount,
    writeContention: subject.writeContentionCount,
    attempts: activityInfo().attempt,
  };
}
