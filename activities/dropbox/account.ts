import type { Dropbox } from 'dropbox';
import { FailureType } from '../../workflows/failures.js';
import { createDropboxClient, DEFAULT_DROPBOX_TIMEOUTS, pathRootOf, type DropboxTimeouts } from './client.js';
import { classifyDropboxError, DropboxFailure, isPathRootRefusal } from './errors.js';
import type { SealedTokens } from '../../db/tokens.js';
import type { CustomerTokens } from './tokens.js';

/** A customer's path root as learned with one access token (undefined: the home namespace). */
interface PathRootEntry {
  accessToken: string;
  pathRoot: Promise<string | undefined>;
}

/**
 * Calls Dropbox as a customer. An `expired_access_token` answer refreshes the token (once per
 * customer, however many calls hit it together) and retries the call once. Every failure leaves
 * as a DropboxFailure typed by the taxonomy. A customer whose Dropbox is a team space has its
 * requests addressed to the team space's root (`Dropbox-API-Path-Root`).
 */
export class DropboxAccounts {
  /**
   * Each customer's path root, learned with one `users/get_current_account` per access token and
   * kept in this process: a new token (a refresh, a reconnect, maybe to another account) learns it again.
   */
  private readonly pathRoots = new Map<string, PathRootEntry>();

  constructor(
    private readonly tokens: CustomerTokens,
    private readonly apiBase: string | undefined,
    private readonly timeouts: DropboxTimeouts = DEFAULT_DROPBOX_TIMEOUTS,
  ) {}

  /** The customer's path root for this token, looked up once however many calls ask together. */
  private pathRootEntry(customerId: string, accessToken: string): PathRootEntry {
    const known = this.pathRoots.get(customerId);
    if (known?.accessToken === accessToken) return known;
    const pathRoot = pathRootOf(createDropboxClient({ accessToken, apiBase: this.apiBase, timeouts: this.timeouts }));
    const entry = { accessToken, pathRoot };
    this.pathRoots.set(customerId, entry);
    // A failed lookup is not kept: the next call asks again.
    pathRoot.catch(() => this.forget(customerId, entry));
    return entry;
  }

  /** Drops `entry` unless a newer lookup replaced it already (calls that failed together forget once). */
  private forget(customerId: string, entry: PathRootEntry): void {
    if (this.pathRoots.get(customerId) === entry) this.pathRoots.delete(customerId);
  }

  /**
   * Runs `request` with the customer's client. An expired token is refreshed, and a path root
   * Dropbox refuses (the account's root changed) is learned again, each followed by one retry.
   * `sealed`: the customer's token columns, if the caller just read them (see CustomerTokens.accessToken).
   */
  async call<T>(customerId: string, request: (dropbox: Dropbox) => Promise<T>, sealed?: SealedTokens): Promise<T> {
    let token = await this.tokens.accessToken(customerId, sealed);
    for (let attempt = 1; ; attempt++) {
      const entry = this.pathRootEntry(customerId, token);
      try {
        const pathRoot = await entry.pathRoot;
        return await request(
          createDropboxClient({ accessToken: token, apiBase: this.apiBase, timeouts: this.timeouts, pathRoot }),
        );
      } catch (err) {
        const failure = classifyDropboxError(err);
        if (attempt > 1) throw new DropboxFailure(failure, { cause: err });
        if (failure.type === FailureType.AuthExpired) token = await this.tokens.refresh(customerId, token);
        else if (isPathRootRefusal(err)) this.forget(customerId, entry);
        else throw new DropboxFailure(failure, { cause: err });
      }
    }
  }
}
