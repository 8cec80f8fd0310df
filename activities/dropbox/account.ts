import type { Dropbox } from 'dropbox';
import { FailureType } from '../../workflows/failures.js';
import { createDropboxClient, DEFAULT_DROPBOX_TIMEOUTS, type DropboxTimeouts } from './client.js';
import { classifyDropboxError, DropboxFailure } from './errors.js';
import type { CustomerTokens } from './tokens.js';

/**
 * Calls Dropbox as a customer. An `expired_access_token` answer refreshes the token (once per
 * customer, however many calls hit it together) and retries the call once. Every failure leaves
 * as a DropboxFailure typed by the taxonomy.
 */
export class DropboxAccounts {
  constructor(
    private readonly tokens: CustomerTokens,
    private readonly apiBase: string | undefined,
    private readonly timeouts: DropboxTimeouts = DEFAULT_DROPBOX_TIMEOUTS,
  ) {}

  private client(accessToken: string): Dropbox {
    return createDropboxClient({ accessToken, apiBase: this.apiBase, timeouts: this.timeouts });
  }

  async call<T>(customerId: string, request: (dropbox: Dropbox) => Promise<T>): Promise<T> {
    const token = await this.tokens.accessToken(customerId);
    try {
      return await request(this.client(token));
    } catch (err) {
      const failure = classifyDropboxError(err);
      if (failure.type !== FailureType.AuthExpired) throw new DropboxFailure(failure, { cause: err });
    }
    const fresh = await this.tokens.refresh(customerId, token);
    try {
      return await request(this.client(fresh));
    } catch (err) {
      throw new DropboxFailure(classifyDropboxError(err), { cause: err });
    }
  }
}
