// Reconciliation against the customer's Dropbox: list its archive folder page by page and compare
// each page with Postgres in one query, so memory stays flat however many files the folder holds.
// The cursor travels in the heartbeat details, so a retried attempt resumes at the page it was on.

import { activityInfo, heartbeat, log } from '@temporalio/activity';
import type { files } from 'dropbox';
import { getCustomer } from '../db/customers.js';
import type { Db } from '../db/pool.js';
import { finishVerificationRun, matchListedPage, startVerificationRun, verificationRun } from '../db/verification.js';
import { FailureType } from '../workflows/failures.js';
import type { VerificationSummary } from '../workflows/verify-archive.js';
import type { DropboxAccounts } from './dropbox/account.js';
import { classifyDropboxError, routeErrorTags } from './dropbox/errors.js';
import { TypedFailure } from './failure.js';
import { isManifestPath } from './manifests.js';
import { reportDrift } from './metrics.js';
import { archiveFolderFor } from './paths.js';

/** Dropbox's largest list_folder page. */
export const DEFAULT_VERIFY_PAGE_SIZE = 2000;
/** Unknown paths kept for the operator; the rest are only counted. */
const UNKNOWN_SAMPLE = 20;
/**
 * A run that listed no page for this long is taken as abandoned (its workflow was terminated), and
 * no longer keeps a new run of its customer from starting.
 */
const ABANDONED_AFTER_MS = 15 * 60_000;
/** Well inside the verify activity's heartbeat timeout, so a slow page query does not lose it. */
const HEARTBEAT_INTERVAL_MS = 2_000;

/** How far a run's listing got: what the next attempt resumes from. */
export interface VerifyProgress {
  runId: string;
  /** The cursor of the next page; undefined before the first. */
  cursor?: string | undefined;
  /** Pages and files listed so far, and the unknown files among them. */
  pages: number;
  listed: number;
  unknown: number;
  unknownSample: string[];
  /** The listing is complete; only finishing the run is left. */
  complete: boolean;
}

export interface VerificationDeps {
  db: Db;
  accounts: DropboxAccounts;
  pageSize?: number | undefined;
  /** Who re-queues items, on their audit rows: the worker's identity (pid@host). */
  workerIdentity: string;
}

/** The verification activities, bound to Postgres and the customer's Dropbox. */
export function createVerificationActivities({
  db,
  accounts,
  pageSize = DEFAULT_VERIFY_PAGE_SIZE,
  workerIdentity,
}: VerificationDeps) {
  /**
   * Opens a verification run of the customer, whose start bounds the items it expects.
   * @throws ApplicationFailure BadInput for an unknown customer, or one whose verification is running already
   */
  async function startVerification(customerId: string): Promise<{ runId: string }> {
    if (!(await getCustomer(db, customerId)))
      throw new TypedFailure({ type: FailureType.BadInput, message: `customerId: unknown customer ${customerId}` });
    const opened = await startVerificationRun(db, customerId, ABANDONED_AFTER_MS);
    if ('running' in opened)
      throw new TypedFailure({
        type: FailureType.BadInput,
        message: `customerId: a verification of ${customerId} is running already (run ${opened.running.id}, started ${opened.running.startedAt.toISOString()}, ${opened.running.listed} files listed)`,
      });
    log.info('verification started', { customerId, runId: opened.started.id });
    return { runId: opened.started.id };
  }

  /**
   * Lists the customer's archive folder, marks what each page holds on the items, then re-queues
   * archived items whose file is missing or altered, and stores the run's counts.
   * @throws ApplicationFailure typed by the taxonomy, for a Dropbox call that failed
   */
  async function reconcileWithDropbox(request: { customerId: string; runId: string }): Promise<VerificationSummary> {
    const { customerId, runId } = request;
    const run = await verificationRun(db, runId);
    const customer = await getCustomer(db, customerId);
    if (!run || !customer || run.customerId !== customerId)
      throw new TypedFailure({
        type: FailureType.BadInput,
        message: `runId: no verification run ${runId} of customer ${customerId}`,
      });
    let progress = resumeFrom(runId);
    if (progress.pages > 0) log.info('verification resumes', { customerId, runId, pages: progress.pages });
    const ticker = setInterval(() => heartbeat(progress), HEARTBEAT_INTERVAL_MS);
    try {
      const folder = archiveFolderFor(customer.folderRoot);
      while (!progress.complete) {
        const page = await listPage(customerId, folder, progress.cursor);
        if (page === 'reset') {
          // Dropbox invalidated the cursor: list again from the start (marking a file twice is harmless).
          progress = { ...resumeFrom(runId, true) };
          continue;
        }
        const listedFiles = page.entries
          .filter((e): e is files.FileMetadataReference => e['.tag'] === 'file')
          .map((f) => ({ pathLower: f.path_lower ?? f.name.toLowerCase(), contentHash: f.content_hash ?? null }));
        const listed = progress.listed + listedFiles.length;
        // Day manifests are Archiver's own files, not items: never unknown.
        const unknown = (await matchListedPage(db, customerId, runId, listedFiles, listed)).filter(
          (p) => !isManifestPath(customer.folderRoot, p),
        );
        progress = {
          runId,
          cursor: page.cursor,
          pages: progress.pages + 1,
          listed,
          unknown: progress.unknown + unknown.length,
          unknownSample: [...progress.unknownSample, ...unknown].slice(0, UNKNOWN_SAMPLE),
          complete: !page.has_more,
        };
        heartbeat(progress);
      }
      const finished = await finishVerificationRun(
        db,
        customerId,
        runId,
        { count: progress.unknown, sample: progress.unknownSample },
        workerIdentity,
      );
      reportDrift(customerId, finished.missing + finished.changed, finished.finishedAt ?? new Date());
      const summary: VerificationSummary = {
        runId,
        listed: progress.listed,
        pages: progress.pages,
        expected: finished.expected,
        present: finished.present,
        missing: finished.missing,
        changed: finished.changed,
        requeued: finished.requeued,
        unknown: finished.unknown,
      };
      log.info('verification finished', { customerId, ...summary });
      return summary;
    } finally {
      clearInterval(ticker);
    }
  }

  /** One page of the folder's recursive listing; a folder that does not exist yet is empty. */
  async function listPage(
    customerId: string,
    folder: string,
    cursor: string | undefined,
  ): Promise<files.ListFolderResult | 'reset'> {
    try {
      const answer =
        cursor === undefined
          ? await accounts.call(customerId, (d) =>
              d.filesListFolder({ path: folder, recursive: true, limit: pageSize }),
            )
          : await accounts.call(customerId, (d) => d.filesListFolderContinue({ cursor }));
      return answer.result;
    } catch (err) {
      const tags = routeErrorTags(err);
      if (cursor === undefined && tags[0] === 'path' && tags[1] === 'not_found')
        return { entries: [], cursor: '', has_more: false };
      if (cursor !== undefined && tags[0] === 'reset') return 'reset';
      throw new TypedFailure(classifyDropboxError(err));
    }
  }

  return { startVerification, reconcileWithDropbox };
}

/** The progress this run's previous attempt heartbeated, or a fresh start (also when `restart`). */
function resumeFrom(runId: string, restart = false): VerifyProgress {
  const details = activityInfo().heartbeatDetails as Partial<VerifyProgress> | undefined;
  if (!restart && details?.runId === runId && typeof details.pages === 'number')
    return {
      runId,
      cursor: details.cursor,
      pages: details.pages,
      listed: details.listed ?? 0,
      unknown: details.unknown ?? 0,
      unknownSample: details.unknownSample ?? [],
      complete: details.complete ?? false,
    };
  return { runId, pages: 0, listed: 0, unknown: 0, unknownSample: [], complete: false };
}
