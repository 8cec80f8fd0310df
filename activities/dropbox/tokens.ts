import { FailureType } from '../../workflows/failures.js';
import type { Db } from '../../db/pool.js';
import { DropboxFailure } from './errors.js';

/** The Dropbox app Archiver is registered as; its secret refreshes customers' tokens. */
export interface DropboxApp {
  key: string;
  secret: string;
}

export interface CustomerTokensDeps {
  db: Db;
  app?: DropboxApp | undefined;
  /** Where Dropbox lives; unset means the real Dropbox. */
  apiBase?: string | undefined;
  fetchImpl?: typeof fetch;
}

/** Refresh a token this long before Dropbox says it expires, so no request races the expiry. */
const EXPIRY_MARGIN_MS = 5 * 60_000;
const DROPBOX_API = 'https://api.dropboxapi.com';

interface TokenRow {
  dropbox_access_token: string | null;
  dropbox_refresh_token: string | null;
  dropbox_token_expires_at: Date | null;
}

function usable(row: TokenRow, now = Date.now()): row is TokenRow & { dropbox_access_token: string } {
  return row.dropbox_access_token !== null
    && (row.dropbox_token_expires_at === null || row.dropbox_token_expires_at.getTime() - now > EXPIRY_MARGIN_MS);
}

/**
 * Customers' Dropbox access tokens, refreshed from their refresh tokens. At most one refresh per
 * customer is in flight in this process, and a row lock makes other workers wait for it and reuse
 * its token instead of asking Dropbox again. The SDK would otherwise refresh once per concurrent
 * call. Tokens live only in Postgres and in memory here; they never reach Temporal.
 */
export class CustomerTokens {
  private readonly refreshing = new Map<string, Promise<string>>();
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly deps: CustomerTokensDeps) {
    this.fetchImpl = deps.fetchImpl ?? fetch;
  }

  /** A token that is valid now, refreshing it first if it is missing or about to expire. */
  async accessToken(customerId: string): Promise<string> {
    const [row] = await this.deps.db.query<TokenRow>(
      `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at FROM customers WHERE id = $1`, [customerId]);
    if (!row) throw new DropboxFailure({ type: FailureType.AuthRevoked, message: `customer ${customerId} does not exist` });
    if (usable(row)) return row.dropbox_access_token;
    // A token without a refresh token and without a known expiry is the best we have.
    if (row.dropbox_refresh_token === null && row.dropbox_access_token !== null) return row.dropbox_access_token;
    return this.refresh(customerId, row.dropbox_access_token);
  }

  /**
   * A fresh token after Dropbox rejected `rejected` as expired. Concurrent callers for the same
   * customer share one refresh.
   */
  refresh(customerId: string, rejected: string | null): Promise<string> {
    const pending = this.refreshing.get(customerId);
    if (pending) return pending;
    const refresh = this.refreshLocked(customerId, rejected).finally(() => this.refreshing.delete(customerId));
    this.refreshing.set(customerId, refresh);
    return refresh;
  }

  private refreshLocked(customerId: string, rejected: string | null): Promise<string> {
    return this.deps.db.transaction(async (tx) => {
      const [row] = await tx.query<TokenRow>(
        `SELECT dropbox_access_token, dropbox_refresh_token, dropbox_token_expires_at FROM customers WHERE id = $1 FOR UPDATE`, [customerId]);
      if (!row) throw new DropboxFailure({ type: FailureType.AuthRevoked, message: `customer ${customerId} does not exist` });
      // Another worker refreshed while we waited for the lock.
      if (usable(row) && row.dropbox_access_token !== rejected) return row.dropbox_access_token;
      if (row.dropbox_refresh_token === null) {
        throw new DropboxFailure({ type: FailureType.AuthRevoked, message: `customer ${customerId} has no Dropbox refresh token; reconnect it with: archiver reconnect ${customerId} --refresh-token …` });
      }
      const { accessToken, expiresInS } = await this.requestToken(row.dropbox_refresh_token);
      await tx.query(
        `UPDATE customers SET dropbox_access_token = $2, dropbox_token_expires_at = now() + $3 * interval '1 second' WHERE id = $1`,
        [customerId, accessToken, expiresInS]);
      return accessToken;
    });
  }

  /** POST /oauth2/token with the secret in a Basic header and the refresh token in the body, never in the URL. */
  private async requestToken(refreshToken: string): Promise<{ accessToken: string; expiresInS: number }> {
    const app = this.deps.app;
    if (!app) throw new DropboxFailure({ type: FailureType.AuthRevoked, message: 'cannot refresh Dropbox tokens: DROPBOX_APP_KEY and DROPBOX_APP_SECRET are not set' });
    let response: Response;
    try {
      response = await this.fetchImpl(`${(this.deps.apiBase ?? DROPBOX_API).replace(/\/+$/, '')}/oauth2/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${app.key}:${app.secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new DropboxFailure({ type: FailureType.Transient, message: `token refresh failed: ${(err as Error).name}: ${(err as Error).message}` });
    }
    const text = await response.text();
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Dropbox sometimes answers in plain text; the status decides below.
    }
    if (response.ok && typeof body.access_token === 'string') {
      return { accessToken: body.access_token, expiresInS: typeof body.expires_in === 'number' ? body.expires_in : 14_400 };
    }
    const reason = typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
    if (response.status === 429) {
      const retryAfterS = Number(response.headers.get('retry-after'));
      return Promise.reject(new DropboxFailure({ type: FailureType.RateLimited, message: 'token refresh was rate limited', retryAfterMs: (retryAfterS > 0 ? retryAfterS : 5) * 1000 }));
    }
    if (response.status >= 500) throw new DropboxFailure({ type: FailureType.Transient, message: `token refresh failed: Dropbox answered ${response.status}` });
    // invalid_grant: the refresh token is revoked; invalid_client: the app's key or secret is wrong.
    throw new DropboxFailure({ type: FailureType.AuthRevoked, message: `Dropbox refused to refresh the token (${reason})` });
  }
}
