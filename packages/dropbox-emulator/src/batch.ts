import { parseCommitInfo, type Args, type CommitInfo } from './args.js';
import { enterCommit, refuseIfContended, type CallContext, type CommitLease } from './context.js';
import type { EffectiveConfig, Rng } from './faults.js';
import { UploadSession } from './sessions.js';
import { commitSession, lookupFailed, parseCursor, tag, type Cursor } from './session-routes.js';
import { fileMetadata } from './store.js';
import { newOpaqueId, routeError, type Tagged } from './wire.js';

interface Entry {
  cursor: Cursor;
  commit: CommitInfo;
}

interface Batch {
  lease: CommitLease;
  cfg: EffectiveConfig;
  entries: Entry[];
  /** Per entry: the session to commit, or the failure already known. */
  prepared: (UploadSession | Tagged)[];
  /** Entries that fail with too_many_write_operations because the batch overlapped another commit. */
  contended: Set<number>;
}

function parseEntries(args: Args): Entry[] {
  return args.structs('entries', 1000).map((e) => {
    e.contentHash(); // type-checked; a batch carries no bytes for it to cover
    return { cursor: parseCursor(e), commit: parseCommitInfo(e.struct('commit')) };
  });
}

/** Exactly round(share × n) of the candidates, picked with the seeded PRNG. */
function pickShare(candidates: number[], share: number, rng: Rng): Set<number> {
  const pool = [...candidates];
  const count = Math.round(share * pool.length);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(rng.next() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j] as number, pool[i] as number];
  }
  return new Set(pool.slice(0, count));
}

/** The lookup checks of one entry: a batch commits only closed sessions with all their data. */
function prepare(ctx: CallContext, entry: Entry, claimed: Set<UploadSession>): UploadSession | Tagged {
  const session = ctx.core.sessions.get(ctx.accountId, entry.cursor.sessionId);
  session?.note(0);
  if (
    !session ||
    session.state === 'expired' ||
    session.state === 'committed' ||
    session.committing ||
    claimed.has(session)
  ) {
    return lookupFailed(tag('not_found'));
  }
  if (session.state !== 'closed')
    return session.type === 'concurrent' ? tag('concurrent_session_not_closed') : lookupFailed(tag('not_closed'));
  const correct = session.finishOffset ?? 0;
  if (entry.cursor.offset !== correct) return lookupFailed({ '.tag': 'incorrect_offset', correct_offset: correct });
  const unfinished = session.unfinished();
  if (unfinished) return unfinished;
  claimed.add(session);
  return session;
}

/** Synchronous part: takes the write lock (or refuses with 429) and claims the sessions. */
function beginBatch(ctx: CallContext, entries: Entry[]): Batch {
  const cfg = ctx.core.config(ctx.accountId);
  const lease = enterCommit(ctx.account);
  try {
    refuseIfContended(ctx, lease, cfg, '429', tag('too_many_write_operations'));
  } catch (err) {
    lease.release();
    throw err;
  }
  const claimed = new Set<UploadSession>();
  const prepared = entries.map((e) => prepare(ctx, e, claimed));
  for (const s of claimed) s.committing = true;
  // In '409' mode an overlapping batch still commits, but some entries fail (dropbox-sdk-js#270).
  const candidates = prepared.flatMap((p, i) => (p instanceof UploadSession ? [i] : []));
  const contended =
    lease.busy && cfg.writeContention === '409'
      ? pickShare(candidates, cfg.batchContentionShare, ctx.core.rng)
      : new Set<number>();
  return { lease, cfg, entries, prepared, contended };
}

const failure = (error: Tagged): Tagged => ({ '.tag': 'failure', failure: error });

async function completeBatch(ctx: CallContext, batch: Batch): Promise<Tagged[]> {
  try {
    await ctx.core.sleep(batch.cfg.commitLatencyMs);
    return batch.prepared.map((p, i) => {
      if (!(p instanceof UploadSession)) return failure(p);
      p.committing = false;
      if (batch.contended.has(i)) {
        ctx.account.stats.writeContention++;
        return failure(tag('too_many_write_operations'));
      }
      const result = commitSession(ctx.core, ctx.accountId, ctx.spaceId, p, (batch.entries[i] as Entry).commit);
      return result.ok ? { '.tag': 'success', ...fileMetadata(result.file) } : failure(result.error);
    });
  } finally {
    for (const p of batch.prepared) if (p instanceof UploadSession) p.committing = false;
    batch.lease.release();
  }
}

export async function finishBatchV2(ctx: CallContext): Promise<unknown> {
  const batch = beginBatch(ctx, parseEntries(ctx.args));
  return { entries: await completeBatch(ctx, batch) };
}

/** v1: the commit runs in the background; finish_batch/check reports it. */
export function finishBatch(ctx: CallContext): unknown {
  const batch = beginBatch(ctx, parseEntries(ctx.args));
  const id = `dbjid:${newOpaqueId(40)}`;
  const job = { accountId: ctx.accountId, entries: undefined as unknown[] | undefined, checks: 0, failed: false };
  ctx.core.jobs.set(id, job);
  completeBatch(ctx, batch).then(
    (entries) => {
      job.entries = entries;
    },
    () => {
      job.failed = true;
    },
  );
  return { '.tag': 'async_job_id', async_job_id: id };
}

export function finishBatchCheck(ctx: CallContext): unknown {
  const id = ctx.args.string('async_job_id');
  const job = ctx.core.jobs.get(id);
  if (!job || job.accountId !== ctx.accountId) throw routeError(tag('invalid_async_job_id'));
  job.checks++;
  if (job.failed) throw routeError(tag('internal_error'));
  // The first check always answers in_progress, so clients exercise their polling loop.
  if (job.entries === undefined || job.checks === 1) return { '.tag': 'in_progress' };
  return { '.tag': 'complete', entries: job.entries };
}
