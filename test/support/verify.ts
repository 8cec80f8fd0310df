import { expect } from 'vitest';
import type { Db } from '../../db/pool.js';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import type { ItemKind } from '../../db/items.js';
import type { DropboxEmulator } from 'dropbox-emulator';
import { expectedContent } from './items.js';

/**
 * Asserts that every item of the customers is archived exactly once: one file per item at its
 * recorded path, written once, holding the bytes its source serves.
 */
export async function expectArchivedExactlyOnce(
  db: Db,
  emulator: DropboxEmulator,
  customers: { id: string; accountId: string }[],
): Promise<number> {
  let total = 0;
  for (const customer of customers) {
    const items = await db.query<{
      id: string;
      kind: ItemKind;
      state: string;
      remote_path: string;
      content_hash: string;
      metadata: { media: string; bytes: number };
    }>('SELECT id, kind, state, remote_path, content_hash, metadata FROM archive_items WHERE customer_id = $1', [
      customer.id,
    ]);
    // Only Archiver's folder: other writers may share the account.
    const files = emulator.files(customer.accountId).filter((f) => f.pathLower.startsWith('/archiver/'));
    const byPath = new Map(files.map((f) => [f.pathDisplay, f]));
    expect(items.filter((i) => i.state !== 'archived')).toEqual([]);
    expect(files).toHaveLength(items.length);
    for (const item of items) {
      const file = byPath.get(item.remote_path);
      const hash = dropboxContentHash(expectedContent(item.metadata, item.kind));
      expect({
        item: item.id,
        hash: item.content_hash,
        file: file && { contentHash: file.contentHash, writes: file.writes },
      }).toEqual({ item: item.id, hash, file: { contentHash: hash, writes: 1 } });
    }
    total += items.length;
  }
  return total;
}
