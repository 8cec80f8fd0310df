import type { Db } from '../../db/pool.js';
import { upsertCustomer } from '../../db/customers.js';
import { testKeyring } from './secret-keys.js';
import type { ItemKind } from '../../db/items.js';
import { syntheticContent, syntheticUrl } from '../../dev/media-server.js';

export interface TestItemSpec {
  kind?: ItemKind;
  bytes?: number;
  /** Overrides the media URL, e.g. to point at a missing file. */
  sourceUrl?: string;
  /**
   * The customer's metadata sidecars. Off unless asked for: most tests count one file and one
   * upload per item; test/system/sidecars.test.ts covers them.
   */
  sidecars?: boolean;
}

/** Inserts a customer (idempotent; an undefined token keeps its credentials) and `count` pending items with synthetic media; returns their ids. */
export async function insertItems(
  db: Db,
  customerId: string,
  token: string | undefined,
  mediaBase: string,
  count: number,
  spec: TestItemSpec = {},
): Promise<string[]> {
  await upsertCustomer(db, testKeyring(), {
    id: customerId,
    name: `Customer ${customerId}`,
    accessToken: token,
    sidecars: spec.sidecars ?? false,
  });
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const kind = spec.kind ?? 'voicemail';
    const name = `${customerId}-${n}-${Math.random().toString(36).slice(2, 8)}`;
    const bytes = spec.bytes ?? 1000 + n;
    const isSms = kind === 'sms';
    const [row] = await db.query<{ id: string }>(
      `INSERT INTO archive_items (customer_id, kind, occurred_at, metadata, source_url, body, size_bytes)
       VALUES ($1, $2, now(), $3, $4, $5, $6) RETURNING id`,
      [
        customerId,
        kind,
        { extension: '100', media: name, bytes },
        isSms ? null : (spec.sourceUrl ?? syntheticUrl(mediaBase, name, bytes)),
        isSms ? `sms ${name}` : null,
        bytes,
      ],
    );
    ids.push(String(row?.id));
  }
  return ids;
}

/** The bytes an item's source serves, recomputed from its metadata. */
export function expectedContent(metadata: { media: string; bytes: number }, kind: ItemKind): Buffer {
  return kind === 'sms' ? Buffer.from(`sms ${metadata.media}`) : syntheticContent(metadata.media, metadata.bytes);
}
