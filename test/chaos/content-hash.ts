import { createHash } from 'node:crypto';

const BLOCK = 4 * 1024 * 1024;

/**
 * Dropbox's content_hash (SHA-256 over the SHA-256 of each 4 MiB block), written here again
 * rather than imported from the product, so the chaos suite checks the product's hash against a
 * hash of its own.
 */
export function contentHashOf(bytes: Uint8Array): string {
  const overall = createHash('sha256');
  for (let offset = 0; offset < bytes.byteLength; offset += BLOCK) {
    overall.update(
      createHash('sha256')
        .update(bytes.subarray(offset, offset + BLOCK))
        .digest(),
    );
  }
  return overall.digest('hex');
}
