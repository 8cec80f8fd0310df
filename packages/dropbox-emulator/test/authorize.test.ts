import { createHash } from 'node:crypto';
import { Dropbox, DropboxAuth } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';
import { adminCall, fetchRewritingTo, sdkFailure, tokenCall } from './support/calls.js';

const APP = { key: 'connectapp1', secret: 'connectsecret1', name: 'Archiver Test' };
const ERIN = { accountId: 'dbid:erin', name: 'Erin Park', email: 'erin@example.com' };
const FRANK = { accountId: 'dbid:frank', name: 'Frank Ode', email: 'frank@example.com' };
const REDIRECT = 'http://127.0.0.1:53682/oauth2/callback';
const SCOPES = ['account_info.read', 'files.content.read', 'files.content.write', 'files.metadata.read'];
const VERIFIER = 'v'.repeat(43) + '-._~0123456789';
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url');

let emu: DropboxEmulator;
beforeAll(async () => {
  emu = await startDropboxEmulator({ apps: [APP], accounts: [ERIN, FRANK], signedInAccount: FRANK.accountId });
});
afterAll(() => emu.stop());

/** The SDK's authorize URL (it always names www.dropbox.com), pointed at the emulator. */
function atEmulator(sdkUrl: string): string {
  const url = new URL(sdkUrl);
  return `${emu.url}${url.pathname}${url.search}`;
}

function authorizeUrl(params: Record<string, string>): string {
  return `${emu.url}/oauth2/authorize?${new URLSearchParams({ client_id: APP.key, response_type: 'code', ...params })}`;
}

async function getPage(url: string): Promise<{ status: number; html: string }> {
  const res = await fetch(url);
  return { status: res.status, html: await res.text() };
}

/** The consent form's fields as a browser would submit them, with `choice` on top. */
function formOf(html: string, choice: Record<string, string>): URLSearchParams {
  const form = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
    form.set(m[1] as string, (m[2] as string).replace(/&amp;/g, '&').replace(/&quot;/g, '"'));
  for (const [k, v] of Object.entries(choice)) form.set(k, v);
  return form;
}

async function submit(form: URLSearchParams): Promise<Response> {
  return fetch(`${emu.url}/oauth2/authorize`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    redirect: 'manual',
  });
}

/** Clicks Allow for `accountId` on the page at `url`; answers the redirect's query, or the code shown. */
async function allow(url: string, accountId: string): Promise<{ location?: URL; shownCode?: string }> {
  const { html } = await getPage(url);
  const res = await submit(formOf(html, { decision: 'allow', account: accountId }));
  if (res.status === 302) return { location: new URL(res.headers.get('location') ?? '') };
  const shown = /<code id="authorization-code">([^<]+)<\/code>/.exec(await res.text());
  return { shownCode: shown?.[1] };
}

const exchange = (params: Record<string, string>) =>
  tokenCall(emu.url, { grant_type: 'authorization_code', client_id: APP.key, ...params });

describe('GET /oauth2/authorize', () => {
  it('shows the app, the scopes asked for and the accounts, with the signed-in one preselected', async () => {
    const page = await getPage(authorizeUrl({ scope: 'files.content.write account_info.read', state: 's<1>' }));
    expect(page.status).toBe(200);
    expect(page.html).toContain('<h1>Archiver Test would like access to the files and folders in your Dropbox</h1>');
    expect(page.html).toContain('<li>files.content.write</li><li>account_info.read</li>');
    expect(page.html).toMatch(/<option value="dbid:frank" selected>Frank Ode &lt;frank@example.com&gt; \(dbid:frank\)/);
    expect(page.html).toMatch(/<option value="dbid:erin">Erin Park/);
    expect(page.html).toContain('<input type="hidden" name="state" value="s&lt;1&gt;">');
    expect(page.html).toMatch(/<button type="submit" name="decision" value="allow" id="allow">Allow<\/button>/);
  });

  it('refuses bad requests with an error page instead of redirecting', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ client_id: 'nosuchapp' }, 'Invalid client_id: &quot;nosuchapp&quot;'],
      [{ response_type: 'token' }, 'response_type must be &quot;code&quot;'],
      [{ redirect_uri: 'javascript:alert(1)' }, 'Invalid redirect_uri'],
      [{ code_challenge: CHALLENGE, code_challenge_method: 'plain' }, 'code_challenge_method must be &quot;S256&quot;'],
      [{ code_challenge: 'short', code_challenge_method: 'S256' }, 'code_challenge must be 43 base64url characters'],
      [{ token_access_type: 'forever' }, 'token_access_type must be'],
      [{ scope: 'team_data.member' }, 'Unknown scope: &quot;team_data.member&quot;'],
    ];
    for (const [params, message] of cases) {
      const page = await getPage(authorizeUrl(params));
      expect({ status: page.status, message: page.html.includes(message) }, page.html).toEqual({
        status: 400,
        message: true,
      });
    }
    const tampered = await submit(
      formOf((await getPage(authorizeUrl({}))).html, { decision: 'allow', account: 'dbid:nobody' }),
    );
    expect(tampered.status).toBe(400);
    expect(await tampered.text()).toContain('No such account: &quot;dbid:nobody&quot;');
  });
});

describe('the authorization code flow', () => {
  it('PKCE through the SDK: Allow redirects with code and state; the code buys offline tokens for the chosen account', async () => {
    const auth = new DropboxAuth({ clientId: APP.key, fetch: fetchRewritingTo(emu.url) });
    const sdkUrl = await auth.getAuthenticationUrl(REDIRECT, 'state-123', 'code', 'offline', SCOPES, 'none', true);
    const { location } = await allow(atEmulator(sdkUrl), ERIN.accountId);
    expect(location?.origin + (location?.pathname ?? '')).toBe(REDIRECT);
    expect(location?.searchParams.get('state')).toBe('state-123');
    const code = location?.searchParams.get('code') ?? '';
    expect(code).toMatch(/^[A-Za-z0-9_-]{40,}$/);

    // No client secret: the SDK proves the client with the PKCE code_verifier.
    const res = await auth.getAccessTokenFromCode(REDIRECT, code);
    expect(res.result).toEqual({
      access_token: expect.stringMatching(/^sl\./),
      token_type: 'bearer',
      expires_in: 14400,
      refresh_token: expect.stringMatching(/^[A-Za-z0-9_-]{40,}$/),
      scope: SCOPES.join(' '),
      uid: expect.stringMatching(/^\d+$/),
      account_id: ERIN.accountId,
    });
    const { refresh_token: refreshToken, access_token: accessToken } = res.result as Record<string, string>;
    const me = await new Dropbox({ accessToken, fetch: fetchRewritingTo(emu.url) }).usersGetCurrentAccount();
    expect(me.result).toMatchObject({ account_id: ERIN.accountId, email: ERIN.email });
    // The worker refreshes it with the app's secret.
    const refreshed = await tokenCall(emu.url, {
      grant_type: 'refresh_token',
      refresh_token: refreshToken as string,
      client_id: APP.key,
      client_secret: APP.secret,
    });
    expect(refreshed.status).toBe(200);
    // Single use.
    expect((await sdkFailure(auth.getAccessTokenFromCode(REDIRECT, code))).error).toEqual({
      error: 'invalid_grant',
      error_description: "code doesn't exist or has expired",
    });
  });

  it('without redirect_uri the page shows the code to copy, and the exchange must not name a redirect_uri', async () => {
    const url = authorizeUrl({
      code_challenge: CHALLENGE,
      code_challenge_method: 'S256',
      token_access_type: 'offline',
    });
    const first = await allow(url, FRANK.accountId);
    expect(first.shownCode).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const ok = await exchange({ code: first.shownCode as string, code_verifier: VERIFIER });
    expect(ok.json).toMatchObject({ account_id: FRANK.accountId, refresh_token: expect.any(String) });

    const second = await allow(url, FRANK.accountId);
    const mismatch = await exchange({
      code: second.shownCode as string,
      code_verifier: VERIFIER,
      redirect_uri: REDIRECT,
    });
    expect(mismatch.json).toEqual({ error: 'invalid_grant', error_description: 'redirect_uri mismatch' });
  });

  it('refuses a wrong or missing verifier, a wrong client, an expired, reused or tampered code, and a wrong redirect_uri', async () => {
    const pkce = { code_challenge: CHALLENGE, code_challenge_method: 'S256', redirect_uri: REDIRECT };
    const code = async (): Promise<string> =>
      (await allow(authorizeUrl(pkce), ERIN.accountId)).location?.searchParams.get('code') ?? '';
    const cases: [Record<string, string>, Record<string, string>][] = [
      [{ code_verifier: 'w'.repeat(43) }, { error: 'invalid_grant', error_description: 'invalid code_verifier' }],
      [{ code_verifier: 'too-short' }, { error: 'invalid_grant', error_description: 'invalid code_verifier' }],
      [
        { client_secret: APP.secret },
        { error: 'invalid_grant', error_description: 'code_verifier is required for this code' },
      ],
      [
        { code_verifier: VERIFIER, client_secret: 'wrong' },
        { error: 'invalid_client', error_description: 'Invalid client_id or client_secret' },
      ],
      [
        { code_verifier: VERIFIER, client_id: 'nosuchapp' },
        { error: 'invalid_client', error_description: 'Invalid client_id or client_secret' },
      ],
      [{}, { error: 'invalid request', error_description: 'No auth function available for given request' }],
      [
        { code_verifier: VERIFIER, redirect_uri: 'http://127.0.0.1:1/elsewhere' },
        { error: 'invalid_grant', error_description: 'redirect_uri mismatch' },
      ],
    ];
    for (const [extra, body] of cases) {
      const res = await exchange({ code: await code(), redirect_uri: REDIRECT, ...extra });
      expect({ status: res.status, body: res.json }, JSON.stringify(extra)).toEqual({ status: 400, body });
    }
    // A failed attempt burns the code: the right verifier afterwards is too late.
    const burnt = await code();
    await exchange({ code: burnt, redirect_uri: REDIRECT, code_verifier: 'x'.repeat(43) });
    expect((await exchange({ code: burnt, redirect_uri: REDIRECT, code_verifier: VERIFIER })).json.error).toBe(
      'invalid_grant',
    );
    // Secret and verifier together are fine.
    const both = await exchange({
      code: await code(),
      redirect_uri: REDIRECT,
      code_verifier: VERIFIER,
      client_secret: APP.secret,
    });
    expect(both.status).toBe(200);
    // A code issued without a challenge cannot be redeemed with a verifier alone.
    const plain = emu.mintAuthorizationCode({ accountId: ERIN.accountId });
    expect((await exchange({ code: plain, code_verifier: VERIFIER })).json).toEqual({
      error: 'invalid_grant',
      error_description: 'code was not issued with a code_challenge',
    });
  });

  it('codes expire after authorizationCodeTtlSeconds; online access gets no refresh token', async () => {
    const short = await startDropboxEmulator({ apps: [APP], accounts: [ERIN], authorizationCodeTtlSeconds: 1 });
    try {
      const code = short.mintAuthorizationCode({ accountId: ERIN.accountId, codeChallenge: CHALLENGE });
      await new Promise((r) => setTimeout(r, 1100));
      const late = await tokenCall(short.url, {
        grant_type: 'authorization_code',
        client_id: APP.key,
        code,
        code_verifier: VERIFIER,
      });
      expect(late.json).toEqual({ error: 'invalid_grant', error_description: "code doesn't exist or has expired" });
    } finally {
      await short.stop();
    }
    const { shownCode } = await allow(
      authorizeUrl({ code_challenge: CHALLENGE, code_challenge_method: 'S256', token_access_type: 'online' }),
      ERIN.accountId,
    );
    const online = await exchange({ code: shownCode as string, code_verifier: VERIFIER });
    expect(online.status).toBe(200);
    expect(online.json.refresh_token).toBeUndefined();
  });

  it('Cancel redirects with access_denied and the state; sign-in over the admin API changes the preselected account', async () => {
    const { html } = await getPage(authorizeUrl({ redirect_uri: REDIRECT, state: 'st9' }));
    const denied = await submit(formOf(html, { decision: 'deny' }));
    expect(denied.status).toBe(302);
    const location = new URL(denied.headers.get('location') ?? '');
    expect(Object.fromEntries(location.searchParams)).toEqual({
      error: 'access_denied',
      error_description: 'The user chose not to give your app access.',
      state: 'st9',
    });

    expect((await adminCall(emu.url, 'sign-in', { account: ERIN.accountId })).status).toBe(200);
    expect((await getPage(authorizeUrl({}))).html).toMatch(/<option value="dbid:erin" selected>/);
    expect((await adminCall(emu.url, 'sign-in', { account: '' })).status).toBe(400);
    emu.signIn(undefined);
    // Nobody signed in: the first account is preselected.
    expect((await getPage(authorizeUrl({}))).html).toMatch(/<option value="dbid:erin" selected>/);
  });
});
