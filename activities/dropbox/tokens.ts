import { FailureType } from '../../workflows/failures.js';
import type { Db } from '../../db/pool.js';
import { TokenUnreadable } from '../../db/sealed-tokens.js';
import {
  loadTokens,
  lockTokens,
  openTokens,
  storeAccessToken,
  type SealedTokens,
  type StoredTokens,
} from '../../db/tokens.js';
import type { Keyring } from '../../secrets/keyring.js';
import { DropboxFailure } from './errors.js';

/** The Dropbox app Archiver is registered as; its secret refreshes customers' tokens. */
export interface DropboxApp {
  key: string;
  secret: string;
}

export interface CustomerTokensDeps {
  db: Db;
  keyring: Keyring;
  app?: DropboxApp | undefined;
  /** Where Dropbox lives; unset means the real Dropbox. */
  apiBase?: string | undefined;
  fetchImpl?: typeof fetch;
}

/** Refresh a token this long before Dropbox says it expires, so no request races the expiry. */
const EXPIRY_MARGIN_MS = 5 * 60_000;
const DROPBOX_API = 'https://api.dropboxapi.com';

function usable(tokens: StoredTokens, now = Date.now()): tokens is StoredTokens & { accessToken: string } {
  return (
    tokens.accessToken !== null && (tokens.expiresAt === null || tokens.expiresAt.getTime() - now > EXPIRY_MARGIN_MS)
  );
}

/**
 * A stored token the keyring cannot open is as unusable as a revoked one: the customer pauses as
 * needs-reauth with the reason (which names the key id, never a token), until an operator adds
 * the key to ARCHIVER_SECRET_KEYS and resumes it, or reconnects it.
 */
export async function readingTokens<T>(read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (err) {
    if (!(err instanceof TokenUnreadable)) throw err;
    throw new DropboxFailure(
      { type: FailureType.AuthRevoked, message: `${err.message}; add that key or reconnect the customer` },
      { cause: err },
    );
  }
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

  /**
   * A token that is valid now, refreshing it first if it is missing or about to expire. `sealed`:
   * the customer's token columns as a query just read them, which spares reading them again.
   */
  async accessToken(customerId: string, sealed?: SealedTokens): Promise<string> {
    const tokens = await readingTokens(
      sealed
        ? Promise.resolve().then(() => openTokens(this.deps.keyring, customerId, sealed))
        : loadTokens(this.deps.db, this.deps.keyring, customerId),
    );
    if (!tokens)
      throw new DropboxFailure({ type: FailureType.AuthRevoked, message: `customer ${customerId} does not exist` });
    if (usable(tokens)) return tokens.accessToken;
    // A token without a refresh token and without a known expiry is the best we have.
    if (tokens.refreshToken === null && tokens.accessToken !== null) return tokens.accessToken;
    return this.refresh(customerId, tokens.accessToken);
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
      const tokens = await readingTokens(lockTokens(tx, this.deps.keyring, customerId));
      if (!tokens)
        throw new DropboxFailure({ type: FailureType.AuthRevoked, message: `customer ${customerId} does not exist` });
      // Another worker refreshed while we waited for the lock.
      if (usable(tokens) && tokens.accessToken !== rejected) return tokens.accessToken;
      if (tokens.refreshToken === null) {
        throw new DropboxFailure({
          type: FailureType.AuthRevoked,
          message: `customer ${customerId} has no Dropbox refresh token; reconnect it with: archiver reconnect ${customerId} --refresh-token …`,
        });
      }
      const { accessToken, expiresInS } = await this.mint(tokens.refreshToken);
      await storeAccessToken(tx, this.deps.keyring, customerId, accessToken, expiresInS);
      return accessToken;
    });
  }

  /**
   * A new access token from `refreshToken`, which also proves the refresh token works: POST
   * /oauth2/token with the secret in a Basic header and the refresh token in the body, never in the URL.
   */
  async mint(refreshToken: string): Promise<{ accessToken: string; expiresInS: number }> {
    const app = this.deps.app;
    if (!app)
      throw new DropboxFailure({
        type: FailureType.AuthRevoked,
        message: 'cannot refresh Dropbox tokens: DROPBOX_APP_KEY and DROPBOX_APP_SECRET are not set',
      });
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
      throw new DropboxFailure({
        type: FailureType.Transient,
        message: `token refresh failed: ${(err as Error).name}: ${(err as Error).message}`,
      });
    }
    const text = await response.text();
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Dropbox sometimes answers in plain text; the status decides below.
    }
    if (response.ok && typeof body.access_token === 'string') {
      return {
        accessToken: body.access_token,
        expiresInS: typeof body.expires_in === 'number' ? body.expires_in : 14_400,
      };
    }
    const reason = typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
    if (response.status === 429) {
      const retryAfterS = Number(response.headers.get('retry-after'));
      return Promise.reject(
        new DropboxFailure({
          type: FailureType.RateLimited,
          message: 'token refresh was rate limited',
          retryAfterMs: (retryAfterS > 0 ? retryAfterS : 5) * 1000,
        }),
      );
    }
    if (response.status >= 500)
      throw new DropboxFailure({
        type: FailureType.Transient,
        message: `token refresh failed: Dropbox answered ${response.status}`,
      });
    // invalid_grant: the refresh token is revoked; invalid_client: the app's key or secret is wrong.
    throw new DropboxFailure({
      type: FailureType.AuthRevoked,
      message: `Dropbox refused to refresh the token (${reason})`,
    });
  }
}
