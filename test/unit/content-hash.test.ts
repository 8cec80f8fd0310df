import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CONTENT_HASH_BLOCK_SIZE,
  DropboxContentHasher,
  dropboxContentHash,
} from '../../activities/dropbox/content-hash.js';
import { syntheticContent } from '../../dev/media-server.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

describe('Dropbox content hash', () => {
  it('of an empty file is SHA-256 of nothing, as Dropbox publishes', () => {
    expect(dropboxContentHash(new Uint8Array())).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  it('splits a 9,711,423-byte file into the published block structure: 4 MiB, 4 MiB, 1,322,815 bytes', () => {
    // Dropbox's worked example is a 9,711,423-byte photo; we hash bytes of the same length and
    // check that the result is the SHA-256 of exactly those three block digests, in order.
    const content = syntheticContent('worked-example', 9_711_423);
    const blocks = [
      content.subarray(0, 4_194_304),
      content.subarray(4_194_304, 8_388_608),
      content.subarray(8_388_608),
    ];
    expect(blocks.map((b) => b.length)).toEqual([4_194_304, 4_194_304, 1_322_815]);
    const expected = sha256(Buffer.concat(blocks.map(sha256))).toString('hex');
    expect(dropboxContentHash(content)).toBe(expected);
    // A plain SHA-256 of the whole file is not the content hash.
    expect(dropboxContentHash(content)).not.toBe(sha256(content).toString('hex'));
  });

  it('gives the same hash however the bytes are chunked', () => {
    const content = syntheticContent('chunks', CONTENT_HASH_BLOCK_SIZE * 2 + 17);
    const whole = dropboxContentHash(content);
    const hasher = new DropboxContentHasher();
    for (let at = 0; at < content.length; at += 999_983) hasher.update(content.subarray(at, at + 999_983));
    expect(hasher.digest()).toBe(whole);
  });

  it('treats an exact 4 MiB file as one block, and one byte more as two', () => {
    const one = syntheticContent('edge', CONTENT_HASH_BLOCK_SIZE);
    expect(dropboxContentHash(one)).toBe(sha256(sha256(one)).toString('hex'));
    const two = syntheticContent('edge', CONTENT_HASH_BLOCK_SIZE + 1);
    const expected = sha256(
      Buffer.concat([sha256(two.subarray(0, CONTENT_HASH_BLOCK_SIZE)), sha256(two.subarray(CONTENT_HASH_BLOCK_SIZE))]),
    );
    expect(dropboxContentHash(two)).toBe(expected.toString('hex'));
  });

  it('reports the hash so far and keeps going', () => {
    const content = syntheticContent('partial', CONTENT_HASH_BLOCK_SIZE + 10);
    const hasher = new DropboxContentHasher().update(content.subarray(0, 100));
    expect(hasher.digest()).toBe(dropboxContentHash(content.subarray(0, 100)));
    hasher.update(content.subarray(100));
    expect(hasher.digest()).toBe(dropboxContentHash(content));
    expect(hasher.blockDigests()).toHaveLength(2);
  });
});
