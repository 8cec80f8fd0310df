import { createHash, type Hash } from 'node:crypto';

/** Dropbox hashes content in blocks of exactly 4 MiB; the last block may be shorter. */
export const CONTENT_HASH_BLOCK_SIZE = 4 * 1024 * 1024;

/**
 * Incremental Dropbox `content_hash`: SHA-256 of the concatenated SHA-256 digests of each 4 MiB
 * block, as lowercase hex. Feed it chunks of any size; it splits them on block boundaries. It can
 * report the hash so far and keep going, and exposes its block digests so the pieces of a
 * concurrent upload session can be combined in offset order. An empty input has no blocks, so
 * its hash is SHA-256 of nothing.
 */
export class DropboxContentHasher {
  private readonly blocks: Buffer[] = [];
  private block: Hash = createHash('sha256');
  private blockFill = 0;

  update(chunk: Uint8Array): this {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(CONTENT_HASH_BLOCK_SIZE - this.blockFill, chunk.length - offset);
      this.block.update(chunk.subarray(offset, offset + take));
      this.blockFill += take;
      offset += take;
      if (this.blockFill === CONTENT_HASH_BLOCK_SIZE) {
        this.blocks.push(this.block.digest());
        this.block = createHash('sha256');
        this.blockFill = 0;
      }
    }
    return this;
  }

  /** Digests of all blocks so far, the unfinished last one included. */
  blockDigests(): Buffer[] {
    return this.blockFill > 0 ? [...this.blocks, this.block.copy().digest()] : [...this.blocks];
  }

  /** The content hash of everything fed so far. */
  digest(): string {
    return combineBlockDigests(this.blockDigests());
  }
}

/** The content hash of a file whose 4 MiB blocks have these digests, in order. */
export function combineBlockDigests(digests: readonly Uint8Array[]): string {
  const overall = createHash('sha256');
  for (const d of digests) overall.update(d);
  return overall.digest('hex');
}

/** The Dropbox `content_hash` of a whole buffer. */
export function dropboxContentHash(content: Uint8Array): string {
  return new DropboxContentHasher().update(content).digest();
}
