import { contentHash } from './content-hash.js';
import { parseCommitInfo, type Args, type CommitInfo } from './args.js';
import { enterCommit, refuseIfContended, type CallContext, type EmulatorCore } from './context.js';
import type { UploadSession } from './sessions.js';
import { fileMetadata, type FileNode } from './store.js';
import { routeError, type Tagged } from './wire.js';

const SESSION_TYPES = ['sequential', 'concurrent'] as const;
type SessionType = (typeof SESSION_TYPES)[number];

export const tag = (t: string): Tagged => ({ '.tag': t });
export const lookupFailed = (e: Tagged): Tagged => ({ '.tag': 'lookup_failed', lookup_failed: e });

export interface Cursor {
  sessionId: string;
  offset: number;
}

export function parseCursor(args: Args): Cursor {
  const c = args.struct('cursor');
  const sessionId = c.string('session_id');
  const offset = c.int('offset', 0, Number.MAX_SAFE_INTEGER);
  if (offset === undefined) throw c.fail("missing required field 'offset'");
  return { sessionId, offset };
}

function sessionType(args: Args): SessionType {
  return (args.voidTag('session_type', SESSION_TYPES) ?? 'sequential') as SessionType;
}

/** The request's bytes; session routes always buffer them (at most maxRequestBytes). */
function requestBytes(ctx: CallContext): Buffer {
  if (ctx.body.size > ctx.core.maxRequestBytes) throw routeError(tag('payload_too_large'));
  return ctx.body.bytes ?? Buffer.alloc(0);
}

/** content_hash on session calls covers that call's bytes only. */
function checkHash(bytes: Buffer, expected: string | undefined): void {
  if (expected !== undefined && contentHash(bytes) !== expected) throw routeError(tag('content_hash_mismatch'));
}

export function start(ctx: CallContext): unknown {
  const { args, core } = ctx;
  const close = args.bool('close', false);
  const type = sessionType(args);
  const expected = args.contentHash();
  const bytes = requestBytes(ctx);
  if (type === 'concurrent' && bytes.length > 0) throw routeError(tag('concurrent_session_data_not_allowed'));
  if (type === 'concurrent' && close) throw routeError(tag('concurrent_session_close_not_allowed'));
  checkHash(bytes, expected);
  const session = core.sessions.create(ctx.accountId, type);
  session.note(ctx.body.size);
  if (type === 'sequential') {
    const err = session.append(0, bytes, close, core.maxFileBytes);
    if (err) throw routeError(err);
  }
  return { session_id: session.id };
}

export function appendV2(ctx: CallContext): unknown {
  const { args, core } = ctx;
  const cursor = parseCursor(args);
  const close = args.bool('close', false);
  const expected = args.contentHash();
  const bytes = requestBytes(ctx);
  const session = core.sessions.get(ctx.accountId, cursor.sessionId);
  if (!session || session.state === 'expired') throw routeError(tag('not_found'));
  checkHash(bytes, expected);
  const err = session.append(cursor.offset, bytes, close, core.maxFileBytes);
  if (err) throw routeError(err);
  return null;
}

/** Writes a session's data as a file; the session is consumed only when the write succeeds. */
export function commitSession(
  core: EmulatorCore,
  accountId: string,
  spaceId: string,
  session: UploadSession,
  commit: CommitInfo,
): { ok: true; file: FileNode } | { ok: false; error: Tagged } {
  const data = session.payload();
  if ('.tag' in data) return { ok: false, error: data };
  const quotaBytes = core.config(accountId).quotaBytes;
  const result = core.store.write(spaceId, {
    ...commit,
    size: data.size,
    contentHash: data.contentHash,
    content: data.content,
    quotaBytes,
  });
  // FinishError.path is a WriteError union, so it nests under "path" (unlike UploadError's struct).
  if (!result.ok) return { ok: false, error: { '.tag': 'path', path: result.reason } };
  session.markCommitted(result.file.pathDisplay);
  return { ok: true, file: result.file };
}

export async function finish(ctx: CallContext): Promise<unknown> {
  const { args, core, accountId } = ctx;
  const cursor = parseCursor(args);
  const commit = parseCommitInfo(args.struct('commit'));
  const expected = args.contentHash();
  const bytes = requestBytes(ctx);
  const session = core.sessions.live(accountId, cursor.sessionId);
  if (!session) throw routeError(lookupFailed(tag('not_found')));
  if (session.type === 'concurrent') {
    if (bytes.length > 0) throw routeError(tag('concurrent_session_data_not_allowed'));
    if (session.state !== 'closed') throw routeError(tag('concurrent_session_not_closed'));
  }
  checkHash(bytes, expected);
  if (bytes.length > 0 && session.state === 'closed') throw routeError(lookupFailed(tag('closed')));
  const correct = session.finishOffset ?? 0;
  if (cursor.offset !== correct)
    throw routeError(lookupFailed({ '.tag': 'incorrect_offset', correct_offset: correct }));
  if (cursor.offset + bytes.length > core.maxFileBytes) throw routeError(lookupFailed(tag('too_large')));

  const cfg = core.config(accountId);
  const lease = enterCommit(ctx.account);
  try {
    refuseIfContended(ctx, lease, cfg, '429', tag('too_many_write_operations'));
    // The last chunk joins the session before the commit, so a commit that fails still keeps it
    // ("Data has already been appended … retry with empty data body and updated offset").
    if (bytes.length > 0) session.append(cursor.offset, bytes, false, core.maxFileBytes);
    refuseIfContended(ctx, lease, cfg, '409', tag('too_many_write_operations'));
    session.committing = true;
    try {
      await core.sleep(cfg.commitLatencyMs);
      const result = commitSession(core, accountId, ctx.spaceId, session, commit);
      if (!result.ok) throw routeError(result.error);
      return fileMetadata(result.file);
    } finally {
      session.committing = false;
    }
  } finally {
    lease.release();
  }
}

export function startBatch(ctx: CallContext): unknown {
  const { args, core } = ctx;
  const n = args.int('num_sessions', 1, 1000);
  if (n === undefined) throw args.fail("missing required field 'num_sessions'");
  const type = sessionType(args);
  const ids = Array.from({ length: n }, () => {
    const s = core.sessions.create(ctx.accountId, type);
    s.note(0);
    return s.id;
  });
  return { session_ids: ids };
}
