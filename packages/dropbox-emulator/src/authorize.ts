import type { IncomingMessage, ServerResponse } from 'node:http';
import { ALL_SCOPES, CODE_CHALLENGE_PATTERN, type TokenRegistry } from './auth.js';
import type { AccountState } from './context.js';
import type { AuthorizationCodeInit } from './types.js';
import { readBody, sendText } from './wire.js';

const FORM_BODY_LIMIT = 64 * 1024;

/** What the authorize page needs from the emulator. */
export interface AuthorizeHost {
  readonly tokens: TokenRegistry;
  /** Every account, in the order the page lists them. */
  accounts(): AccountState[];
  /** The account shown as signed in (preselected), if any. */
  signedIn(): string | undefined;
  mintAuthorizationCode(init: AuthorizationCodeInit): string;
}

/** An /oauth2/authorize request, checked. */
interface AuthorizeRequest {
  clientId: string;
  appName: string;
  redirectUri: string | undefined;
  state: string | undefined;
  codeChallenge: string | undefined;
  tokenAccessType: 'offline' | 'online';
  scopes: string[] | undefined;
}

/** A request the page cannot go on with: Dropbox shows these as an error page, never redirecting. */
class AuthorizeRefused extends Error {}

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

function checkRequest(tokens: TokenRegistry, params: URLSearchParams): AuthorizeRequest {
  const clientId = params.get('client_id') ?? '';
  const appName = tokens.appName(clientId);
  if (appName === undefined) throw new AuthorizeRefused(`Invalid client_id: ${JSON.stringify(clientId)}`);
  if (params.get('response_type') !== 'code')
    throw new AuthorizeRefused('response_type must be "code" (the emulator has no implicit grant)');
  const redirectUri = params.get('redirect_uri') ?? undefined;
  if (redirectUri !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(redirectUri);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.hash !== '')
      throw new AuthorizeRefused(`Invalid redirect_uri: ${JSON.stringify(redirectUri)}`);
  }
  const method = params.get('code_challenge_method');
  const codeChallenge = params.get('code_challenge') ?? undefined;
  if (codeChallenge !== undefined || method !== null) {
    if (method !== 'S256') throw new AuthorizeRefused('code_challenge_method must be "S256"');
    if (codeChallenge === undefined || !CODE_CHALLENGE_PATTERN.test(codeChallenge))
      throw new AuthorizeRefused('code_challenge must be 43 base64url characters (S256)');
  }
  const accessType = params.get('token_access_type') ?? 'offline';
  if (accessType !== 'offline' && accessType !== 'online')
    throw new AuthorizeRefused('token_access_type must be "offline" or "online"');
  const scopes = params.get('scope')?.split(' ').filter(Boolean);
  const unknown = scopes?.find((s) => !ALL_SCOPES.includes(s));
  if (unknown !== undefined) throw new AuthorizeRefused(`Unknown scope: ${JSON.stringify(unknown)}`);
  return {
    clientId,
    appName,
    redirectUri,
    state: params.get('state') ?? undefined,
    codeChallenge,
    tokenAccessType: accessType,
    scopes: scopes && scopes.length > 0 ? scopes : undefined,
  };
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto;color:#1e1919}
button{font-size:1em;padding:.5em 1.5em;margin-right:.5em}#allow{background:#0061fe;color:#fff;border:0}
code{font-size:1.3em;background:#f3f3f3;padding:.3em;user-select:all;word-break:break-all}</style>
</head><body><p><em>Dropbox emulator</em></p>${body}</body></html>`;
}

function hidden(params: URLSearchParams): string {
  const names = [
    'client_id',
    'response_type',
    'redirect_uri',
    'state',
    'code_challenge',
    'code_challenge_method',
    'token_access_type',
    'scope',
  ];
  return names
    .filter((n) => params.has(n))
    .map((n) => `<input type="hidden" name="${n}" value="${escapeHtml(params.get(n) ?? '')}">`)
    .join('\n');
}

function consentPage(host: AuthorizeHost, request: AuthorizeRequest, params: URLSearchParams): string {
  const accounts = host.accounts();
  const chosen = host.signedIn() ?? accounts[0]?.id;
  const options = accounts
    .map((a) => {
      const label = `${a.name ?? a.id}${a.email ? ` <${a.email}>` : ''} (${a.id})`;
      return `<option value="${escapeHtml(a.id)}"${a.id === chosen ? ' selected' : ''}>${escapeHtml(label)}</option>`;
    })
    .join('\n');
  const scopes = (request.scopes ?? ALL_SCOPES).map((s) => `<li>${escapeHtml(s)}</li>`).join('');
  const app = escapeHtml(request.appName);
  return page(
    `${request.appName} - API Request Authorization`,
    `<h1>${app} would like access to the files and folders in your Dropbox</h1>
<form method="post" action="/oauth2/authorize">
${hidden(params)}
<p><label>Signed in as <select name="account" id="account">${options}</select></label></p>
<p>${app} asks for:</p><ul>${scopes}</ul>
<p><button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button></p>
</form>`,
  );
}

/** The redirect target with Dropbox's answer appended to whatever query it already has. */
function redirectTo(redirectUri: string, answer: Record<string, string | undefined>): string {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(answer)) if (v !== undefined) url.searchParams.append(k, v);
  return url.href;
}

function decide(host: AuthorizeHost, request: AuthorizeRequest, form: URLSearchParams, res: ServerResponse): void {
  const { redirectUri, state } = request;
  if (form.get('decision') !== 'allow') {
    const denied = { error: 'access_denied', error_description: 'The user chose not to give your app access.' };
    if (redirectUri !== undefined) return redirect(res, redirectTo(redirectUri, { ...denied, state }));
    return sendHtml(
      res,
      200,
      page('Access denied', `<h1>You chose not to give ${escapeHtml(request.appName)} access</h1>`),
    );
  }
  const accountId = form.get('account') ?? '';
  if (!host.accounts().some((a) => a.id === accountId))
    throw new AuthorizeRefused(`No such account: ${JSON.stringify(accountId)}`);
  const code = host.mintAuthorizationCode({
    accountId,
    appKey: request.clientId,
    ...(request.scopes ? { scopes: request.scopes } : {}),
    ...(redirectUri !== undefined ? { redirectUri } : {}),
    ...(request.codeChallenge !== undefined ? { codeChallenge: request.codeChallenge } : {}),
    tokenAccessType: request.tokenAccessType,
  });
  if (redirectUri !== undefined) return redirect(res, redirectTo(redirectUri, { code, state }));
  // The no-redirect flow: the person copies the code into the app.
  sendHtml(
    res,
    200,
    page(
      'Access code',
      `<h1>Enter this code into ${escapeHtml(request.appName)} to finish the process</h1>
<p><code id="authorization-code">${escapeHtml(code)}</code></p>`,
    ),
  );
}

function redirect(res: ServerResponse, location: string): void {
  if (res.headersSent) return;
  res.writeHead(302, { Location: location, 'Content-Length': '0' });
  res.end();
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  sendText(res, status, html, {}, 'text/html; charset=utf-8');
}

/**
 * `GET /oauth2/authorize` shows the consent page: the app's name, the scopes, the signed-in
 * account (a list of the emulator's accounts) and Allow / Cancel. Its form posts back to
 * `POST /oauth2/authorize`, which mints a single-use code bound to the account, the app, the
 * redirect_uri and the PKCE challenge, and redirects to redirect_uri with `code` and `state`, or,
 * without redirect_uri, shows the code for the person to copy.
 */
export async function handleAuthorize(
  host: AuthorizeHost,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const body = await readBody(req, { keep: true, hash: false, maxKeep: FORM_BODY_LIMIT });
  try {
    if (req.method === 'GET') {
      const request = checkRequest(host.tokens, url.searchParams);
      return sendHtml(res, 200, consentPage(host, request, url.searchParams));
    }
    if (req.method !== 'POST') return sendText(res, 405, 'Method Not Allowed', { Allow: 'GET, POST' });
    if (body.truncated) throw new AuthorizeRefused('request body: too large');
    const form = new URLSearchParams(body.bytes?.toString('utf8') ?? '');
    decide(host, checkRequest(host.tokens, form), form, res);
  } catch (err) {
    if (!(err instanceof AuthorizeRefused)) throw err;
    sendHtml(res, 400, page('Error', `<h1>Error (400)</h1><p id="error">${escapeHtml(err.message)}</p>`));
  }
}
