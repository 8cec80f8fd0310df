import type { Dropbox, files } from 'dropbox';
import { DropboxResponseError } from 'dropbox';
import { FailureType } from '../workflows/failures.js';
import type { DropboxAccounts } from './dropbox/account.js';
import { DropboxContentHasher, dropboxContentHash } from './dropbox/content-hash.js';
import type { SealedTokens } from '../db/tokens.js';
import { DropboxFailure } from './dropbox/errors.js';
import { fixedChunks, type OpenedContent } from './source.js';

/** Where an interrupted upload stands: what Dropbox has committed so far. Carried in heartbeats. */
export interface SessionProgress {
  sessionId: string;
  offset: number;
}

/** An item whose bytes sit in an upload session at Dropbox, waiting to be committed. */
export interface UploadedSession {
  sessionId: string;
  size: number;
  contentHash: string;
}

export interface SessionUploadOptions {
  customerId: string;
  /** Bytes per append; a multiple of 4 MiB so each call's content hash is Dropbox's. */
  chunkSize: number;
  /** Close the session on the last append, as finish_batch requires. */
  close: boolean;
  /** Progress from an earlier attempt of the same activity. */
  resume: SessionProgress | undefined;
  /** Called after every committed append, to heartbeat where we are. */
  onProgress: (progress: SessionProgress) => void;
  /** The customer's token columns as just read with the item, for a new session's first call (see DropboxAccounts.call). */
  sealedTokens?: SealedTokens | undefined;
}

/** The `correct_offset` Dropbox reports when we append at the wrong place, if that is the error. */
function correctOffsetOf(err: unknown): number | undefined {
  const cause = err instanceof DropboxFailure ? err.cause : err;
  if (!(cause instanceof DropboxResponseError)) return undefined;
  const body = cause.error as
    { error?: { '.tag'?: string; correct_offset?: number; lookup_failed?: { correct_offset?: number } } } | undefined;
  const error = body?.error;
  if (error?.['.tag'] === 'incorrect_offset') return error.correct_offset;
  return error?.lookup_failed?.correct_offset;
}

function isSessionGone(err: unknown): boolean {
  const cause = err instanceof DropboxFailure ? err.cause : err;
  if (!(cause instanceof DropboxResponseError)) return false;
  const tag = (cause.error as { error?: { '.tag'?: string } } | undefined)?.error?.['.tag'];
  return tag === 'not_found';
}

/**
 * Streams content into an upload session chunk by chunk, never holding more than one chunk. On a
 * retry it re-reads the source to hash it, but sends Dropbox only what it has not committed yet,
 * trusting Dropbox's `correct_offset` over our last heartbeat.
 */
export async function uploadToSession(
  accounts: DropboxAccounts,
  content: OpenedContent,
  options: SessionUploadOptions,
): Promise<UploadedSession> {
  const { customerId } = options;
  const hasher = new DropboxContentHasher();
  let sessionId = options.resume?.sessionId || undefined;
  let committed = sessionId ? (options.resume?.offset ?? 0) : 0;
  let position = 0;

  if (sessionId) {
    // Our last heartbeat may lag behind Dropbox: ask where the session really stands, with an
    // empty append that costs no bytes, before sending anything.
    try {
      const cursor: files.UploadSessionCursor = { session_id: sessionId, offset: committed };
      await accounts.call(customerId, (d: Dropbox) =>
        d.filesUploadSessionAppendV2({ cursor, contents: Buffer.alloc(0), close: false }),
      );
    } catch (err) {
      const correct = correctOffsetOf(err);
      if (correct !== undefined) committed = correct;
      else if (isSessionGone(err)) {
        sessionId = undefined;
        committed = 0;
      } else throw err;
    }
  }

  for await (const { bytes, last } of fixedChunks(content.chunks, options.chunkSize)) {
    hasher.update(bytes);
    const end = position + bytes.byteLength;
    while (committed < end || !sessionId) {
      const piece = bytes.subarray(Math.max(0, committed - position));
      const close = options.close && last;
      try {
        if (!sessionId) {
          const started = await accounts.call(
            customerId,
            (d: Dropbox) =>
              d.filesUploadSessionStart({ contents: piece, close, content_hash: dropboxContentHash(piece) }),
            // Read moments ago; a later call reads the tokens again, in case a long upload outlived them.
            position === 0 ? options.sealedTokens : undefined,
          );
          sessionId = started.result.session_id;
        } else {
          const cursor: files.UploadSessionCursor = { session_id: sessionId, offset: committed };
          await accounts.call(customerId, (d: Dropbox) =>
            d.filesUploadSessionAppendV2({ cursor, contents: piece, close, content_hash: dropboxContentHash(piece) }),
          );
        }
        committed = end;
      } catch (err) {
        const correct = correctOffsetOf(err);
        if (correct !== undefined && correct >= position && correct <= end) {
          // Dropbox has more (or less) of this chunk than we thought: continue from its offset.
          committed = correct;
          if (correct === end) break;
          continue;
        }
        if (isSessionGone(err)) {
          options.onProgress({ sessionId: '', offset: 0 });
          throw new DropboxFailure({
            type: FailureType.Transient,
            message: 'upload session expired or unknown; starting a new one',
          });
        }
        throw err;
      }
      options.onProgress({ sessionId, offset: committed });
    }
    position = end;
  }
  if (!sessionId) throw new DropboxFailure({ type: FailureType.Transient, message: 'source produced no data' });
  return { sessionId, size: position, contentHash: hasher.digest() };
}
