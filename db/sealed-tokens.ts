// Customers' Dropbox tokens at rest: every token column holds sealed text (secrets/aead.ts) bound
// to its row and column, so a ciphertext copied to another customer or column fails to open. A
// value that is not sealed yet (written before migration 007) reads as it is until it is sealed.

import { openText, sealedKeyId, sealText } from '../secrets/aead.js';
import type { Keyring } from '../secrets/keyring.js';
import type { Db } from './pool.js';

/** The columns of `customers` that hold a Dropbox token. */
export const TOKEN_COLUMNS = [
  'dropbox_access_token',
  'dropbox_refresh_token',
  'candidate_access_token',
  'candidate_refresh_token',
] as const;
export type TokenColumn = (typeof TOKEN_COLUMNS)[number];

/** Sealed text starts so; anything else in a token column is a legacy plaintext token. */
const SEALED_PREFIX = 'v1:';

/** A stored token that cannot be opened; the message names the customer and column, never the token or a key. */
export class TokenUnreadable extends Error {
  override name = 'TokenUnreadable';
  constructor(
    readonly customerId: string,
    readonly column: TokenColumn,
    cause: Error,
  ) {
    super(`customer ${customerId}: the stored ${column} cannot be opened: ${cause.message}`, { cause });
  }
}

/** The AAD that binds a sealed token to its row and column. */
const contextOf = (customerId: string, column: TokenColumn): string => `customer:${customerId}:${column}`;

/** `token` sealed for `column` of customer `customerId`; null stays null. */
export function sealToken(keyring: Keyring, customerId: string, column: TokenColumn, token: string): string;
export function sealToken(
  keyring: Keyring,
  customerId: string,
  column: TokenColumn,
  token: string | null | undefined,
): string | null;
export function sealToken(
  keyring: Keyring,
  customerId: string,
  column: TokenColumn,
  token: string | null | undefined,
): string | null {
  return token == null ? null : sealText(keyring, 'tokens', token, contextOf(customerId, column));
}

/**
 * The token a column holds: opened if sealed, as it is if a legacy plaintext one.
 * @throws TokenUnreadable when sealed under a key the keyring lacks, a wrong key, or changed
 */
export function openToken(
  keyring: Keyring,
  customerId: string,
  column: TokenColumn,
  stored: string | null,
): string | null {
  if (stored === null || !stored.startsWith(SEALED_PREFIX)) return stored;
  try {
    return openText(keyring, 'tokens', stored, contextOf(customerId, column));
  } catch (err) {
    throw new TokenUnreadable(customerId, column, err as Error);
  }
}

type TokenColumnsRow = { id: string } & Record<TokenColumn, string | null>;

/** Rows with a token column not sealed yet, locked until `tx` ends; rows already sealed are not touched. */
async function lockUnsealedRows(tx: Db): Promise<TokenColumnsRow[]> {
  return tx.query<TokenColumnsRow>(
    `SELECT id, dropbox_access_token, dropbox_refresh_token, candidate_access_token, candidate_refresh_token
       FROM customers
      WHERE dropbox_access_token NOT LIKE 'v1:%' OR dropbox_refresh_token NOT LIKE 'v1:%'
         OR candidate_access_token NOT LIKE 'v1:%' OR candidate_refresh_token NOT LIKE 'v1:%'
      ORDER BY id
        FOR UPDATE`,
  );
}

/** One customer's token columns, locked until `tx` ends; undefined if the customer does not exist. */
async function lockTokenColumns(tx: Db, customerId: string): Promise<TokenColumnsRow | undefined> {
  const [row] = await tx.query<TokenColumnsRow>(
    `SELECT id, dropbox_access_token, dropbox_refresh_token, candidate_access_token, candidate_refresh_token
       FROM customers WHERE id = $1 FOR UPDATE`,
    [customerId],
  );
  return row;
}

/** Writes all four token columns of a row locked by `tx`. */
async function writeTokenColumns(tx: Db, row: TokenColumnsRow): Promise<void> {
  await tx.query(
    `UPDATE customers
        SET dropbox_access_token = $2, dropbox_refresh_token = $3,
            candidate_access_token = $4, candidate_refresh_token = $5
      WHERE id = $1`,
    [
      row.id,
      row.dropbox_access_token,
      row.dropbox_refresh_token,
      row.candidate_access_token,
      row.candidate_refresh_token,
    ],
  );
}

/**
 * Seals every legacy plaintext token under the keyring's current key, in one transaction that
 * locks only the rows that have one; the worker runs it at start-up, after the migrations.
 * @returns how many customers had a token sealed now
 */
export function sealPlaintextTokens(db: Db, keyring: Keyring): Promise<number> {
  return db.transaction(async (tx) => {
    const rows = await lockUnsealedRows(tx);
    for (const row of rows) {
      const sealed = { ...row };
      for (const column of TOKEN_COLUMNS) {
        const value = row[column];
        if (value !== null && !value.startsWith(SEALED_PREFIX))
          sealed[column] = sealToken(keyring, row.id, column, value);
      }
      await writeTokenColumns(tx, sealed);
    }
    return rows.length;
  });
}

/**
 * What re-sealing one customer did: `rotated` (a token was under an older key), `sealed` (a
 * plaintext token, none under an older key), `current` (nothing to do), `failed` (a token cannot
 * be opened; the row is left as it was), `missing` (no such customer).
 */
export type ResealOutcome =
  { outcome: 'rotated' | 'sealed' | 'current' | 'missing' } | { outcome: 'failed'; errors: TokenUnreadable[] };

/**
 * Opens every token of customer `customerId` and seals it again under the keyring's current key,
 * with the row locked, so a token refresh in a worker waits for it. Tokens already under the
 * current key are opened too, so a wrong or changed one is reported.
 */
export function resealCustomerTokens(db: Db, keyring: Keyring, customerId: string): Promise<ResealOutcome> {
  return db.transaction(async (tx): Promise<ResealOutcome> => {
    const row = await lockTokenColumns(tx, customerId);
    if (!row) return { outcome: 'missing' };
    const errors: TokenUnreadable[] = [];
    const resealed = { ...row };
    let older = false;
    let plaintext = false;
    for (const column of TOKEN_COLUMNS) {
      const stored = row[column];
      if (stored === null) continue;
      const keyId = stored.startsWith(SEALED_PREFIX) ? sealedKeyId(stored) : undefined;
      try {
        const token = openToken(keyring, customerId, column, stored);
        if (!stored.startsWith(SEALED_PREFIX)) plaintext = true;
        else if (keyId !== keyring.current.id) older = true;
        else continue;
        resealed[column] = sealToken(keyring, customerId, column, token);
      } catch (err) {
        if (!(err instanceof TokenUnreadable)) throw err;
        errors.push(err);
      }
    }
    if (errors.length > 0) return { outcome: 'failed', errors };
    if (!older && !plaintext) return { outcome: 'current' };
    await writeTokenColumns(tx, resealed);
    return { outcome: older ? 'rotated' : 'sealed' };
  });
}

/** Up to `limit` customer ids after `after` (all customers, any status), in id order, for a walk over every row. */
export async function customerIdsAfter(db: Db, after: string | null, limit: number): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM customers WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
    [after, limit],
  );
  return rows.map((r) => r.id);
}

/** How many customers there are, for progress. */
export async function customerCount(db: Db): Promise<number> {
  const [row] = await db.query<{ n: number }>(`SELECT count(*)::integer AS n FROM customers`);
  return row?.n ?? 0;
}
