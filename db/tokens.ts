// The SQL of customers' Dropbox tokens, which only the Dropbox adapter (activities/dropbox/tokens.ts)
// reads. Tokens are sealed on every write and opened on every read (db/sealed-tokens.ts).

import type { Keyring } from '../secrets/keyring.js';
import type { Db } from './pool.js';
import { openToken, sealToken } from './sealed-tokens.js';

/** A customer's Dropbox credentials as stored. Never return these to Temporal. */
export interface StoredTokens {
  accessToken: string | null;
  refreshToken: string | null;
  /** When the access token expires; null when Dropbox did not say. */
  expiresAt: Date | null;
}

/** The token columns of a customer's row, still sealed: what a query joining customers may carry along. */
export type SealedTokens = {
  dropbox_access_token: string | null;
  dropbox_refresh_token: string | null;
  dropbox_token_expires_at: Date | null;
};
type TokenRow = SealedTokens;

/**
 * Opens the sealed token columns of a customer's row.
 * @throws TokenUnreadable when a stored token cannot be opened with `keyring`
 */
export const openTokens = (keyring: Keyring, customerId: string, r: SealedTokens): StoredTokens => ({
  accessToken: openToken(keyring, customerId, 'dropbox_access_token', r.dropbox_access_token),
  refreshToken: openToken(keyring, customerId, 'dropbox_refresh_token', r.dropbox_refresh_token),
  expiresAt: r.dropbox_token_expires_at,
});

/**
 * The customer's tokens; undefined if the customer does not exist.
 * @throws TokenUnreadable when a stored token cannot be opened with `keyring`
 */
export async function loadTokens(db: Db, keyring: Keyring, customerId: string): Promise<StoredTokens | undefined> {
  const [row] = await db.query<TokenRow>(
    `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at FROM customers WHERE id = $1`,
    [customerId],
  );
  return row ? openTokens(keyring, customerId, row) : undefined;
}

/**
 * The customer's tokens, locking its row until `tx` ends, so concurrent refreshes in other workers
 * wait for this one and reuse its token.
 * @throws TokenUnreadable when a stored token cannot be opened with `keyring`
 */
export async function lockTokens(tx: Db, keyring: Keyring, customerId: string): Promise<StoredTokens | undefined> {
  const [row] = await tx.query<TokenRow>(
    `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at FROM customers WHERE id = $1 FOR UPDATE`,
    [customerId],
  );
  return row ? openTokens(keyring, customerId, row) : undefined;
}

/** Stores a freshly minted access token, sealed, and when it expires. */
export async function storeAccessToken(
  db: Db,
  keyring: Keyring,
  customerId: string,
  accessToken: string,
  expiresInS: number,
): Promise<void> {
  await db.query(
    `UPDATE customers SET dropbox_access_token = $2, dropbox_token_expires_at = now() + $3 * interval '1 second' WHERE id = $1`,
    [customerId, sealToken(keyring, customerId, 'dropbox_access_token', accessToken), expiresInS],
  );
}

/** Credentials an operator gave with `archiver reconnect`, not yet checked with Dropbox. */
export interface CandidateTokens {
  accessToken: string | null;
  refreshToken: string | null;
}

/**
 * The customer's candidate credentials `candidateId`; undefined if another reconnect replaced them, or none.
 * @throws TokenUnreadable when a candidate token cannot be opened with `keyring`
 */
export async function loadCandidate(
  db: Db,
  keyring: Keyring,
  customerId: string,
  candidateId: string,
): Promise<CandidateTokens | undefined> {
  const [row] = await db.query<{ candidate_access_token: string | null; candidate_refresh_token: string | null }>(
    `SELECT candidate_access_token, candidate_refresh_token FROM customers WHERE id = $1 AND candidate_id = $2`,
    [customerId, candidateId],
  );
  if (!row) return undefined;
  return {
    accessToken: openToken(keyring, customerId, 'candidate_access_token', row.candidate_access_token),
    refreshToken: openToken(keyring, customerId, 'candidate_refresh_token', row.candidate_refresh_token),
  };
}

/**
 * Makes the checked candidate `candidateId` the customer's credentials, in one statement: its
 * refresh token `refreshToken` (as loadCandidate opened it, if it has one) and `access`, the access
 * token that was checked, both sealed again for the stored columns (a sealed token is bound to its
 * column). A candidate without a refresh token keeps the stored one, as a plain access-token
 * reconnect always has.
 * @returns false if the candidate is no longer the customer's (another reconnect replaced it)
 */
export async function promoteCandidate(
  db: Db,
  keyring: Keyring,
  customerId: string,
  candidateId: string,
  refreshToken: string | null,
  access: { accessToken: string; expiresInS: number | null },
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE customers
        SET dropbox_refresh_token = coalesce($5, dropbox_refresh_token),
            dropbox_access_token = $3,
            dropbox_token_expires_at = now() + $4::integer * interval '1 second',
            throttled_until = NULL,
            candidate_id = NULL, candidate_access_token = NULL, candidate_refresh_token = NULL
      WHERE id = $1 AND candidate_id = $2
     RETURNING id`,
    [
      customerId,
      candidateId,
      sealToken(keyring, customerId, 'dropbox_access_token', access.accessToken),
      access.expiresInS,
      sealToken(keyring, customerId, 'dropbox_refresh_token', refreshToken),
    ],
  );
  return rows.length === 1;
}
