// Metadata sidecars: next to each archived call recording, voicemail and fax, a small JSON file
// with what the telephony system knows about it, so the archive reads without Archiver's database.

import type { UploadSubject } from '../db/upload-subjects.js';
import { FailureType } from '../workflows/failures.js';
import type { DropboxAccounts } from './dropbox/account.js';
import { dropboxContentHash } from './dropbox/content-hash.js';
import { TypedFailure } from './failure.js';
import { sidecarPathFor } from './paths.js';

/** What a sidecar records about its item. Fields the item's metadata does not hold are null. */
export interface Sidecar {
  itemId: string;
  callId: string | null;
  kind: UploadSubject['kind'];
  direction: string | null;
  from: string | null;
  to: string | null;
  extension: string | null;
  /** When the call (or message) occurred, ISO 8601 UTC. */
  start: string;
  durationSeconds: number | null;
  /** The archived file's Dropbox content hash and size in bytes. */
  contentHash: string;
  size: number;
  archivedAt: string;
}

/** Where the subject's sidecar goes, or undefined when it gets none (SMS, or its customer turned them off). */
export function sidecarFor(subject: UploadSubject): string | undefined {
  return subject.sidecars ? sidecarPathFor(subject) : undefined;
}

function text(metadata: Record<string, unknown>, ...keys: string[]): string | null {
  for (const key of keys) {
    const value = metadata[key];
    if (typeof value === 'string' && value !== '') return value;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  }
  return null;
}

function seconds(metadata: Record<string, unknown>, ...keys: string[]): number | null {
  for (const key of keys) {
    const value = metadata[key];
    const n = typeof value === 'number' ? value : typeof value === 'string' && value !== '' ? Number(value) : NaN;
    if (Number.isFinite(n) && n >= 0) return n;
  }
  return null;
}

/** The sidecar of an item whose file Dropbox holds with this hash and size, archived now. */
export function sidecarOf(
  subject: UploadSubject,
  file: { contentHash: string; size: number },
  archivedAt: Date,
): Sidecar {
  const m = subject.metadata;
  return {
    itemId: subject.id,
    callId: text(m, 'call_id', 'callId'),
    kind: subject.kind,
    direction: text(m, 'direction'),
    from: text(m, 'from'),
    to: text(m, 'to'),
    extension: text(m, 'extension'),
    start: subject.occurredAt.toISOString(),
    durationSeconds: seconds(m, 'duration_seconds', 'duration'),
    contentHash: file.contentHash,
    size: file.size,
    archivedAt: archivedAt.toISOString(),
  };
}

/**
 * Writes a sidecar with files/upload in mode `overwrite` (a retry's archivedAt differs from the
 * first attempt's) and checks the content hash Dropbox returns, as for the item. It costs one more
 * upload request on the customer's token; the pacer learns from accepted items only, so it settles
 * at the item rate the token allows at the pacing cost of one upload each.
 * @throws DropboxFailure for a refused request (a 429 fails the slice like any 429), TypedFailure
 *   Transient when Dropbox stored other bytes
 */
export async function uploadSidecar(
  accounts: DropboxAccounts,
  customerId: string,
  path: string,
  sidecar: Sidecar,
): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(sidecar, null, 2) + '\n');
  const contentHash = dropboxContentHash(bytes);
  const stored = (
    await accounts.call(customerId, (d) =>
      d.filesUpload({
        path,
        contents: bytes,
        mode: { '.tag': 'overwrite' },
        autorename: false,
        mute: true,
        content_hash: contentHash,
      }),
    )
  ).result;
  if (stored.content_hash !== contentHash)
    throw new TypedFailure({
      type: FailureType.Transient,
      message: `Dropbox stored ${path} with content hash ${String(stored.content_hash)}, expected ${contentHash}`,
    });
}
