// The SQL that loads what an upload needs about its items and their customer.

import type { ItemKind } from './items.js';
import type { Db } from './pool.js';
import type { SealedTokens } from './tokens.js';

/** What an upload needs about one item and its customer: its source, its lease, its path and its throttle. */
export interface UploadSubject {
  id: string;
  customerId: string;
  kind: ItemKind;
  occurredAt: Date;
  metadata: Record<string, unknown>;
  sourceUrl: string | null;
  body: string | null;
  state: 'pending' | 'leased' | 'archived' | 'failed' | 'skipped';
  leaseToken: string | null;
  rateLimitedCount: number;
  writeContentionCount: number;
  /** Consecutive transient failures so far; see deferItem. */
  failedAttempts: number;
  folderRoot: string;
  pathTemplate: string | null;
  /** The customer's IANA time zone, whose days the path's {date} names. */
  timeZone: string;
  throttledUntil: Date | null;
  /** When the customer's Dropbox last answered 429 too_many_requests. */
  rateLimitedAt: Date | null;
  /** Why a verification put this archived item back (its file was missing or altered); its upload overwrites the path. */
  requeueReason: string | null;
  /** Whether the customer wants a metadata sidecar next to the item (see activities/sidecar.ts). */
  sidecars: boolean;
  /** The customer's Dropbox tokens, sealed, read with the item so its upload needs no query of its own. */
  sealedTokens: SealedTokens;
}

type SubjectRow = {
  id: string;
  customer_id: string;
  kind: ItemKind;
  occurred_at: Date;
  metadata: Record<string, unknown>;
  source_url: string | null;
  body: string | null;
  state: UploadSubject['state'];
  lease_token: string | null;
  rate_limited_count: number;
  write_contention_count: number;
  failed_attempts: number;
  folder_root: string;
  path_template: string | null;
  time_zone: string;
  throttled_until: Date | null;
  rate_limited_at: Date | null;
  requeue_reason: string | null;
  sidecars: boolean;
} & SealedTokens;

const SUBJECT_COLUMNS = `i.id, i.customer_id, i.kind, i.occurred_at, i.metadata, i.source_url, i.body, i.state, i.lease_token,
            i.rate_limited_count, i.write_contention_count, i.failed_attempts, i.requeue_reason,
            c.folder_root, c.path_template, c.time_zone, c.throttled_until, c.rate_limited_at, c.sidecars,
            c.dropbox_access_token, c.dropbox_refresh_token, c.dropbox_token_expires_at`;

const toSubject = (r: SubjectRow): UploadSubject => ({
  id: String(r.id),
  customerId: r.customer_id,
  kind: r.kind,
  occurredAt: r.occurred_at,
  metadata: r.metadata,
  sourceUrl: r.source_url,
  body: r.body,
  state: r.state,
  leaseToken: r.lease_token,
  rateLimitedCount: r.rate_limited_count,
  writeContentionCount: r.write_contention_count,
  failedAttempts: r.failed_attempts,
  folderRoot: r.folder_root,
  pathTemplate: r.path_template,
  timeZone: r.time_zone,
  throttledUntil: r.throttled_until,
  rateLimitedAt: r.rate_limited_at,
  requeueReason: r.requeue_reason,
  sidecars: r.sidecars,
  sealedTokens: {
    dropbox_access_token: r.dropbox_access_token,
    dropbox_refresh_token: r.dropbox_refresh_token,
    dropbox_token_expires_at: r.dropbox_token_expires_at,
  },
});

export async function loadUploadSubject(
  db: Db,
  customerId: string,
  itemId: string,
): Promise<UploadSubject | undefined> {
  const [row] = await db.query<SubjectRow>(
    `SELECT ${SUBJECT_COLUMNS}
       FROM archive_items i JOIN customers c ON c.id = i.customer_id
      WHERE i.id = $1 AND i.customer_id = $2`,
    [itemId, customerId],
  );
  return row ? toSubject(row) : undefined;
}

/** The subjects of many items of one customer in one query (a batch commit has up to 1,000), by item id; missing items are absent. */
export async function loadUploadSubjects(
  db: Db,
  customerId: string,
  itemIds: readonly string[],
): Promise<Map<string, UploadSubject>> {
  const rows = await db.query<SubjectRow>(
    `SELECT ${SUBJECT_COLUMNS}
       FROM archive_items i JOIN customers c ON c.id = i.customer_id
      WHERE i.id = ANY($1::bigint[]) AND i.customer_id = $2`,
    [itemIds, customerId],
  );
  return new Map(rows.map((r) => [String(r.id), toSubject(r)]));
}
