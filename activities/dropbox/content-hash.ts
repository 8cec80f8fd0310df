import { createHash, type Hash } from 'node:crypto';

/** Dropbox hashes content in blocks of exactly 4 MiB; the last block may be shorter. */
export const CONTENT_HASH_BLOCK_SIZE = 4 * 1024 * 1024;

/**
 * Incremental Dropbox `content_hash`: SHA-256 of the concatenated SHA-256 digests of each 4 MiB
 * block, as lowercase hex. Feed it chunks of any size; it splits them on block boundaries.
 * An empty input has no blocks, so its hash is SHA-256 of nothing.
 */
export class DropboxContentHasher {
  private readonly overall: Hash = createHash('sha256');
  private block: Hash = createHash('sha256');
  private blockFill = 0;
  private finished = false;

  update(chunk: Uint8Array): this {
    if (this.finished) throw new Error('DropboxContentHasher.update called after digest');
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(CONTENT_HASH_BLOCK_SIZE - this.blockFill, chunk.length - offset);
      this.block.update(chunk.subarray(offset, offset + take));
      this.blockFill += take;
      offset += take;
      if (this.blockFill === CONTENT_HASH_BLOCK_SIZE) this.closeBlock();
    }
    return this;
  }

  digest(): string {
    if (this.finished) throw new Error('DropboxContentHasher.digest called twice');
    if (this.blockFill > 0) this.closeBlock();
    this.finished = true;
    return this.overall.digest('hex');
  }

  private closeBlock(): void {
    this.overall.update(this.block.digest());
    this.block = createHash('sha256');
    this.blockFill = 0;
  }
}

/** The Dropbox `content_hash` of a whole buffer. */
export function dropboxContentHash(content: Uint8Array): string {
  return new DropboxContentHasher().update(content).digest();
}
