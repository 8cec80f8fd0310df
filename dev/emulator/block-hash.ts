import { createHash, type Hash } from 'node:crypto';
import { CONTENT_HASH_BLOCK_SIZE } from '../../activities/dropbox/content-hash.js';

/**
 * The Dropbox content hash of an upload session, built chunk by chunk. Unlike
 * DropboxContentHasher (which per-request hashes use) it can report the hash so far without
 * finishing, because a finish that fails on a path error leaves the session usable, and it
 * exposes its block digests so the pieces of a concurrent session (each a whole number of blocks
 * but the last) can be combined in offset order.
 */
export class BlockHasher {
  readonly blocks: Buffer[] = [];
  private block: Hash = createHash('sha256');
  private fill = 0;

  update(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(CONTENT_HASH_BLOCK_SIZE - this.fill, chunk.length - offset);
      this.block.update(chunk.subarray(offset, offset + take));
      this.fill += take;
      offset += take;
      if (this.fill === CONTENT_HASH_BLOCK_SIZE) {
        this.blocks.push(this.block.digest());
        this.block = createHash('sha256');
        this.fill = 0;
      }
    }
  }

  /** Digests of all blocks so far, the unfinished last one included. */
  digests(): Buffer[] {
    return this.fill > 0 ? [...this.blocks, this.block.copy().digest()] : this.blocks;
  }

  hash(): string {
    return combineBlockDigests(this.digests());
  }
}

export function combineBlockDigests(digests: readonly Buffer[]): string {
  const overall = createHash('sha256');
  for (const d of digests) overall.update(d);
  return overall.digest('hex');
}
