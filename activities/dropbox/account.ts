import type { Dropbox } from 'dropbox';
import { FailureType } from '../../workflows/failures.js';
import { createDropboxClient, DEFAULT_DROPBOX_TIMEOUTS, pathRootOf, type DropboxTimeouts } from './client.js';
import { classifyDropboxError, DropboxFailure } from './errors.js';
import type { CustomerTokens } from './tokens.js';

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
  private readonly pathRoots = new Map<string, { accessToken: string; pathRoot: Promise<string | undefined> }>();

  constructor(
    private readonly tokens: CustomerTokens,
    private readonly apiBase: string | undefined,
    private readonly timeouts: DropboxTimeouts = DEFAULT_DROPBOX_TIMEOUTS,
  ) {}

  private async client(customerId: string, accessToken: string): Promise<Dropbox> {
    const options = { accessToken, apiBase: this.apiBase, timeouts: this.timeouts };
    let known = this.pathRoots.get(customerId);
    if (known?.accessToken !== accessToken) {
      const pathRoot = pathRootOf(createDropboxClient(options));
      known = { accessToken, pathRoot };
      this.pathRoots.set(customerId, known);
      // A failed lookup is not kept: the next call asks again.
      const entry = known;
      pathRoot.catch(() => {
        if (this.pathRoots.get(customerId) === entry) this.pathRoots.delete(customerId);
      });
    }
    return createDropboxClient({ ...options, pathRoot: await known.pathRoot });
  }

  async call<T>(customerId: string, request: (dropbox: Dropbox) => Promise<T>): Promise<T> {
    const token = await this.tokens.accessToken(customerId);
    try {
      return await request(await this.client(customerId, token));
    } catch (err) {
      const failure = classifyDropboxError(err);
      if (failure.type !== FailureType.AuthExpired) throw new DropboxFailure(failure, { cause: err });
    }
    const fresh = await this.tokens.refresh(customerId, token);
    try {
      return await request(await this.client(customerId, fresh));
    } catch (err) {
      throw new DropboxFailure(classifyDropboxError(err), { cause: err });
    }
  }
}
