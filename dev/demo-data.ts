// Demo data: customers with Dropbox tokens the emulator accepts, and items of every kind.

import type { Db } from '../db/pool.js';
import { upsertCustomer } from '../db/customers.js';
import type { Keyring } from '../secrets/keyring.js';
import { insertPendingItems, type ItemKind, type NewItem } from '../db/items.js';
import { syntheticUrl } from './media-server.js';

export interface SeedOptions {
  customers: number;
  itemsPerCustomer: number;
  /** Where the media server serves synthetic content. */
  mediaBase: string;
  /** Customer ids are `<prefix>-<n>`. @default 'demo' */
  prefix?: string;
  /** Demo access token of a customer. @default `emu-<customerId>` */
  tokenFor?: (customerId: string) => string;
}

const KINDS: ItemKind[] = [
  'call_recording',
  'call_recording',
  'call_recording',
  'call_recording',
  'call_recording',
  'voicemail',
  'voicemail',
  'fax',
  'sms',
  'sms',
];
const SIZE_RANGE: Record<Exclude<ItemKind, 'sms'>, [number, number]> = {
  call_recording: [200_000, 5_000_000],
  voicemail: [20_000, 1_000_000],
  fax: [20_000, 500_000],
};
const ROWS_PER_INSERT = 1000;

/** A deterministic number in [0, 1) for an item, so a re-seed produces the same data. */
function unit(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return h / 2 ** 32;
}

/** Sizes spread log-uniformly, so most items are small and a few are large, as calls are. */
function sizeFor(kind: Exclude<ItemKind, 'sms'>, key: string): number {
  const [lo, hi] = SIZE_RANGE[kind];
  return Math.round(lo * Math.pow(hi / lo, unit(key)));
}

export interface SeededCustomer {
  id: string;
  name: string;
}

/** Inserts demo customers and their pending items. */
export async function seedDemo(db: Db, keyring: Keyring, options: SeedOptions): Promise<SeededCustomer[]> {
  const prefix = options.prefix ?? 'demo';
  const tokenFor = options.tokenFor ?? ((id: string) => `emu-${id}`);
  const seeded: SeededCustomer[] = [];
  for (let c = 1; c <= options.customers; c++) {
    const id = `${prefix}-${c}`;
    const name = `Demo Customer ${c}`;
    await upsertCustomer(db, keyring, { id, name, accessToken: tokenFor(id) });
    seeded.push({ id, name });
    for (let start = 0; start < options.itemsPerCustomer; start += ROWS_PER_INSERT) {
      const count = Math.min(ROWS_PER_INSERT, options.itemsPerCustomer - start);
      const rows = Array.from({ length: count }, (_, i) => demoItem(id, start + i, options.mediaBase));
      await insertPendingItems(db, id, rows);
    }
  }
  return seeded;
}

function demoItem(customerId: string, n: number, mediaBase: string): NewItem {
  const key = `${customerId}/${n}`;
  const kind = KINDS[Math.floor(unit(key + 'kind') * KINDS.length)] ?? 'sms';
  const occurredAt = new Date(Date.UTC(2026, 10, 1) + Math.floor(unit(key + 'when') * 26 * 86_400_000));
  const metadata = {
    extension: String(100 + Math.floor(unit(key + 'ext') * 20)),
    from: `+1555${String(Math.floor(unit(key + 'from') * 1e7)).padStart(7, '0')}`,
    to: `+1555${String(Math.floor(unit(key + 'to') * 1e7)).padStart(7, '0')}`,
  };
  if (kind === 'sms') {
    const body = `Demo message ${n} for ${customerId}: your appointment is confirmed.`;
    return { kind, occurredAt, metadata, sourceUrl: null, body, sizeBytes: Buffer.byteLength(body) };
  }
  const size = sizeFor(kind, key);
  return { kind, occurredAt, metadata, sourceUrl: syntheticUrl(mediaBase, key, size), body: null, sizeBytes: size };
}
