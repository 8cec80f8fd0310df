import { createHash, type Hash } from 'node:crypto';

/**
 * Dropbox's `content_hash`: split the content into 4 MiB blocks (the last may be shorter), take
 * the SHA-256 of each, and then the SHA-256 of those digests concatenated, as lowercase hex.
 * The emulator computes it on its own, so a client's hashes are checked against a second,
 * independent implementation rather than against themselves.
 */

/** The block size of the content hash. */
export const BLOCK_SIZE = 4 * 1024 * 1024;

const sha256 = (): Hash => createHash('sha256');

/** SHA-256 of each 4 MiB block of `bytes`, in order; none for empty input. */
export function blockDigests(bytes: Uint8Array): Buffer[] {
  const digests: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += BLOCK_SIZE)
    digests.push(
      sha256()
        .update(bytes.subarray(at, at + BLOCK_SIZE))
        .digest(),
    );
  return digests;
}

/** The content hash of a file whose blocks have these digests, in file order. */
export function contentHashOfBlocks(digests: readonly Uint8Array[]): string {
  const overall = sha256();
  for (const digest of digests) overall.update(digest);
  return overall.digest('hex');
}

/** The content hash of a whole buffer. */
export function contentHash(bytes: Uint8Array): string {
  return contentHashOfBlocks(blockDigests(bytes));
}

/**
 * The content hash of bytes that arrive in chunks of any size (a request body, a session's
 * appends). `digest()` may be called at any point and leaves the hasher usable.
 */
export class ContentHasher {
  private readonly done: Buffer[] = [];
  private current = sha256();
  private filled = 0;

  update(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(BLOCK_SIZE - this.filled, chunk.length - at);
      this.current.update(chunk.subarray(at, at + take));
      this.filled += take;
      at += take;
      if (this.filled === BLOCK_SIZE) {
        this.done.push(this.current.digest());
        this.current = sha256();
        this.filled = 0;
      }
    }
  }

  digest(): string {
    return contentHashOfBlocks(this.filled === 0 ? this.done : [...this.done, this.current.copy().digest()]);
  }
}
