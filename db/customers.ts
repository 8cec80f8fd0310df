// The SQL of the customer registry, one function per statement.

import type { Keyring } from '../secrets/keyring.js';
import type { Db } from './pool.js';
import { validateFolderRoot, validatePathTemplate } from './path-template.js';
import { sealToken } from './sealed-tokens.js';

export interface CustomerRecord {
  id: string;
  name: string;
  status: 'active' | 'disconnected';
  folderRoot: string;
  /** The IANA zone whose days group its items (see db/time-zone.ts). */
  timeZone: string;
}

export interface NewCustomer {
  id: string;
  name: string;
  accessToken?: string | undefined;
  refreshToken?: string | undefined;
  folderRoot?: string | undefined;
  /** See db/path-template.ts; unset keeps the customer's current layout (default for new ones). */
  pathTemplate?: string | undefined;
  /** How far back to archive: items that occurred before it are skipped. Unset keeps the current one (none for new ones). */
  backfillSince?: Date | undefined;
  /** Write a metadata sidecar next to each recording, voicemail and fax. Unset keeps the current setting (on for new ones). */
  sidecars?: boolean | undefined;
}

export const CUSTOMER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Adds a customer, or updates it if it exists: only the fields given change (a new one gets the
 * defaults). Tokens are sealed under `keyring`'s current key.
 */
export async function upsertCustomer(db: Db, keyring: Keyring, customer: NewCustomer): Promise<void> {
  if (!CUSTOMER_ID_PATTERN.test(customer.id)) {
    throw new Error(`customer id "${customer.id}" must be 1-64 letters, digits, '-' or '_'`);
  }
  if (customer.folderRoot !== undefined) validateFolderRoot(customer.folderRoot);
  if (customer.pathTemplate !== undefined) validatePathTemplate(customer.pathTemplate);
  await db.query(
    `INSERT INTO customers (id, name, dropbox_access_token, dropbox_refresh_token, folder_root, path_template, backfill_since, sidecars)
     VALUES ($1, $2, $3, $4, coalesce($5, '/Archiver'), $6, $7, coalesce($8, true))
     ON CONFLICT (id) DO UPDATE SET
       name = excluded.name,
       status = 'active',
       dropbox_access_token = coalesce(excluded.dropbox_access_token, customers.dropbox_access_token),
       dropbox_refresh_token = coalesce(excluded.dropbox_refresh_token, customers.dropbox_refresh_token),
       folder_root = coalesce($5, customers.folder_root),
       path_template = coalesce($6, customers.path_template),
       backfill_since = coalesce($7, customers.backfill_since),
       sidecars = coalesce($8, customers.sidecars)`,
    [
      customer.id,
      customer.name,
      sealToken(keyring, customer.id, 'dropbox_access_token', customer.accessToken),
      sealToken(keyring, customer.id, 'dropbox_refresh_token', customer.refreshToken),
      customer.folderRoot ?? null,
      customer.pathTemplate ?? null,
      customer.backfillSince ?? null,
      customer.sidecars ?? null,
    ],
  );
}

type CustomerRow = {
  id: string;
  name: string;
  status: CustomerRecord['status'];
  folder_root: string;
  time_zone: string;
};
const toCustomer = (r: CustomerRow): CustomerRecord => ({
  id: r.id,
  name: r.name,
  status: r.status,
  folderRoot: r.folder_root,
  timeZone: r.time_zone,
});

export async function listCustomers(db: Db, options: { activeOnly?: boolean } = {}): Promise<CustomerRecord[]> {
  const rows = await db.query<CustomerRow>(
    `SELECT id, name, status, folder_root, time_zone FROM customers WHERE ($1::boolean IS FALSE OR status = 'active') ORDER BY id`,
    [options.activeOnly ?? false],
  );
  return rows.map(toCustomer);
}

export async function getCustomer(db: Db, id: string): Promise<CustomerRecord | undefined> {
  const [row] = await db.query<CustomerRow>(
    `SELECT id, name, status, folder_root, time_zone FROM customers WHERE id = $1`,
    [id],
  );
  return row ? toCustomer(row) : undefined;
}

/**
 * Sets the customer's time zone (an IANA name Postgres knows; see db/time-zone.ts), unless that would
 * move files already written: it is refused while any item of the customer has been written to a
 * path (one grouped by the old zone's days) or is leased (its upload may be writing one now).
 * @returns 'set' (also when the zone is already this one), 'refused', or 'unknown' for no such customer
 */
export async function setTimeZone(db: Db, id: string, timeZone: string): Promise<'set' | 'refused' | 'unknown'> {
  const [row] = await db.query<{ set: boolean }>(
    `WITH updated AS (
       UPDATE customers c SET time_zone = $2
        WHERE c.id = $1
          AND (c.time_zone = $2 OR NOT EXISTS (
                SELECT 1 FROM archive_items a
                 WHERE a.customer_id = $1 AND (a.remote_path IS NOT NULL OR a.state = 'leased')))
       RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM updated) AS set FROM customers WHERE id = $1`,
    [id, timeZone],
  );
  return row === undefined ? 'unknown' : row.set ? 'set' : 'refused';
}

/** Whether the customer has any Dropbox credentials stored (false also for an unknown customer). */
export async function hasDropboxCredentials(db: Db, id: string): Promise<boolean> {
  const [row] = await db.query<{ has: boolean }>(
    `SELECT (dropbox_access_token IS NOT NULL OR dropbox_refresh_token IS NOT NULL) AS has FROM customers WHERE id = $1`,
    [id],
  );
  return row?.has ?? false;
}

/**
 * Replaces a customer's Dropbox credentials. A new refresh token drops the cached access token,
 * so the next upload mints one from it. Both are sealed under `keyring`'s current key.
 * @returns false if the customer does not exist
 */
export async function storeCredentials(
  db: Db,
  keyring: Keyring,
  id: string,
  credentials: { refreshToken?: string | undefined; accessToken?: string | undefined },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE customers
        SET dropbox_refresh_token = coalesce($2, dropbox_refresh_token),
            dropbox_access_token = $3,
            dropbox_token_expires_at = NULL,
            throttled_until = NULL
      WHERE id = $1
     RETURNING id`,
    [
      id,
      sealToken(keyring, id, 'dropbox_refresh_token', credentials.refreshToken),
      sealToken(keyring, id, 'dropbox_access_token', credentials.accessToken),
    ],
  );
  return rows.length === 1;
}

/**
 * Keeps credentials an operator gave beside the stored ones, for the customer's workflow to check
 * with Dropbox and only then promote (db/tokens.ts). Replaces any earlier candidate. Sealed under
 * `keyring`'s current key.
 * @returns the candidate's id, or undefined if the customer does not exist
 */
export async function storeCandidateCredentials(
  db: Db,
  keyring: Keyring,
  id: string,
  credentials: { refreshToken?: string | undefined; accessToken?: string | undefined },
): Promise<string | undefined> {
  const [row] = await db.query<{ candidate_id: string }>(
    `UPDATE customers
        SET candidate_id = gen_random_uuid(), candidate_refresh_token = $2, candidate_access_token = $3
      WHERE id = $1
     RETURNING candidate_id`,
    [
      id,
      sealToken(keyring, id, 'candidate_refresh_token', credentials.refreshToken),
      sealToken(keyring, id, 'candidate_access_token', credentials.accessToken),
    ],
  );
  return row?.candidate_id;
}

/** Drops the candidate credentials `candidateId`, if they are still the customer's candidate. */
export async function clearCandidateCredentials(db: Db, id: string, candidateId: string): Promise<void> {
  await db.query(
    `UPDATE customers SET candidate_id = NULL, candidate_refresh_token = NULL, candidate_access_token = NULL
      WHERE id = $1 AND candidate_id = $2`,
    [id, candidateId],
  );
}

/** Marks a customer disconnected (its storage is gone), so `start --all` no longer starts it. */
export async function markDisconnected(db: Db, id: string): Promise<boolean> {
  const rows = await db.query(`UPDATE customers SET status = 'disconnected' WHERE id = $1 RETURNING id`, [id]);
  return rows.length === 1;
}

/** Keeps the customer's learned upload limit (uploads/s); a write only when it changed. */
export async function saveLimitEstimate(db: Db, id: string, perSecond: number): Promise<void> {
  await db.query(
    `UPDATE customers SET limit_estimate_per_second = $2, limit_estimate_at = now()
      WHERE id = $1 AND limit_estimate_per_second IS DISTINCT FROM $2`,
    [id, perSecond],
  );
}

/** The customer's last learned upload limit (uploads/s), if any. */
export async function limitEstimate(db: Db, id: string): Promise<number | undefined> {
  const [row] = await db.query<{ limit_estimate_per_second: number | null }>(
    'SELECT limit_estimate_per_second FROM customers WHERE id = $1',
    [id],
  );
  return row?.limit_estimate_per_second ?? undefined;
}
