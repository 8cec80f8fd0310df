// `archiver connect <customer-id>`: the OAuth 2 code flow with PKCE that links a customer's
// Dropbox to Archiver's app, then stores the refresh token the way `archiver reconnect` does.

import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { Dropbox, DropboxAuth, DropboxResponseError } from 'dropbox';
import {
  clearCandidateCredentials,
  getCustomer,
  storeCandidateCredentials,
  storeCredentials,
} from '../db/customers.js';
import type { Db } from '../db/pool.js';
import type { Keyring } from '../secrets/keyring.js';
import { CustomerRefused, isRunning, OperatorError, reconnectCustomer } from './archiver-client.js';
import { readPastedCode, RedirectListener, type RedirectedCode } from './oauth-code.js';

/** What Archiver asks of a customer's Dropbox: write and read its files, and name the account. */
export const DROPBOX_SCOPES = ['files.content.write', 'files.content.read', 'files.metadata.read', 'account_info.read'];

const DROPBOX_HOSTS = /^https:\/\/(api|content|notify)\.dropboxapi\.com/;
const DROPBOX_AUTHORIZE = 'https://www.dropbox.com/oauth2/authorize';

export interface ConnectDeps {
  db: Db;
  /** Seals the refresh token before it is stored. */
  keyring: Keyring;
  temporal: Client;
  /** Archiver's Dropbox app (DROPBOX_APP_KEY, DROPBOX_APP_SECRET). */
  app: { key: string; secret: string } | undefined;
  /** Where Dropbox lives (DROPBOX_API_BASE: the emulator); unset means the real Dropbox. */
  apiBase: string | undefined;
  /** Deadline of each request to Dropbox. */
  requestTimeoutMs: number;
  /** Where the pasted code comes from. */
  input: NodeJS.ReadableStream;
  /** Prints a line for the person at the terminal. */
  say(line: string): void;
}

export interface ConnectOptions {
  /** Listen on 127.0.0.1:<port> for Dropbox's redirect; unset: the person pastes the code. */
  redirectPort?: number | undefined;
  /** How long the person has to click Allow (and paste the code). */
  timeoutMs: number;
}

export interface ConnectResult {
  accountId: string;
  email: string;
  displayName: string;
  /** The customer's state after its workflow checked the token; undefined when no workflow runs. */
  state: string | undefined;
}

/** A `fetch` that sends the SDK's hard-coded Dropbox hosts to `apiBase`, each request with a deadline. */
function dropboxFetch(apiBase: string | undefined, timeoutMs: number): typeof fetch {
  const base = apiBase?.replace(/\/+$/, '');
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    return fetch(base ? url.replace(DROPBOX_HOSTS, base) : url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  };
}

/** The SDK's authorize URL (on dropbox.com, its query unencoded), on www.dropbox.com or `apiBase`. */
function authorizeUrl(sdkUrl: string, apiBase: string | undefined): string {
  const query = new URL(sdkUrl).searchParams;
  return `${apiBase ? `${apiBase.replace(/\/+$/, '')}/oauth2/authorize` : DROPBOX_AUTHORIZE}?${query.toString()}`;
}

/** Dropbox's answer to the code exchange or the check, as the person should read it: never with a token. */
function exchangeFailure(err: unknown, where: string): Error {
  if (err instanceof DropboxResponseError) {
    const body = err.error as { error?: unknown; error_description?: unknown; error_summary?: unknown } | string;
    // OAuth answers carry error + error_description; API answers error_summary + a tagged error.
    const tag = typeof body === 'object' && typeof body?.error === 'string' ? body.error : undefined;
    const description =
      typeof body !== 'object' || body === null
        ? String(body)
        : tag !== undefined
          ? String(body.error_description)
          : String(body.error_summary);
    if (tag === 'invalid_grant')
      return new CustomerRefused(
        `Dropbox refused the code (${description}): it is wrong, was already used, or has expired; run archiver connect again`,
      );
    if (tag === 'invalid_client' || tag === 'invalid request')
      return new OperatorError(`Dropbox refused Archiver's app (${tag}: ${description}); check DROPBOX_APP_KEY`);
    return new CustomerRefused(`${where} failed: Dropbox answered HTTP ${err.status}: ${description}`);
  }
  const e = err as Error;
  const cause = (e.cause as Error | undefined)?.message;
  return new Error(
    `${where} failed: ${e.name === 'TimeoutError' ? 'Dropbox did not answer in time' : e.message}${cause ? ` (${cause})` : ''}`,
  );
}

/**
 * Stores a checked refresh token. A running workflow checks it again and promotes it through
 * the reconnect update, so a customer paused as needs-reauth resumes; without one it is stored
 * directly, since Dropbox has just answered for it.
 */
async function storeRefreshToken(
  deps: ConnectDeps,
  customerId: string,
  refreshToken: string,
): Promise<string | undefined> {
  if (!(await isRunning(deps.temporal, customerId))) {
    if (!(await storeCredentials(deps.db, deps.keyring, customerId, { refreshToken })))
      throw new OperatorError(`unknown customer "${customerId}"`);
    return undefined;
  }
  const candidateId = await storeCandidateCredentials(deps.db, deps.keyring, customerId, { refreshToken });
  if (candidateId === undefined) throw new OperatorError(`unknown customer "${customerId}"`);
  try {
    return (await reconnectCustomer(deps.temporal, customerId, candidateId)).state;
  } catch (err) {
    await clearCandidateCredentials(deps.db, customerId, candidateId);
    if (err instanceof OperatorError) throw err;
    const cause = (err as { cause?: { cause?: Error; message?: string } }).cause;
    throw new CustomerRefused(
      `the customer's workflow refused the new Dropbox credentials for ${customerId}, so the stored ones are unchanged: ${cause?.cause?.message ?? cause?.message ?? (err as Error).message}`,
    );
  }
}

/**
 * Links `customerId` to a Dropbox account: prints the authorize URL, takes the code (pasted, or
 * from the redirect), exchanges it with the PKCE verifier, checks the token with
 * users/get_current_account, and stores the refresh token. Tokens are never printed.
 * @throws OperatorError for a usage or configuration problem, CustomerRefused when Dropbox or
 * the person refuses, AuthorizationTimedOut when nobody answers in time
 */
export async function connectCustomer(
  deps: ConnectDeps,
  customerId: string,
  options: ConnectOptions,
): Promise<ConnectResult> {
  if (!deps.app)
    throw new OperatorError(
      'archiver connect needs Archiver\'s Dropbox app: set DROPBOX_APP_KEY and DROPBOX_APP_SECRET (README: "Connecting a real Dropbox")',
    );
  const customer = await getCustomer(deps.db, customerId);
  if (!customer)
    throw new OperatorError(
      `unknown customer "${customerId}" (add it with: archiver customers add ${customerId} --name …)`,
    );

  const fetchImpl = dropboxFetch(deps.apiBase, deps.requestTimeoutMs);
  // No client secret here: the SDK then proves the exchange with the PKCE verifier.
  const auth = new DropboxAuth({ clientId: deps.app.key, fetch: fetchImpl });
  const listener = options.redirectPort === undefined ? undefined : await RedirectListener.listen(options.redirectPort);
  let redirected: RedirectedCode | undefined;
  try {
    const redirectUri = listener?.redirectUri;
    const state = randomBytes(16).toString('hex');
    const sdkUrl = await auth.getAuthenticationUrl(
      redirectUri ?? '',
      state,
      'code',
      'offline',
      DROPBOX_SCOPES,
      'none',
      true,
    );
    deps.say(`Connecting customer ${customerId} (${customer.name}) to Dropbox.`);
    deps.say(
      `Open this URL in a browser signed in to the customer's Dropbox, and click Allow:\n\n  ${authorizeUrl(sdkUrl, deps.apiBase)}\n`,
    );
    let code: string;
    if (listener) {
      deps.say(
        `Waiting up to ${options.timeoutMs / 1000}s for Dropbox to redirect the browser to ${listener.redirectUri} …`,
      );
      redirected = await listener.code(state, options.timeoutMs);
      code = redirected.code;
    } else {
      deps.say(`Then paste the code Dropbox shows here and press Enter (within ${options.timeoutMs / 1000}s):`);
      code = await readPastedCode(deps.input, options.timeoutMs);
    }

    let tokens: { refresh_token?: string; access_token?: string; account_id?: string };
    try {
      // The SDK puts both into the query unencoded.
      const answer = await auth.getAccessTokenFromCode(encodeURIComponent(redirectUri ?? ''), encodeURIComponent(code));
      tokens = answer.result;
    } catch (err) {
      throw exchangeFailure(err, 'the code exchange');
    }
    if (!tokens.refresh_token || !tokens.access_token)
      throw new CustomerRefused('Dropbox sent no refresh token; the app must ask for offline access');

    let account;
    try {
      account = (await new Dropbox({ accessToken: tokens.access_token, fetch: fetchImpl }).usersGetCurrentAccount())
        .result;
    } catch (err) {
      throw exchangeFailure(err, 'checking the new token with users/get_current_account');
    }
    const customerState = await storeRefreshToken(deps, customerId, tokens.refresh_token);
    const result = {
      accountId: account.account_id,
      email: account.email,
      displayName: account.name.display_name,
      state: customerState,
    };
    redirected?.finish({
      ok: true,
      title: `Connected ${customer.name} to Dropbox`,
      text: `Archiver now archives customer ${customerId} into the Dropbox of ${result.displayName} (${result.email}).`,
    });
    return result;
  } catch (err) {
    redirected?.finish({ ok: false, title: 'Dropbox was not connected', text: (err as Error).message });
    throw err;
  } finally {
    await listener?.close();
  }
}
