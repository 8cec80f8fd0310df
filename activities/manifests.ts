// Day manifests: a CSV per customer and day in its Dropbox, at <folder root>/manifests/<day>.csv,
// listing every item archived that day (path below the folder root, kind, size, content hash) and
// then the count. A day is a calendar day in the customer's time zone (UTC by default), the one its
// items' path template {date} names. Written once the day is over there and none of its items is
// pending or leased, and again whenever the day changes later. Built page by page from Postgres into an upload session,
// so a day of any size costs one page and one 4 MiB chunk of memory.

import { heartbeat, log } from '@temporalio/activity';
import { getCustomer } from '../db/customers.js';
import { PostgresError } from '../db/errors.js';
import {
  dayManifestsEnabled,
  dueManifests,
  manifestItemsPage,
  markManifestWritten,
  type DueManifest,
  type ManifestCursor,
} from '../db/manifests.js';
import type { Db } from '../db/pool.js';
import { localDateTime } from '../db/time-zone.js';
import { FailureType } from '../workflows/failures.js';
import type { ManifestsResult, WrittenManifest } from '../workflows/write-manifests.js';
import type { DropboxAccounts } from './dropbox/account.js';
import { CONTENT_HASH_BLOCK_SIZE } from './dropbox/content-hash.js';
import { classifyDropboxError } from './dropbox/errors.js';
import { TypedFailure } from './failure.js';
import { archiveFolderFor } from './paths.js';
import { uploadToSession } from './sessions.js';

/** Items read from Postgres per query. */
const PAGE_SIZE = 1000;
/** Days one call writes at most; the rest wait for the next call. */
const DAYS_PER_CALL = 400;

export const MANIFEST_HEADER = 'path,kind,size,content_hash';

/** The Dropbox path of the customer's manifest of `day` (`YYYY-MM-DD`). */
export function manifestPathFor(folderRoot: string, day: string): string {
  return `${archiveFolderFor(folderRoot)}/manifests/${day}.csv`;
}

/** Whether a lower-cased listed path is one of the customer's manifests. */
export function isManifestPath(folderRoot: string, pathLower: string): boolean {
  const prefix = `${archiveFolderFor(folderRoot).toLowerCase()}/manifests/`;
  return pathLower.startsWith(prefix) && /^\d{4}-\d{2}-\d{2}\.csv$/.test(pathLower.slice(prefix.length));
}

/** A CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180). */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

export interface ManifestDeps {
  db: Db;
  accounts: DropboxAccounts;
  /** The current time, whose date in the customer's time zone is "today". @default the clock */
  now?: (() => Date) | undefined;
}

/** The manifest activity, bound to Postgres and the customer's Dropbox. */
export function createManifestActivities({ db, accounts, now = () => new Date() }: ManifestDeps) {
  /**
   * Writes the customer's due day manifests: each day that is over, has no item pending or leased,
   * and changed since its manifest was written (or has none). Overwrites an older manifest.
   * @throws ApplicationFailure BadInput for an unknown customer; typed by the taxonomy for Dropbox
   */
  async function writeManifests(customerId: string): Promise<ManifestsResult> {
    const customer = await getCustomer(db, customerId);
    if (!customer)
      throw new TypedFailure({ type: FailureType.BadInput, message: `customerId: unknown customer ${customerId}` });
    if (!(await dayManifestsEnabled(db, customerId))) return { enabled: false, written: [] };
    const { timeZone } = customer;
    const today = localDateTime(now(), timeZone).date;
    const written: WrittenManifest[] = [];
    for (const due of await dueManifests(db, customerId, timeZone, today, DAYS_PER_CALL)) {
      written.push(await writeDay(customerId, customer.folderRoot, timeZone, due));
      heartbeat({ written: written.length });
    }
    if (written.length > 0) log.info('day manifests written', { customerId, days: written.map((w) => w.day) });
    return { enabled: true, written };
  }

  async function writeDay(
    customerId: string,
    folderRoot: string,
    timeZone: string,
    due: DueManifest,
  ): Promise<WrittenManifest> {
    const path = manifestPathFor(folderRoot, due.day);
    const folderPrefix = `${archiveFolderFor(folderRoot)}/`;
    let items = 0;
    async function* lines(): AsyncGenerator<Uint8Array> {
      yield Buffer.from(`${MANIFEST_HEADER}\n`);
      let after: ManifestCursor | undefined;
      do {
        const page = await manifestItemsPage(db, customerId, timeZone, due.day, after, PAGE_SIZE);
        let text = '';
        for (const item of page.items) {
          const relative = item.remotePath.startsWith(folderPrefix)
            ? item.remotePath.slice(folderPrefix.length)
            : item.remotePath;
          text += `${csvField(relative)},${item.kind},${item.sizeBytes ?? ''},${item.contentHash}\n`;
        }
        items += page.items.length;
        heartbeat();
        yield Buffer.from(text);
        after = page.next;
      } while (after);
      yield Buffer.from(`# items,${items}\n`);
    }
    try {
      // A retried attempt builds the file again in a new session: the day may have changed since.
      const session = await uploadToSession(
        accounts,
        { size: null, chunks: lines() },
        {
          customerId,
          chunkSize: CONTENT_HASH_BLOCK_SIZE,
          close: false,
          resume: undefined,
          onProgress: () => heartbeat(),
        },
      );
      const { result } = await accounts.call(customerId, (d) =>
        d.filesUploadSessionFinish({
          cursor: { session_id: session.sessionId, offset: session.size },
          commit: { path, mode: { '.tag': 'overwrite' }, autorename: false, mute: true },
        }),
      );
      if (result.content_hash !== session.contentHash)
        throw new TypedFailure({
          type: FailureType.Transient,
          message: `Dropbox stored ${path} with content hash ${String(result.content_hash)}, expected ${session.contentHash}`,
        });
      await markManifestWritten(db, customerId, due, { itemCount: items, contentHash: session.contentHash });
      return { day: due.day, path, items, contentHash: session.contentHash };
    } catch (err) {
      if (err instanceof TypedFailure || err instanceof PostgresError) throw err;
      throw new TypedFailure(classifyDropboxError(err));
    }
  }

  return { writeManifests };
}
