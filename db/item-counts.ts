// The SQL that counts archive items for displays and wake-ups, one function per statement.

import type { Db } from './pool.js';

/** `skipped`: occurred before the customer's backfill_since, so never archived. */
export type ItemCounts = Record<'pending' | 'leased' | 'archived' | 'failed' | 'skipped', number>;

/** Per-customer item counts by state, for progress displays. */
export async function itemCounts(db: Db): Promise<Map<string, ItemCounts>> {
  const rows = await db.query<{ customer_id: string; state: string; n: string }>(
    `SELECT customer_id, state, count(*) AS n FROM archive_items GROUP BY customer_id, state`,
  );
  const counts = new Map<string, ItemCounts>();
  for (const r of rows) {
    const entry = counts.get(r.customer_id) ?? { pending: 0, leased: 0, archived: 0, failed: 0, skipped: 0 };
    entry[r.state as keyof typeof entry] = Number(r.n);
    counts.set(r.customer_id, entry);
  }
  return counts;
}

/** How many 429 too_many_requests answers all items got, over all their attempts. */
export async function totalRateLimited(db: Db): Promise<number> {
  const [row] = await db.query<{ n: string }>('SELECT coalesce(sum(rate_limited_count), 0) AS n FROM archive_items');
  return Number(row?.n ?? 0);
}

/** Customers that have items waiting to be leased. */
export async function customersWithPendingItems(db: Db): Promise<string[]> {
  const rows = await db.query<{ customer_id: string }>(
    `SELECT DISTINCT customer_id FROM archive_items WHERE state = 'pending'`,
  );
  return rows.map((r) => r.customer_id);
}
