// The SQL of day manifests: which of a customer's days need their manifest written (the trigger of
// migration 012, in migration 013's version, marks them), the day's archived items a page at a
// time, and what was written. A day is a calendar day in the customer's time zone
// (customers.time_zone); its bounds are computed once per query as `day::timestamp AT TIME ZONE tz`,
// so the items of a day are a range of occurred_at and the indexes on it still serve.

import type { ItemKind } from './items.js';
import type { Db } from './pool.js';

/** A day whose manifest is due, and its change count when it was read. */
export interface DueManifest {
  /** `YYYY-MM-DD`, in the customer's time zone. */
  day: string;
  changes: string;
}

/** One line of a manifest. */
export interface ManifestItem {
  id: string;
  kind: ItemKind;
  remotePath: string;
  sizeBytes: number | null;
  contentHash: string;
}

/** Where a page of a day's items ended; opaque, so that the next page starts exactly after it. */
export interface ManifestCursor {
  occurredAt: string;
  id: string;
}

/** Turns the customer's day manifests on or off. @returns false if the customer does not exist */
export async function setDayManifests(db: Db, customerId: string, on: boolean): Promise<boolean> {
  const rows = await db.query(`UPDATE customers SET day_manifests = $2 WHERE id = $1 RETURNING id`, [customerId, on]);
  return rows.length > 0;
}

export async function dayManifestsEnabled(db: Db, customerId: string): Promise<boolean> {
  const [row] = await db.query<{ day_manifests: boolean }>(`SELECT day_manifests FROM customers WHERE id = $1`, [
    customerId,
  ]);
  return row?.day_manifests ?? false;
}

/**
 * The customer's dirty days that are complete: before `today` (in `timeZone`, the customer's) and
 * with no item of the day pending or leased. Oldest first.
 */
export async function dueManifests(
  db: Db,
  customerId: string,
  timeZone: string,
  today: string,
  limit: number,
): Promise<DueManifest[]> {
  return db.query<DueManifest>(
    `SELECT m.day::text AS day, m.changes::text AS changes FROM manifests m
      WHERE m.customer_id = $1 AND m.dirty AND m.day < $3::date
        AND NOT EXISTS (
          SELECT 1 FROM archive_items a
           WHERE a.customer_id = m.customer_id AND a.state IN ('pending', 'leased')
             AND a.occurred_at >= m.day::timestamp AT TIME ZONE $2::text
             AND a.occurred_at < (m.day + 1)::timestamp AT TIME ZONE $2::text)
      ORDER BY m.day LIMIT $4`,
    [customerId, timeZone, today, limit],
  );
}

/** The next page of the day's (in `timeZone`) archived items, in the order they occurred, after `after`. */
export async function manifestItemsPage(
  db: Db,
  customerId: string,
  timeZone: string,
  day: string,
  after: ManifestCursor | undefined,
  limit: number,
): Promise<{ items: ManifestItem[]; next: ManifestCursor | undefined }> {
  const rows = await db.query<{
    id: string;
    kind: ItemKind;
    remote_path: string;
    size_bytes: string | null;
    content_hash: string;
    occurred_at: string;
  }>(
    `SELECT id, kind, remote_path, size_bytes, content_hash, occurred_at::text AS occurred_at FROM archive_items
      WHERE customer_id = $1 AND state = 'archived'
        AND occurred_at >= $3::date::timestamp AT TIME ZONE $2::text
        AND occurred_at < ($3::date + 1)::timestamp AT TIME ZONE $2::text
        AND (occurred_at, id) > (coalesce($4::timestamptz, '-infinity'), coalesce($5::bigint, 0))
      ORDER BY occurred_at, id LIMIT $6`,
    [customerId, timeZone, day, after?.occurredAt ?? null, after?.id ?? null, limit],
  );
  const last = rows.at(-1);
  return {
    items: rows.map((r) => ({
      id: String(r.id),
      kind: r.kind,
      remotePath: r.remote_path,
      sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
      contentHash: r.content_hash,
    })),
    next: last && rows.length === limit ? { occurredAt: last.occurred_at, id: String(last.id) } : undefined,
  };
}

/**
 * Records the day's manifest as written. The day stays dirty if it changed since it was read as
 * due (`changes`), so the next run writes it again.
 */
export async function markManifestWritten(
  db: Db,
  customerId: string,
  due: DueManifest,
  written: { itemCount: number; contentHash: string },
): Promise<void> {
  await db.query(
    `UPDATE manifests SET dirty = changes <> $3::bigint, written_at = now(), item_count = $4, content_hash = $5
      WHERE customer_id = $1 AND day = $2::date`,
    [customerId, due.day, due.changes, written.itemCount, written.contentHash],
  );
}
