import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, blockDigests, ContentHasher, contentHash, contentHashOfBlocks } from '../src/content-hash.js';

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
/** Byte i is i mod 251: cheap, deterministic, and no block repeats another. */
const pattern = (length: number): Buffer => Buffer.from(Uint8Array.from({ length }, (_, i) => i % 251));

describe("the emulator's own Dropbox content hash", () => {
  it('of an empty file is SHA-256 of nothing, as Dropbox publishes', () => {
    expect(contentHash(new Uint8Array())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('matches values computed by a separate implementation (Python hashlib)', () => {
    expect(contentHash(Buffer.from('hello world'))).toBe(
      'bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423',
    );
    expect(contentHash(pattern(BLOCK_SIZE))).toBe('b9654428408015906b44a00935b70af33830aa344b780b0eabd535a133150d04');
    // The length of Dropbox's worked example, a 9,711,423-byte photo: blocks of 4 MiB, 4 MiB, 1,322,815 bytes.
    expect(contentHash(pattern(9_711_423))).toBe('c2548ae69e493dad26831aa86c34eaba870021782fadfe084c1116b3e421f79d');
  });

  it('is the SHA-256 of the block digests, not of the content', () => {
    const content = pattern(2 * BLOCK_SIZE + 1);
    const blocks = [
      content.subarray(0, BLOCK_SIZE),
      content.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE),
      content.subarray(2 * BLOCK_SIZE),
    ];
    expect(blockDigests(content)).toEqual(blocks.map(sha256));
    expect(contentHash(content)).toBe(sha256(Buffer.concat(blocks.map(sha256))).toString('hex'));
    expect(contentHash(content)).not.toBe(sha256(content).toString('hex'));
    expect(contentHashOfBlocks(blockDigests(content))).toBe(contentHash(content));
  });

  it('gives the same hash however the bytes are chunked, and reports it at any point', () => {
    const content = pattern(2 * BLOCK_SIZE + 17);
    const hasher = new ContentHasher();
    hasher.update(content.subarray(0, 100));
    expect(hasher.digest()).toBe(contentHash(content.subarray(0, 100)));
    for (let at = 100; at < content.length; at += 999_983)
      hasher.update(content.subarray(at, Math.min(at + 999_983, content.length)));
    expect(hasher.digest()).toBe(contentHash(content));
    expect(hasher.digest()).toBe(contentHash(content));
  });
});
