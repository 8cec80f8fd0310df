/**
 * The chaos suite's own check of the outcome, independent of the product's bookkeeping: it lists
 * each customer's Dropbox through the `dropbox` SDK, computes every path from the item itself,
 * and hashes the bytes the media server serves with a content hasher of its own. The database is
 * read only for what only it can say (that an item failed) and for evidence.
 */
import { Dropbox, type files } from 'dropbox';
import { syntheticUrl } from '../../dev/media-server.js';
import type { ItemKind } from '../../db/items.js';
import { contentHashOf } from './content-hash.js';
import type { EmulatorAdmin } from './parts.js';
import { expectedEnd, FOLDER_ROOT, type PlannedCustomer, type PlannedItem } from './plan.js';

/** A planned item once inserted: its database id, which its path contains. */
export interface InsertedItem extends PlannedItem {
  id: string;
}

/** What the database says about an item at the end. */
export interface ItemRow {
  id: string;
  state: string;
  attempts: number;
  lastError: string | null;
  remotePath: string | null;
  contentHash: string | null;
}

export interface ItemProblem {
  itemId: string;
  customerId: string;
  kind: ItemKind;
  sourceFault: string;
  state: string;
  attempts: number;
  lastError: string | null;
  detail: string;
}

export interface FileProblem {
  customerId: string;
  path: string;
  detail: string;
}

export interface Verification {
  items: number;
  /** Items that should be archived and are, once, at their path, with the source's bytes. */
  archived: number;
  /** Items whose source the chaos broke for good, failed and with no file. */
  failed: number;
  /** Items that should be archived but have no file at their path. */
  lost: ItemProblem[];
  /** Files at an item's path whose content hash or size differs from the source's. */
  mismatched: ItemProblem[];
  /** A second file for an item, or one file written more than once. */
  duplicated: FileProblem[];
  /** Files that belong to no item that should be archived. */
  extra: FileProblem[];
  /** Items marked failed although their source works (or healed). */
  wronglyFailed: ItemProblem[];
  /** Items whose source is broken for good but that are not marked failed. */
  notFailed: ItemProblem[];
  /** Items still pending or leased at the end. */
  unsettled: ItemProblem[];
  /** Items archived in Dropbox whose row disagrees: not archived, another path, another hash. */
  bookkeeping: ItemProblem[];
}

/** Dropbox's folder and extension per kind, as the product names them (README, "Paths"). */
const KIND_FOLDER: Record<ItemKind, string> = {
  call_recording: 'Call Recordings',
  voicemail: 'Voicemail',
  fax: 'Fax',
  sms: 'SMS',
};
const EXTENSION: Record<ItemKind, string> = { call_recording: 'mp3', voicemail: 'mp3', fax: 'pdf', sms: 'txt' };

/** The item's path under the chaos customers' template, `{root}/{kind}/{id}.{ext}`. */
export function expectedPath(item: InsertedItem): string {
  return `${FOLDER_ROOT}/${KIND_FOLDER[item.kind]}/${item.id}.${EXTENSION[item.kind]}`;
}

/** Where the item's metadata sidecar must be (sidecars are on by default); SMS has none. */
export function expectedSidecarPath(item: InsertedItem): string | undefined {
  return item.kind === 'sms' ? undefined : `${FOLDER_ROOT}/${KIND_FOLDER[item.kind]}/${item.id}.json`;
}

const REQUEST_TIMEOUT_MS = 30_000;
const ATTEMPTS = 5;

async function withRetries<T>(what: string, call: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      return await call();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  throw new Error(`${what} failed ${ATTEMPTS} times: ${String((last as Error)?.message ?? last)}`);
}

/** Every file in the account, through the SDK (list_folder recursive, then continue). */
export async function listFiles(emulatorUrl: string, token: string): Promise<files.FileMetadataReference[]> {
  const base = emulatorUrl.replace(/\/+$/, '');
  const dropbox = new Dropbox({
    accessToken: token,
    fetch: (input: string, init?: RequestInit) =>
      fetch(input.replace(/^https:\/\/(api|content)\.dropboxapi\.com/, base), {
        ...init,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      }),
  });
  const found: files.FileMetadataReference[] = [];
  let page = (
    await withRetries('list_folder', () => dropbox.filesListFolder({ path: '', recursive: true, limit: 1000 }))
  ).result;
  for (;;) {
    for (const entry of page.entries) if (entry['.tag'] === 'file') found.push(entry);
    if (!page.has_more) return found;
    const cursor = page.cursor;
    page = (await withRetries('list_folder/continue', () => dropbox.filesListFolderContinue({ cursor }))).result;
  }
}

/** The bytes the item's source serves when healthy, fetched from the media server. */
async function sourceBytes(mediaUrl: string, item: PlannedItem): Promise<Buffer> {
  if (item.body !== null) return Buffer.from(item.body);
  return withRetries(`fetching the source of ${item.key}`, async () => {
    const response = await fetch(syntheticUrl(mediaUrl, item.media, item.bytes), {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`media server answered ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  });
}

async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i] as T);
      }
    }),
  );
  return out;
}

export interface VerifyInput {
  customers: PlannedCustomer[];
  items: InsertedItem[];
  rows: Map<string, ItemRow>;
  emulator: EmulatorAdmin;
  mediaUrl: string;
}

/** Checks every item and every file; see Verification for what each list holds. */
export async function verifyOutcome(input: VerifyInput): Promise<Verification> {
  const v: Verification = {
    items: input.items.length,
    archived: 0,
    failed: 0,
    lost: [],
    mismatched: [],
    duplicated: [],
    extra: [],
    wronglyFailed: [],
    notFailed: [],
    unsettled: [],
    bookkeeping: [],
  };
  const hashes = new Map<string, { hash: string; size: number }>();
  await mapLimit(input.items, 8, async (item) => {
    const bytes = await sourceBytes(input.mediaUrl, item);
    hashes.set(item.id, { hash: contentHashOf(bytes), size: bytes.byteLength });
  });

  for (const customer of input.customers) {
    const listed = await listFiles(input.emulator.url, customer.token);
    const writes = new Map(
      (
        await input.emulator.admin<{ pathLower: string; writes: number }[]>(
          'GET',
          `files?account=${encodeURIComponent(customer.accountId)}`,
        )
      ).map((f) => [f.pathLower, f.writes]),
    );
    const unclaimed = new Map(listed.map((f) => [f.path_lower ?? f.path_display ?? '', f]));
    const mine = input.items.filter((i) => i.customerId === customer.id);
    const ids = new Set(mine.map((i) => i.id));

    for (const item of mine) {
      const row = input.rows.get(item.id);
      const problem = (detail: string): ItemProblem => ({
        itemId: item.id,
        customerId: item.customerId,
        kind: item.kind,
        sourceFault: item.sourceFault ?? 'none',
        state: row?.state ?? 'missing',
        attempts: row?.attempts ?? 0,
        lastError: row?.lastError ?? null,
        detail,
      });
      const path = expectedPath(item);
      const file = unclaimed.get(path.toLowerCase());
      unclaimed.delete(path.toLowerCase());
      if (row?.state === 'pending' || row?.state === 'leased') v.unsettled.push(problem('not finished'));

      if (expectedEnd(item) === 'failed') {
        if (row?.state !== 'failed') v.notFailed.push(problem('its source never works, so it must end failed'));
        if (file) v.extra.push({ customerId: customer.id, path, detail: `item ${item.id}'s source never works` });
        if (row?.state === 'failed' && !file) v.failed += 1;
        continue;
      }
      if (row?.state === 'failed') v.wronglyFailed.push(problem('marked failed, but its source works'));
      if (!file) {
        v.lost.push(problem(`no file at ${path}`));
        continue;
      }
      const source = hashes.get(item.id);
      if (file.content_hash !== source?.hash || file.size !== source?.size) {
        v.mismatched.push(
          problem(
            `${path}: content_hash ${file.content_hash} size ${file.size}, source ${source?.hash} size ${source?.size}`,
          ),
        );
        continue;
      }
      if ((writes.get(path.toLowerCase()) ?? 1) > 1) {
        v.duplicated.push({ customerId: customer.id, path, detail: `written ${writes.get(path.toLowerCase())} times` });
      }
      // Written with the item, before its row is marked archived; rewritten (overwrite) on a retry.
      const sidecar = expectedSidecarPath(item);
      if (sidecar !== undefined) {
        const found = unclaimed.delete(sidecar.toLowerCase());
        if (!found && row?.state === 'archived') {
          v.lost.push(problem(`no metadata sidecar at ${sidecar}`));
          continue;
        }
      }
      v.archived += 1;
      if (row?.state === 'archived' && (row.remotePath !== path || row.contentHash !== source.hash)) {
        v.bookkeeping.push(problem(`row says ${row.remotePath} ${row.contentHash}`));
      } else if (row?.state !== 'archived' && row?.state !== 'failed') {
        v.bookkeeping.push(problem('in Dropbox, but its row is not archived'));
      }
    }
    for (const file of unclaimed.values()) {
      const path = file.path_display ?? file.name;
      const id = /^(\d+)/.exec(file.name)?.[1];
      if (id !== undefined && ids.has(id)) {
        v.duplicated.push({ customerId: customer.id, path, detail: `a second file for item ${id}` });
      } else {
        v.extra.push({ customerId: customer.id, path, detail: 'belongs to no item' });
      }
    }
  }
  return v;
}

/** The checks that failed, each as "name=count"; empty when the outcome is right. */
export function failedChecks(v: Verification): string[] {
  const counts: [string, number][] = [
    ['lost', v.lost.length],
    ['duplicated', v.duplicated.length],
    ['mismatched', v.mismatched.length],
    ['extra', v.extra.length],
    ['wrongly-failed', v.wronglyFailed.length],
    ['not-failed', v.notFailed.length],
    ['unsettled', v.unsettled.length],
    ['bookkeeping', v.bookkeeping.length],
  ];
  return counts.filter(([, n]) => n > 0).map(([name, n]) => `${name}=${n}`);
}
