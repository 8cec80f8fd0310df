// The SQL of archive items: leasing, marking and re-queueing them, one function per statement.

import type { Db } from './pool.js';

export type ItemKind = 'call_recording' | 'voicemail' | 'fax' | 'sms';

/** A leased item as the workflow sees it: small, and never the content. */
export interface ItemDescriptor {
  id: string;
  kind: ItemKind;
  sizeBytes: number | null;
}

/** Leases up to `limit` claimable items (pending, or leased with an expired lease) in one statement. */
export async function leaseItems(
  db: Db,
  customerId: string,
  limit: number,
  leaseToken: string,
  leaseTtlMs: number,
): Promise<ItemDescriptor[]> {
  const rows = await db.query<{ id: string; kind: ItemKind; size_bytes: string | null }>(
    `WITH claimable AS (
       SELECT id FROM archive_items
        WHERE customer_id = $1
          AND (state = 'pending' OR (state = 'leased' AND lease_expires_at < now()))
        ORDER BY id
        LIMIT $2
        FOR UPDATE SKIP LOCKED)
     UPDATE archive_items a
        SET state = 'leased', lease_token = $3, lease_expires_at = now() + $4 * interval '1 millisecond'
       FROM claimable c
      WHERE a.id = c.id
     RETURNING a.id, a.kind, a.size_bytes`,
    [customerId, limit, leaseToken, leaseTtlMs],
  );
  return rows
    .map((r) => ({ id: String(r.id), kind: r.kind, sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes) }))
    .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
}

/** Items of the customer still waiting to be leased, and how long its Dropbox throttle still lasts. */
export async function pendingAndThrottle(
  db: Db,
  customerId: string,
): Promise<{ pending: number; throttledForMs: number }> {
  const [row] = await db.query<{ n: string; throttled_ms: number }>(
    `SELECT (SELECT count(*) FROM archive_items WHERE customer_id = $1 AND state = 'pending') AS n,
            coalesce((SELECT greatest(0, extract(epoch FROM throttled_until - now()) * 1000)::float8
                        FROM customers WHERE id = $1), 0) AS throttled_ms`,
    [customerId],
  );
  return { pending: Number(row?.n ?? 0), throttledForMs: Math.ceil(Number(row?.throttled_ms ?? 0)) };
}

/**
 * Marks an item archived, fenced by its lease: only the current lease holder may complete it.
 * @returns false when the lease was lost (the row belongs to someone else now)
 */
export async function markArchived(
  db: Db,
  itemId: string,
  leaseToken: string,
  remote: { path: string; rev: string; contentHash: string; size: number },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE archive_items
        SET state = 'archived', remote_path = $3, remote_rev = $4, content_hash = $5, size_bytes = $6,
            archived_at = now(), attempts = attempts + 1, last_error = NULL, lease_token = NULL, lease_expires_at = NULL
      WHERE id = $1 AND lease_token = $2
     RETURNING id`,
    [itemId, leaseToken, remote.path, remote.rev, remote.contentHash, remote.size],
  );
  return rows.length === 1;
}

/** Marks an item failed so an operator can see and re-drive it; fenced by its lease. */
export async function markFailed(db: Db, itemId: string, leaseToken: string, error: string): Promise<boolean> {
  const rows = await db.query(
    `UPDATE archive_items
        SET state = 'failed', last_error = $3, attempts = attempts + 1, lease_token = NULL, lease_expires_at = NULL
      WHERE id = $1 AND lease_token = $2
     RETURNING id`,
    [itemId, leaseToken, error],
  );
  return rows.length === 1;
}

/**
 * Records a 429 on the item and holds back every upload of the customer until the Retry-After has
 * passed; also extends the item's lease so the wait cannot cost it its lease.
 * @returns the time until which the customer is throttled
 */
export async function recordRateLimited(
  db: Db,
  customerId: string,
  itemId: string | undefined,
  leaseToken: string,
  retryAfterMs: number,
  leaseTtlMs: number,
  error: string,
): Promise<Date> {
  const [row] = await db.query<{ throttled_until: Date }>(
    `WITH item AS (
       UPDATE archive_items
          SET rate_limited_count = rate_limited_count + 1, attempts = attempts + 1, last_error = $5,
              lease_expires_at = greatest(lease_expires_at, now() + $6 * interval '1 millisecond')
        WHERE id = $3 AND lease_token = $4)
     UPDATE customers
        SET throttled_until = greatest(coalesce(throttled_until, now()), now() + $2 * interval '1 millisecond')
      WHERE id = $1
     RETURNING throttled_until`,
    [customerId, retryAfterMs, itemId ?? null, leaseToken, error, leaseTtlMs],
  );
  return row?.throttled_until ?? new Date(Date.now() + retryAfterMs);
}

/**
 * Records a retryable failure on the item (not a too_many_requests 429), so operators can see why
 * it is slow; `writeContention` counts a too_many_write_operations for the pacing controller.
 */
export async function recordAttemptFailed(
  db: Db,
  itemId: string,
  leaseToken: string,
  error: string,
  writeContention = false,
): Promise<void> {
  await db.query(
    `UPDATE archive_items SET attempts = attempts + 1, last_error = $3, write_contention_count = write_contention_count + $4
      WHERE id = $1 AND lease_token = $2`,
    [itemId, leaseToken, error, writeContention ? 1 : 0],
  );
}

/** Returns a batch's unfinished items to pending, e.g. when the customer pauses mid-batch. */
export async function releaseLease(db: Db, customerId: string, leaseToken: string): Promise<number> {
  const rows = await db.query(
    `UPDATE archive_items SET state = 'pending', lease_token = NULL, lease_expires_at = NULL
      WHERE customer_id = $1 AND lease_token = $2 AND state = 'leased'
     RETURNING id`,
    [customerId, leaseToken],
  );
  return rows.length;
}

/**
 * Puts a customer's failed items back to pending so the pipeline tries them again, optionally only
 * one kind, or only items that occurred since a time.
 * @returns how many items were re-queued
 */
export async function requeueFailed(
  db: Db,
  customerId: string,
  filter: { kind?: ItemKind | undefined; since?: Date | undefined } = {},
): Promise<number> {
  const rows = await db.query(
    `UPDATE archive_items SET state = 'pending', last_error = NULL
      WHERE customer_id = $1 AND state = 'failed'
        AND ($2::text IS NULL OR kind = $2)
        AND ($3::timestamptz IS NULL OR occurred_at >= $3)
     RETURNING id`,
    [customerId, filter.kind ?? null, filter.since ?? null],
  );
  return rows.length;
}

/** A new item to archive, as whatever syncs the telephony system (or the demo seed) writes it. */
export interface NewItem {
  kind: ItemKind;
  occurredAt: Date;
  metadata: Record<string, unknown>;
  sourceUrl: string | null;
  body: string | null;
  sizeBytes: number | null;
}

/** Inserts a customer's pending items in one statement; keep `items` to about 1,000 per call. */
export async function insertPendingItems(db: Db, customerId: string, items: readonly NewItem[]): Promise<void> {
  const rows = items.map((i) => ({
    kind: i.kind,
    occurred_at: i.occurredAt.toISOString(),
    metadata: i.metadata,
    source_url: i.sourceUrl,
    body: i.body,
    size_bytes: i.sizeBytes,
  }));
  await db.query(
    `INSERT INTO archive_items (customer_id, kind, occurred_at, metadata, source_url, body, size_bytes)
     SELECT $1, r.kind, r.occurred_at, r.metadata, r.source_url, r.body, r.size_bytes
       FROM jsonb_to_recordset($2::jsonb)
         AS r(kind text, occurred_at timestamptz, metadata jsonb, source_url text, body text, size_bytes bigint)`,
    [customerId, JSON.stringify(rows)],
  );
}
