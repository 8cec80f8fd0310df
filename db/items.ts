// The SQL of archive items: leasing, marking and re-queueing them, one function per statement.

import { appendAuditEvent, appendAuditEvents } from './audit.js';
import type { Db } from './pool.js';

export type ItemKind = 'call_recording' | 'voicemail' | 'fax' | 'sms';

/** A leased item as the workflow sees it: small, and never the content. */
export interface ItemDescriptor {
  id: string;
  kind: ItemKind;
  sizeBytes: number | null;
}

/**
 * Leases up to `limit` claimable items in one statement: pending ones whose retry time (if any)
 * has come, and leased ones whose lease expired. Live items, those that occurred within
 * `liveWindowMs`, come first, then the backfill; each part oldest first by when it occurred (then
 * id). So a long backfill never delays new calls: it gets only what the live ones leave of the
 * batch, and so of the customer's pace. (Items that occurred before the customer's
 * backfill_since are `skipped`, never pending: see migration 009 and skipBeforeBackfill.)
 */
export async function leaseItems(
  db: Db,
  customerId: string,
  limit: number,
  leaseToken: string,
  leaseTtlMs: number,
  liveWindowMs: number,
  /** Lease live items only, no backfill: the live lane's lease while a batch runs (see LiveLane). */
  liveOnly = false,
): Promise<ItemDescriptor[]> {
  // Both parts read archive_items_claimable_by_occurred in its own order, bounded by the window,
  // so neither sorts the backlog nor reads other customers' or archived rows (ordering the backfill
  // by id let the planner walk the primary key through every archived row; test/system/live-before-backfill.test.ts).
  const rows = await db.query<{ id: string; kind: ItemKind; size_bytes: string | null; live: boolean }>(
    `WITH live AS (
       SELECT id FROM archive_items
        WHERE customer_id = $1
          AND occurred_at >= now() - $5 * interval '1 millisecond'
          AND ((state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
               OR (state = 'leased' AND lease_expires_at < now()))
        ORDER BY occurred_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED),
     backfill AS (
       SELECT id FROM archive_items
        WHERE customer_id = $1
          AND occurred_at < now() - $5 * interval '1 millisecond'
          AND ((state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
               OR (state = 'leased' AND lease_expires_at < now()))
        ORDER BY occurred_at, id
        LIMIT CASE WHEN $6 THEN 0 ELSE $2 - (SELECT count(*) FROM live) END
        FOR UPDATE SKIP LOCKED),
     claimable AS (SELECT id FROM live UNION ALL SELECT id FROM backfill)
     -- = ANY(ARRAY(…)), not a join: the planner cannot tell how many rows the backfill part
     -- takes (its limit is computed), and a join let it hash the whole table.
     UPDATE archive_items
        SET state = 'leased', lease_token = $3, lease_expires_at = now() + $4 * interval '1 millisecond'
      WHERE id = ANY(ARRAY(SELECT id FROM claimable))
     RETURNING id, kind, size_bytes, occurred_at >= now() - $5 * interval '1 millisecond' AS live`,
    [customerId, limit, leaseToken, leaseTtlMs, liveWindowMs, liveOnly],
  );
  // The batch is uploaded in this order: live items first, so they do not wait behind the backfill.
  return rows
    .sort((a, b) => Number(b.live) - Number(a.live) || Number(BigInt(a.id) - BigInt(b.id)))
    .map((r) => ({ id: String(r.id), kind: r.kind, sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes) }));
}

/** Where a customer's queue stands, as fetchBatch reports it to the workflow. */
export interface QueueState {
  /** Pending items that may be leased now. */
  pending: number;
  /** Pending items waiting for their retry time after failing. */
  retryWaiting: number;
  /** How long until the next of those may be tried, in ms; undefined if none waits. */
  nextRetryInMs: number | undefined;
  /** When the oldest item not yet archived or failed was inserted: the customer's lag. */
  oldestWaitingSince: Date | undefined;
  /** How much longer the customer's Dropbox throttle lasts, in ms; 0 if none. */
  throttledForMs: number;
}

/** The customer's queue: what is ready, what waits for a retry, its lag, and its Dropbox throttle. */
export async function queueState(db: Db, customerId: string): Promise<QueueState> {
  const [row] = await db.query<{
    ready: string;
    waiting: string;
    next_retry_ms: number | null;
    oldest: Date | null;
    throttled_ms: number;
  }>(
    `SELECT count(*) FILTER (WHERE state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())) AS ready,
            count(*) FILTER (WHERE state = 'pending' AND next_attempt_at > now()) AS waiting,
            -- No greatest(0, …) here: the filter keeps it positive, and greatest() turns NULL
            -- (nothing waits) into 0, which woke an idle customer every second.
            (extract(epoch FROM min(next_attempt_at) FILTER (WHERE state = 'pending' AND next_attempt_at > now()) - now()) * 1000)::float8 AS next_retry_ms,
            min(created_at) AS oldest,
            coalesce((SELECT greatest(0, extract(epoch FROM throttled_until - now()) * 1000)::float8
                        FROM customers WHERE id = $1), 0) AS throttled_ms
       FROM archive_items
      WHERE customer_id = $1 AND state IN ('pending', 'leased')`,
    [customerId],
  );
  return {
    pending: Number(row?.ready ?? 0),
    retryWaiting: Number(row?.waiting ?? 0),
    nextRetryInMs:
      row?.next_retry_ms === null || row?.next_retry_ms === undefined ? undefined : Math.ceil(row.next_retry_ms),
    oldestWaitingSince: row?.oldest ?? undefined,
    throttledForMs: Math.ceil(Number(row?.throttled_ms ?? 0)),
  };
}

/** Who changes an item's state, for its audit row. */
export interface ItemActor {
  /** The worker's identity, pid@host as Temporal names workers. */
  actor: string;
  /** More to record, e.g. the activity attempt; never a secret. */
  details?: Record<string, unknown> | undefined;
}

/**
 * Marks an item archived, fenced by its lease: only the current lease holder may complete it. The
 * archival's audit row is written in the same transaction, so no archival goes unrecorded.
 * @returns false when the lease was lost (the row belongs to someone else now)
 */
export async function markArchived(
  db: Db,
  itemId: string,
  leaseToken: string,
  remote: ArchivedRemote,
  by: ItemActor,
): Promise<boolean> {
  const marked = await markManyArchived(db, [{ itemId, leaseToken, remote, by }]);
  return marked.has(itemId);
}

/** Where Dropbox holds an archived item. */
export interface ArchivedRemote {
  path: string;
  rev: string;
  contentHash: string;
  size: number;
  sidecarPath?: string | null;
}

/** An item to mark archived, fenced by its lease, and who archived it. */
export interface ArchivalMark {
  itemId: string;
  leaseToken: string;
  remote: ArchivedRemote;
  by: ItemActor;
}

/**
 * Marks several items archived as markArchived does one, in one transaction: one statement for
 * the rows and one append per customer's audit chain, so uploads do not each pay a transaction
 * and take turns on their chain's head.
 * @returns the ids marked; those missing had lost their lease
 */
export async function markManyArchived(db: Db, items: ArchivalMark[]): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  return db.transaction(async (tx) => {
    const rows = await tx.query<{ id: string; customer_id: string; attempts: number }>(
      `UPDATE archive_items AS i
          SET state = 'archived', remote_path = m.path, remote_rev = m.rev, content_hash = m.content_hash,
              size_bytes = m.size, sidecar_path = m.sidecar_path,
              archived_at = now(), attempts = i.attempts + 1, last_error = NULL, last_error_at = NULL,
              next_attempt_at = NULL, lease_token = NULL, lease_expires_at = NULL
         FROM jsonb_to_recordset($1::jsonb)
              AS m(id bigint, lease_token uuid, path text, rev text, content_hash text, size bigint, sidecar_path text)
        WHERE i.id = m.id AND i.lease_token = m.lease_token
       RETURNING i.id, i.customer_id, i.attempts`,
      [
        JSON.stringify(
          items.map(({ itemId, leaseToken, remote }) => ({
            id: itemId,
            lease_token: leaseToken,
            path: remote.path,
            rev: remote.rev,
            content_hash: remote.contentHash,
            size: remote.size,
            sidecar_path: remote.sidecarPath ?? null,
          })),
        ),
      ],
    );
    const marked = new Map(rows.map((r) => [String(r.id), r]));
    await appendAuditEvents(
      tx,
      items.flatMap(({ itemId, remote, by }) => {
        const row = marked.get(itemId);
        if (!row) return [];
        return [
          {
            customerId: row.customer_id,
            kind: 'item.archived',
            actor: by.actor,
            itemId,
            remotePath: remote.path,
            contentHash: remote.contentHash,
            remoteRev: remote.rev,
            attempt: row.attempts,
            details: { sizeBytes: remote.size, ...by.details },
          },
        ];
      }),
    );
    return new Set(marked.keys());
  });
}

/**
 * Marks an item failed so an operator can see and re-drive it; fenced by its lease. Its audit row,
 * with the reason, is written in the same transaction.
 */
export async function markFailed(
  db: Db,
  itemId: string,
  leaseToken: string,
  error: string,
  by: ItemActor,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx.query<{ customer_id: string; attempts: number }>(
      `UPDATE archive_items
          SET state = 'failed', last_error = $3, last_error_at = now(), attempts = attempts + 1, next_attempt_at = NULL,
              lease_token = NULL, lease_expires_at = NULL
        WHERE id = $1 AND lease_token = $2
       RETURNING customer_id, attempts`,
      [itemId, leaseToken, error],
    );
    if (!row) return false;
    await auditFailure(tx, itemId, row, error, by);
    return true;
  });
}

/** The audit row of an item that became failed. */
function auditFailure(
  tx: Db,
  itemId: string,
  row: { customer_id: string; attempts: number },
  reason: string,
  by: ItemActor,
): Promise<unknown> {
  return appendAuditEvent(tx, {
    customerId: row.customer_id,
    kind: 'item.failed',
    actor: by.actor,
    itemId,
    attempt: row.attempts,
    details: { reason, ...by.details },
  });
}

/**
 * Records a 429 on the item and holds back every upload of the customer until the Retry-After has
 * passed; also extends the item's lease so the wait cannot cost it its lease. A 429 is Dropbox
 * pacing us, not a failure of the item: it leaves the item's failed attempts and last error alone.
 * @returns the time until which the customer is throttled
 */
export async function recordRateLimited(
  db: Db,
  customerId: string,
  itemId: string | undefined,
  leaseToken: string,
  retryAfterMs: number,
  leaseTtlMs: number,
): Promise<Date> {
  const [row] = await db.query<{ throttled_until: Date }>(
    `WITH item AS (
       UPDATE archive_items
          SET rate_limited_count = rate_limited_count + 1, attempts = attempts + 1,
              lease_expires_at = greatest(lease_expires_at, now() + $5 * interval '1 millisecond')
        WHERE id = $3 AND lease_token = $4)
     UPDATE customers
        SET throttled_until = greatest(coalesce(throttled_until, now()), now() + $2 * interval '1 millisecond'),
            rate_limited_at = now()
      WHERE id = $1
     RETURNING throttled_until`,
    [customerId, retryAfterMs, itemId ?? null, leaseToken, leaseTtlMs],
  );
  return row?.throttled_until ?? new Date(Date.now() + retryAfterMs);
}

/** A 429 too_many_write_operations on the item: counted for the pacing controller, not a failure. */
export async function recordWriteContention(db: Db, itemId: string, leaseToken: string): Promise<void> {
  await db.query(
    `UPDATE archive_items SET attempts = attempts + 1, write_contention_count = write_contention_count + 1
      WHERE id = $1 AND lease_token = $2`,
    [itemId, leaseToken],
  );
}

/**
 * Records a transient failure on the item (Dropbox 5xx, a network error) that its activity will
 * retry, so operators can see why it is slow.
 * @returns the item's consecutive failed attempts, this one included; 0 if the lease was lost
 */
export async function recordTransientFailure(
  db: Db,
  itemId: string,
  leaseToken: string,
  error: string,
): Promise<number> {
  const rows = await db.query<{ failed_attempts: number }>(
    `UPDATE archive_items
        SET attempts = attempts + 1, failed_attempts = failed_attempts + 1, last_error = $3, last_error_at = now(),
            first_failed_at = coalesce(first_failed_at, now())
      WHERE id = $1 AND lease_token = $2
     RETURNING failed_attempts`,
    [itemId, leaseToken, error],
  );
  return rows[0]?.failed_attempts ?? 0;
}

/** How an item that keeps failing waits, and when it is given up. */
export interface ItemRetryPolicy {
  /** The wait after the first failed attempt; it doubles with each further one. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** Failed attempts after which the item becomes failed. */
  maxAttempts: number;
  /** Time since the first failed attempt after which the item becomes failed. */
  maxAgeMs: number;
}

/**
 * Gives a failing item's slot back: records the failed attempt and returns the item to pending
 * with a retry time (exponential backoff with 10% jitter), or marks it failed once it has failed
 * `maxAttempts` times or for `maxAgeMs`. Fenced by the lease. An item given up gets its audit row
 * in the same transaction.
 * @returns the item's state now, or undefined if the lease was lost
 */
export async function deferItem(
  db: Db,
  itemId: string,
  leaseToken: string,
  error: string,
  policy: ItemRetryPolicy,
  by: ItemActor,
): Promise<{ state: 'pending' | 'failed'; failedAttempts: number; nextAttemptAt: Date | null } | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx.query<{
      state: 'pending' | 'failed';
      failed_attempts: number;
      next_attempt_at: Date | null;
      customer_id: string;
      attempts: number;
      last_error: string;
    }>(
      `WITH item AS (
       SELECT id, failed_attempts + 1 AS n, coalesce(first_failed_at, now()) AS since
         FROM archive_items WHERE id = $1 AND lease_token = $2 FOR UPDATE),
     decided AS (
       SELECT id, n, since, (n >= $6 OR now() - since >= $7 * interval '1 millisecond') AS give_up FROM item)
     UPDATE archive_items a
        SET attempts = a.attempts + 1, failed_attempts = d.n, first_failed_at = d.since,
            state = CASE WHEN d.give_up THEN 'failed' ELSE 'pending' END,
            next_attempt_at = CASE WHEN d.give_up THEN NULL
              ELSE now() + least($5::float8, $4::float8 * power(2, d.n - 1)) * (0.9 + 0.2 * random()) * interval '1 millisecond' END,
            last_error = CASE WHEN d.give_up
              THEN 'gave up after ' || d.n || ' failed attempts since ' || to_char(d.since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ': ' || $3
              ELSE $3 END,
            last_error_at = now(), lease_token = NULL, lease_expires_at = NULL
       FROM decided d
      WHERE a.id = d.id
     RETURNING a.state, a.failed_attempts, a.next_attempt_at, a.customer_id, a.attempts, a.last_error`,
      [itemId, leaseToken, error, policy.initialDelayMs, policy.maxDelayMs, policy.maxAttempts, policy.maxAgeMs],
    );
    if (!row) return undefined;
    if (row.state === 'failed') await auditFailure(tx, itemId, row, row.last_error, by);
    return { state: row.state, failedAttempts: row.failed_attempts, nextAttemptAt: row.next_attempt_at };
  });
}

/**
 * Returns a batch's unfinished items to pending, e.g. when the customer pauses mid-batch: all of
 * them, only those in `only`, or all but those in `except` (uploads still running).
 */
export async function releaseLease(
  db: Db,
  customerId: string,
  leaseToken: string,
  items: { only?: readonly string[] | undefined; except?: readonly string[] | undefined } = {},
): Promise<number> {
  const rows = await db.query(
    `UPDATE archive_items SET state = 'pending', lease_token = NULL, lease_expires_at = NULL
      WHERE customer_id = $1 AND lease_token = $2 AND state = 'leased'
        AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))
        AND ($4::bigint[] IS NULL OR NOT (id = ANY($4::bigint[])))
     RETURNING id`,
    [customerId, leaseToken, items.only ?? null, items.except ?? null],
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
    `UPDATE archive_items
        SET state = 'pending', last_error = NULL, last_error_at = NULL, failed_attempts = 0, first_failed_at = NULL,
            next_attempt_at = NULL
      WHERE customer_id = $1 AND state = 'failed'
        AND ($2::text IS NULL OR kind = $2)
        AND ($3::timestamptz IS NULL OR occurred_at >= $3)
     RETURNING id`,
    [customerId, filter.kind ?? null, filter.since ?? null],
  );
  return rows.length;
}

/**
 * Applies the customer's backfill_since to the items it already has: pending ones (and ones whose
 * lease expired) that occurred before it become skipped, and skipped ones since it (the cut-off
 * moved earlier) pending again. Items in flight are left to finish. New items are skipped as they are inserted (migration 009).
 * @returns how many items were skipped and re-queued
 */
export async function skipBeforeBackfill(db: Db, customerId: string): Promise<{ skipped: number; requeued: number }> {
  const rows = await db.query<{ state: 'skipped' | 'pending' }>(
    `UPDATE archive_items i
        SET state = CASE WHEN i.state = 'skipped' THEN 'pending' ELSE 'skipped' END,
            lease_token = NULL, lease_expires_at = NULL
       FROM customers c
      WHERE c.id = $1 AND i.customer_id = $1
        AND (((i.state = 'pending' OR (i.state = 'leased' AND i.lease_expires_at < now()))
              AND i.occurred_at < c.backfill_since)
             OR (i.state = 'skipped' AND (c.backfill_since IS NULL OR i.occurred_at >= c.backfill_since)))
     RETURNING i.state`,
    [customerId],
  );
  return {
    skipped: rows.filter((r) => r.state === 'skipped').length,
    requeued: rows.filter((r) => r.state === 'pending').length,
  };
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
