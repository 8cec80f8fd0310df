// The SQL that loads what an upload needs about its items and their customer.

import type { ItemKind } from './items.js';
import type { Db } from './pool.js';

/** Everything an upload needs about one item and its customer. Holds the token: never return it to Temporal. */
export interface UploadSubject {
  id: string;
  customerId: string;
  kind: ItemKind;
  occurredAt: Date;
  metadata: Record<string, unknown>;
  sourceUrl: string | null;
  body: string | null;
  state: 'pending' | 'leased' | 'archived' | 'failed';
  leaseToken: string | null;
  remotePath: string | null;
  contentHash: string | null;
  rateLimitedCount: number;
  writeContentionCount: number;
  accessToken: string | null;
  folderRoot: string;
  pathTemplate: string | null;
  throttledUntil: Date | null;
}

export async function loadUploadSubject(db: Db, customerId: string, itemId: string): Promise<UploadSubject | undefined> {
  const [r] = await db.query<{
    id: string; customer_id: string; kind: ItemKind; occurred_at: Date; metadata: Record<string, unknown>;
    source_url: string | null; body: string | null; state: UploadSubject['state']; lease_token: string | null;
    remote_path: string | null; content_hash: string | null; rate_limited_count: number; write_contention_count: number;
    dropbox_access_token: string | null; folder_root: string; path_template: string | null; throttled_until: Date | null;
  }>(
    `SELECT i.id, i.customer_id, i.kind, i.occurred_at, i.metadata, i.source_url, i.body, i.state, i.lease_token,
            i.remote_path, i.content_hash, i.rate_limited_count, i.write_contention_count,
            c.dropbox_access_token, c.folder_root, c.path_template, c.throttled_until
       FROM archive_items i JOIN customers c ON c.id = i.customer_id
      WHERE i.id = $1 AND i.customer_id = $2`,
    [itemId, customerId],
  );
  if (!r) return undefined;
  return {
    id: String(r.id), customerId: r.customer_id, kind: r.kind, occurredAt: r.occurred_at, metadata: r.metadata,
    sourceUrl: r.source_url, body: r.body, state: r.state, leaseToken: r.lease_token, remotePath: r.remote_path,
    contentHash: r.content_hash, rateLimitedCount: r.rate_limited_count, writeContentionCount: r.write_contention_count, accessToken: r.dropbox_access_token,
    folderRoot: r.folder_root, pathTemplate: r.path_template, throttledUntil: r.throttled_until,
  };
}
