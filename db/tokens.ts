// The SQL of customers' Dropbox tokens, which only the Dropbox adapter (activities/dropbox/tokens.ts) reads.

import type { Db } from './pool.js';

/** A customer's Dropbox credentials as stored. Never return these to Temporal. */
export interface StoredTokens {
  accessToken: string | null;
  refreshToken: string | null;
  /** When the access token expires; null when Dropbox did not say. */
  expiresAt: Date | null;
}

type TokenRow = {
  dropbox_access_token: string | null;
  dropbox_refresh_token: string | null;
  dropbox_token_expires_at: Date | null;
};
const toTokens = (r: TokenRow): StoredTokens => ({
  accessToken: r.dropbox_access_token,
  refreshToken: r.dropbox_refresh_token,
  expiresAt: r.dropbox_token_expires_at,
});

/** The customer's tokens; undefined if the customer does not exist. */
export async function loadTokens(db: Db, customerId: string): Promise<StoredTokens | undefined> {
  const [row] = await db.query<TokenRow>(
    `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at FROM customers WHERE id = $1`,
    [customerId],
  );
  return row ? toTokens(row) : undefined;
}

/**
 * The customer's tokens, locking its row until `tx` ends, so concurrent refreshes in other workers
 * wait for this one and reuse its token.
 */
export async function lockTokens(tx: Db, customerId: string): Promise<StoredTokens | undefined> {
  const [row] = await tx.query<TokenRow>(
    `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at FROM customers WHERE id = $1 FOR UPDATE`,
    [customerId],
  );
  return row ? toTokens(row) : undefined;
}

/** Stores a freshly minted access token and when it expires. */
export async function storeAccessToken(
  db: Db,
  customerId: string,
  accessToken: string,
  expiresInS: number,
): Promise<void> {
  await db.query(
    `UPDATE customers SET dropbox_access_token = $2, dropbox_token_expires_at = now() + $3 * interval '1 second' WHERE id = $1`,
    [customerId, accessToken, expiresInS],
  );
}
