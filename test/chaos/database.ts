/** The chaos run's own SQL: inserting the plan's items and reading back what became of them. */
import { itemCounts } from '../../db/item-counts.js';
import { insertPendingItems } from '../../db/items.js';
import type { Db } from '../../db/pool.js';
import { sourceUrlOf, type ChaosPlan } from './plan.js';
import type { InsertedItem, ItemRow } from './verify.js';

/** Inserts the plan's items, pointing each at its (possibly faulty) source; returns them with their ids. */
export async function insertItems(db: Db, plan: ChaosPlan, mediaUrl: string): Promise<InsertedItem[]> {
  for (const customer of plan.customers) {
    const mine = plan.items.filter((i) => i.customerId === customer.id);
    for (let at = 0; at < mine.length; at += 1000) {
      await insertPendingItems(
        db,
        customer.id,
        mine.slice(at, at + 1000).map((i) => ({
          kind: i.kind,
          occurredAt: i.occurredAt,
          metadata: { extension: '100', chaosKey: i.key },
          sourceUrl: sourceUrlOf(i, mediaUrl),
          body: i.body,
          sizeBytes: i.bytes,
        })),
      );
    }
  }
  const rows = await db.query<{ id: string; key: string }>(
    `SELECT id, metadata->>'chaosKey' AS key FROM archive_items`,
  );
  const idOf = new Map(rows.map((r) => [r.key, String(r.id)]));
  return plan.items.map((i) => {
    const id = idOf.get(i.key);
    if (id === undefined) throw new Error(`item ${i.key} was not inserted`);
    return { ...i, id };
  });
}

/** Every item's row as the product left it. */
export async function itemRows(db: Db): Promise<Map<string, ItemRow>> {
  const rows = await db.query<{
    id: string;
    state: string;
    attempts: number;
    last_error: string | null;
    remote_path: string | null;
    content_hash: string | null;
  }>(`SELECT id, state, attempts, last_error, remote_path, content_hash FROM archive_items`);
  return new Map(
    rows.map((r) => [
      String(r.id),
      {
        id: String(r.id),
        state: r.state,
        attempts: r.attempts,
        lastError: r.last_error,
        remotePath: r.remote_path,
        contentHash: r.content_hash,
      },
    ]),
  );
}

export interface Counts {
  pending: number;
  leased: number;
  archived: number;
  failed: number;
}

/** Items by state over all customers. */
export async function countItems(db: Db): Promise<Counts> {
  const total: Counts = { pending: 0, leased: 0, archived: 0, failed: 0 };
  for (const c of (await itemCounts(db)).values()) {
    for (const k of Object.keys(total) as (keyof Counts)[]) total[k] += c[k];
  }
  return total;
}
