import type { files } from 'dropbox';
import type { Db } from '../db/pool.js';
import type { DropboxAccounts } from './dropbox/account.js';
import { DEFAULT_RETRY_AFTER_MS } from './dropbox/errors.js';
import { markFailed, markManyArchived, type ArchivalMark, type ItemActor } from '../db/items.js';
import { loadUploadSubjects } from '../db/upload-subjects.js';
import { remotePathFor, writeModeFor } from './paths.js';
import { sidecarFor, sidecarOf, uploadSidecar } from './sidecar.js';
import { MAX_BATCH_ENTRIES } from '../workflows/dropbox-limits.js';
import type { UploadedSession } from './sessions.js';

/** An item staged in a closed upload session. */
export interface StagedItem extends UploadedSession {
  itemId: string;
}

/** What one finish_batch_v2 did to each entry. Only small ids and session ids: no content, no tokens. */
export interface SessionCommitOutcome {
  archived: string[];
  /** Entries Dropbox could not commit now (write contention): commit them again later. */
  retry: StagedItem[];
  /** Entries whose session is gone and whose file is not in place: upload them again. */
  restage: string[];
  /** Items that can never be stored as they are; marked failed. */
  rejected: string[];
  /** Lease lost or already archived: nothing to do. */
  skipped: string[];
  /** The customer's Dropbox is full: nothing more can be committed until an operator acts. */
  storageFull: boolean;
  /** How long to wait before committing `retry` again. */
  retryAfterMs: number;
}

export interface SessionCommitInput {
  db: Db;
  accounts: DropboxAccounts;
  customerId: string;
  leaseToken: string;
  staged: StagedItem[];
  /** Who commits, for the audit rows of the items archived or failed. */
  by: ItemActor;
}

type EntryFailure = files.UploadSessionFinishError & { '.tag': string };

function tagsOf(failure: unknown): string[] {
  const tags: string[] = [];
  let node = failure as Record<string, unknown> | undefined;
  for (let depth = 0; depth < 6 && node && typeof node === 'object'; depth++) {
    const tag = node['.tag'];
    if (typeof tag !== 'string') break;
    tags.push(tag);
    node = (node[tag] ?? node.reason) as Record<string, unknown> | undefined;
  }
  return tags;
}

/**
 * Commits staged items with one finish_batch_v2 and settles each entry: archived (fenced by the
 * lease, after checking the content hash and writing its metadata sidecar), to retry, to re-upload,
 * or rejected. Sidecars go one by one with files/upload: they are small, and staging them as
 * entries of the same commit would halve the items a commit of 1,000 entries can take. The workflow runs
 * one commit at a time per customer, which is what Dropbox asks of batch commits.
 */
export async function commitStagedSessions({
  db,
  accounts,
  customerId,
  leaseToken,
  staged,
  by,
}: SessionCommitInput): Promise<SessionCommitOutcome> {
  if (staged.length > MAX_BATCH_ENTRIES)
    throw new Error(`finish_batch_v2 takes at most ${MAX_BATCH_ENTRIES} entries, got ${staged.length}`);
  const outcome: SessionCommitOutcome = {
    archived: [],
    retry: [],
    restage: [],
    rejected: [],
    skipped: [],
    storageFull: false,
    retryAfterMs: 0,
  };
  const entries: { item: StagedItem; path: string; mode: ReturnType<typeof writeModeFor> }[] = [];
  const subjects = await loadUploadSubjects(
    db,
    customerId,
    staged.map((s) => s.itemId),
  );
  for (const item of staged) {
    const subject = subjects.get(item.itemId);
    if (!subject || subject.state === 'archived' || subject.leaseToken !== leaseToken)
      outcome.skipped.push(item.itemId);
    else entries.push({ item, path: remotePathFor(subject), mode: writeModeFor(subject) });
  }
  if (entries.length === 0) return outcome;

  const result = await accounts.call(customerId, (d) =>
    d.filesUploadSessionFinishBatchV2({
      entries: entries.map(({ item, path, mode }) => ({
        cursor: { session_id: item.sessionId, offset: item.size },
        commit: { path, mode, autorename: false, mute: true },
      })),
    }),
  );

  // The entries Dropbox committed are marked archived together, after the loop.
  const committed: ArchivalMark[] = [];
  for (const [i, entry] of result.result.entries.entries()) {
    const { item, path } = entries[i] as { item: StagedItem; path: string };
    if (entry['.tag'] === 'success') {
      await settleCommitted(item, path, entry.content_hash, entry.rev);
      continue;
    }
    const failure = (entry as { failure?: EntryFailure }).failure;
    const tags = tagsOf(failure);
    if (tags.includes('too_many_write_operations')) {
      outcome.retry.push(item);
      outcome.retryAfterMs = Math.max(outcome.retryAfterMs, 1000);
    } else if (tags[0] === 'lookup_failed') {
      // The session is gone: either an earlier attempt of this commit already stored the file,
      // or it expired. Dropbox's metadata tells which.
      const existing = await accounts.call(customerId, (d) => d.filesGetMetadata({ path })).catch(() => undefined);
      const file = existing?.result as { content_hash?: string; rev?: string } | undefined;
      if (file?.content_hash === item.contentHash && file.rev)
        await settleCommitted(item, path, file.content_hash, file.rev);
      else outcome.restage.push(item.itemId);
    } else if (tags.includes('insufficient_space')) {
      outcome.storageFull = true;
    } else if (
      tags.includes('conflict') ||
      tags.includes('malformed_path') ||
      tags.includes('disallowed_name') ||
      tags.includes('no_write_permission')
    ) {
      await markFailed(db, item.itemId, leaseToken, `Dropbox refused ${tags.join('/')} when committing the item`, by);
      outcome.rejected.push(item.itemId);
    } else {
      outcome.retry.push(item);
      outcome.retryAfterMs = Math.max(outcome.retryAfterMs, DEFAULT_RETRY_AFTER_MS);
    }
  }
  const marked = await markManyArchived(db, committed);
  for (const { itemId } of committed) (marked.has(itemId) ? outcome.archived : outcome.skipped).push(itemId);
  return outcome;

  async function settleCommitted(
    item: StagedItem,
    path: string,
    remoteHash: string | undefined,
    rev: string,
  ): Promise<void> {
    if (remoteHash !== item.contentHash) {
      // Dropbox holds other bytes than we staged; committing again cannot fix that.
      await markFailed(
        db,
        item.itemId,
        leaseToken,
        `content hash mismatch at ${path}: Dropbox has ${String(remoteHash)}, staged ${item.contentHash}`,
        by,
      );
      outcome.rejected.push(item.itemId);
      return;
    }
    // As uploadOne does: the sidecar, by files/upload after the commit, before the item counts as
    // archived. A failure here fails the commit; its retry finds the session used (lookup_failed),
    // sees the file in place, and writes the sidecar again.
    const subject = subjects.get(item.itemId);
    const sidecarPath = subject && sidecarFor(subject);
    if (subject && sidecarPath !== undefined)
      await uploadSidecar(
        accounts,
        customerId,
        sidecarPath,
        sidecarOf(subject, { contentHash: item.contentHash, size: item.size }, new Date()),
      );
    committed.push({
      itemId: item.itemId,
      leaseToken,
      remote: { path, rev, contentHash: item.contentHash, size: item.size, sidecarPath: sidecarPath ?? null },
      by,
    });
  }
}
