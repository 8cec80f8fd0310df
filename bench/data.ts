/** Benchmark data: customers with emulator accounts, and pending items of a fixed small size. */
import type { Db } from '../db/pool.js';
import type { Dropbox } from 'dropbox';
import type { DropboxEmulator } from 'dropbox-emulator';
import { createDropboxClient } from '../activities/dropbox/client.js';
import { syntheticUrl } from '../dev/media-server.js';

const ROWS_PER_INSERT = 2000;
/** Small recordings: the benchmark measures pacing, not bandwidth. */
export const ITEM_BYTES = 2_000;

export const tokenFor = (customerId: string): string => `bench-token-${customerId}`;

/**
 * Inserts customers (with access tokens the emulator knows, each its own account and so its own
 * rate limit) and, for each, `items` pending items. Item n of customer c is the same in every run.
 */
export async function createCustomers(
  db: Db,
  emulator: DropboxEmulator,
  ids: string[],
  uploadsPerSecond: number | null,
): Promise<void> {
  for (let start = 0; start < ids.length; start += ROWS_PER_INSERT) {
    const chunk = ids.slice(start, start + ROWS_PER_INSERT);
    await db.query(
      // No metadata sidecars or day manifests: the baselines write neither, so the figures compare
      // like with like (a sidecar is one more upload per item on the same token).
      `INSERT INTO customers (id, name, dropbox_access_token, sidecars, day_manifests)
       SELECT id, 'Bench ' || id, $2 || id, false, false FROM unnest($1::text[]) AS id
       ON CONFLICT (id) DO NOTHING`,
      [chunk, tokenFor('')],
    );
  }
  for (const id of ids) {
    emulator.addAccount({ token: tokenFor(id), accountId: id, config: { uploadsPerSecond } });
  }
}

/**
 * Inserts `count` pending items for the customer; created_at is the insert time. They occurred
 * now, or `occurredAgoMs` before (history to backfill); `first` numbers the first one's media.
 */
export async function insertItems(
  db: Db,
  mediaBase: string,
  customerId: string,
  count: number,
  { occurredAgoMs = 0, first = 0 }: { occurredAgoMs?: number; first?: number } = {},
): Promise<void> {
  for (let start = 0; start < count; start += ROWS_PER_INSERT) {
    const n = Math.min(ROWS_PER_INSERT, count - start);
    const rows = Array.from({ length: n }, (_, i) => {
      const media = `${customerId}-${first + start + i}`;
      return {
        kind: 'call_recording',
        metadata: { extension: '100', media, bytes: ITEM_BYTES },
        source_url: syntheticUrl(mediaBase, media, ITEM_BYTES),
        size_bytes: ITEM_BYTES,
      };
    });
    await db.query(
      `INSERT INTO archive_items (customer_id, kind, occurred_at, metadata, source_url, size_bytes)
       SELECT $1, r.kind, now() - $3 * interval '1 millisecond', r.metadata, r.source_url, r.size_bytes
         FROM jsonb_to_recordset($2::jsonb) AS r(kind text, metadata jsonb, source_url text, size_bytes bigint)`,
      [customerId, JSON.stringify(rows), occurredAgoMs],
    );
  }
}

/** Archived items of these customers. */
export async function archivedCount(db: Db, ids: string[]): Promise<number> {
  const [row] = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM archive_items WHERE customer_id = ANY($1) AND state = 'archived'`,
    [ids],
  );
  return Number(row?.n ?? 0);
}

/** Insert → archived latencies in seconds, ascending, of the customers' archived items. */
export async function latencies(db: Db, ids: string[]): Promise<number[]> {
  const rows = await db.query<{ s: number }>(
    `SELECT extract(epoch FROM archived_at - created_at)::float8 AS s FROM archive_items
      WHERE customer_id = ANY($1) AND state = 'archived' ORDER BY 1`,
    [ids],
  );
  return rows.map((r) => Number(r.s));
}

/**
 * Insert → archived latencies in seconds, ascending, of the customer's archived items that
 * occurred at most `withinMs` ago (its live ones).
 */
export async function liveLatencies(db: Db, customerId: string, withinMs: number): Promise<number[]> {
  const rows = await db.query<{ s: number }>(
    `SELECT extract(epoch FROM archived_at - created_at)::float8 AS s FROM archive_items
      WHERE customer_id = $1 AND state = 'archived' AND occurred_at >= now() - $2 * interval '1 millisecond' ORDER BY 1`,
    [customerId, withinMs],
  );
  return rows.map((r) => Number(r.s));
}

/** Items of the customer that occurred before `agoMs` ago and were archived between two times (epoch ms). */
export async function backfillArchivedBetween(
  db: Db,
  customerId: string,
  agoMs: number,
  fromMs: number,
  toMs: number,
): Promise<number> {
  const [row] = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM archive_items
      WHERE customer_id = $1 AND state = 'archived' AND occurred_at < now() - $2 * interval '1 millisecond'
        AND archived_at >= to_timestamp($3 / 1000.0) AND archived_at < to_timestamp($4 / 1000.0)`,
    [customerId, agoMs, fromMs, toMs],
  );
  return Number(row?.n ?? 0);
}

/** Epoch ms of each archival of these customers, ascending. */
export async function archiveTimes(db: Db, ids: string[]): Promise<number[]> {
  const rows = await db.query<{ t: number }>(
    `SELECT (extract(epoch FROM archived_at) * 1000)::float8 AS t FROM archive_items
      WHERE customer_id = ANY($1) AND state = 'archived' ORDER BY 1`,
    [ids],
  );
  return rows.map((r) => Number(r.t));
}

/**
 * An SDK client of a fresh emulator account with no rate limit, and a bench item's bytes: for
 * measuring the emulator on its own, with no database or Temporal.
 */
export function emulatorProbe(emulator: DropboxEmulator, id: string): { dbx: Dropbox; body: Buffer } {
  emulator.addAccount({ token: tokenFor(id), accountId: id, config: { uploadsPerSecond: null } });
  return {
    dbx: createDropboxClient({ accessToken: tokenFor(id), apiBase: emulator.url }),
    body: Buffer.alloc(ITEM_BYTES, 7),
  };
}
