import type { Db } from '../../db/pool.js';
import { clearCandidateCredentials } from '../../db/customers.js';
import { PostgresError } from '../../db/errors.js';
import { loadCandidate, promoteCandidate } from '../../db/tokens.js';
import type { Keyring } from '../../secrets/keyring.js';
import { FailureType, NON_RETRYABLE_FAILURES } from '../../workflows/failures.js';
import type { ClassifiedFailure } from '../failure.js';
import { createDropboxClient, type DropboxTimeouts } from './client.js';
import { classifyDropboxError, DropboxFailure } from './errors.js';
import { readingTokens, type CustomerTokens } from './tokens.js';

export interface CandidateCheckDeps {
  db: Db;
  keyring: Keyring;
  tokens: CustomerTokens;
  apiBase: string | undefined;
  timeouts: DropboxTimeouts;
}

const revoked = (message: string): DropboxFailure => new DropboxFailure({ type: FailureType.AuthRevoked, message });

/**
 * Checks the credentials an operator gave with `archiver reconnect` (candidate `candidateId`)
 * with Dropbox, and only once they work makes them the customer's credentials. A refresh token is
 * proved by minting an access token from it, an access token by asking Dropbox whose account it
 * is. Credentials Dropbox refuses are dropped, and the stored ones stay as they were.
 * @throws ClassifiedFailure as a DropboxFailure: AuthRevoked when Dropbox refuses them
 */
export async function promoteIfAccepted(
  deps: CandidateCheckDeps,
  customerId: string,
  candidateId: string,
): Promise<{ accountId: string }> {
  try {
    const candidate = await readingTokens(loadCandidate(deps.db, deps.keyring, customerId, candidateId));
    if (!candidate) throw revoked('the credentials to check are gone (another reconnect replaced them)');
    const accountOf = async (accessToken: string): Promise<string> =>
      (
        await createDropboxClient({
          accessToken,
          apiBase: deps.apiBase,
          timeouts: deps.timeouts,
        }).usersGetCurrentAccount()
      ).result.account_id;
    const access =
      candidate.refreshToken !== null
        ? await deps.tokens.mint(candidate.refreshToken)
        : { accessToken: candidate.accessToken as string, expiresInS: null };
    const accountId = await accountOf(access.accessToken);
    if (candidate.accessToken !== null && candidate.accessToken !== access.accessToken) {
      if ((await accountOf(candidate.accessToken)) !== accountId)
        throw revoked('the access token and the refresh token belong to different Dropbox accounts');
    }
    if (!(await promoteCandidate(deps.db, deps.keyring, customerId, candidateId, candidate.refreshToken, access)))
      throw revoked('the credentials to check are gone (another reconnect replaced them)');
    return { accountId };
  } catch (err) {
    // Postgres failing is not Dropbox's answer: the activity retries it, and the candidate stays.
    if (err instanceof PostgresError) throw err;
    let failure: ClassifiedFailure = classifyDropboxError(err);
    // An operator's access token that has expired is as useless as a revoked one: nothing to refresh.
    if (failure.type === FailureType.AuthExpired)
      failure = { type: FailureType.AuthRevoked, message: `the access token has expired (${failure.message})` };
    // Retryable failures keep the candidate for the activity's next attempt; the CLI drops it if all fail.
    if (NON_RETRYABLE_FAILURES.includes(failure.type))
      await clearCandidateCredentials(deps.db, customerId, candidateId);
    throw new DropboxFailure(failure, { cause: err });
  }
}
