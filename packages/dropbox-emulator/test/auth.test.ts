import { Dropbox, DropboxAuth } from 'dropbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from '../src/index.js';
import { basicAuth, createDropboxClient, fetchRewritingTo, rawCall, sdkFailure, tokenCall } from './support/calls.js';

const APP = { key: 'appkey1', secret: 'appsecret1' };
const CAROL = {
  accountId: 'dbid:carol',
  refreshToken: 'rt-carol-0001',
  appKey: APP.key,
  name: 'Carol Jones',
  email: 'carol@example.com',
};
const READER = {
  token: 'sl.read-only',
  accountId: 'dbid:reader',
  scopes: ['files.metadata.read', 'account_info.read'],
};
const SUMMARY = (tag: string): RegExp => new RegExp(`^${tag}\\/\\.{0,3}$`);

function oauthClient(emu: DropboxEmulator, refreshToken: string): Dropbox {
  return new Dropbox({ refreshToken, clientId: APP.key, clientSecret: APP.secret, fetch: fetchRewritingTo(emu.url) });
}

/** The DropboxAuth the SDK builds from those options (typed away in types/index.d.ts). */
const authOf = (dbx: Dropbox): DropboxAuth => (dbx as unknown as { auth: DropboxAuth }).auth;

const refreshQuery = (refreshToken: string, extra: Record<string, string> = {}) => ({
  grant_type: 'refresh_token',
  refresh_token: refreshToken,
  client_id: APP.key,
  client_secret: APP.secret,
  ...extra,
});

describe('OAuth through the dropbox SDK', () => {
  let emu: DropboxEmulator;
  const tokenRequests = (accountId: string): number => emu.stats().accounts[accountId]?.tokenRequests ?? 0;

  beforeAll(async () => {
    emu = await startDropboxEmulator({
      apps: [APP],
      accounts: [CAROL, READER],
      authorizationCodes: [{ code: 'startup-code-1', accountId: CAROL.accountId, scopes: ['files.metadata.read'] }],
    });
  });
  afterAll(() => emu.stop());

  it('the SDK trades a refresh token (query string, no body) for an sl. token and calls get_current_account', async () => {
    const dbx = oauthClient(emu, CAROL.refreshToken);
    const before = Date.now();
    const me = await dbx.usersGetCurrentAccount();
    expect(me.result).toMatchObject({
      account_id: 'dbid:carol',
      name: {
        given_name: 'Carol',
        surname: 'Jones',
        familiar_name: 'Carol',
        display_name: 'Carol Jones',
        abbreviated_name: 'CJ',
      },
      email: 'carol@example.com',
      email_verified: true,
      disabled: false,
      account_type: { '.tag': 'basic' },
      root_info: {
        '.tag': 'user',
        root_namespace_id: expect.stringMatching(/^\d+$/),
        home_namespace_id: expect.stringMatching(/^\d+$/),
      },
    });
    expect(me.result.root_info.root_namespace_id).toBe(me.result.root_info.home_namespace_id);
    expect(authOf(dbx).getAccessToken()).toMatch(/^sl\.[A-Za-z0-9_-]{100,}$/);
    const expiresAt = authOf(dbx).getAccessTokenExpiresAt().getTime();
    expect(expiresAt - before).toBeGreaterThanOrEqual(14_399_000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(14_400_000);
    await dbx.filesListFolder({ path: '' });
    expect(tokenRequests(CAROL.accountId)).toBe(1);
    expect(emu.stats().requests['/oauth2/token 200']).toBe(1);
  });

  it('answers refreshes with exactly access_token, token_type and expires_in', async () => {
    const res = await tokenCall(emu.url, refreshQuery(CAROL.refreshToken));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.json).toEqual({ access_token: expect.stringMatching(/^sl\./), token_type: 'bearer', expires_in: 14400 });
    // Form body with HTTP Basic client auth, as curl -u key:secret -d … sends it.
    const form = await tokenCall(
      emu.url,
      {},
      {
        form: { grant_type: 'refresh_token', refresh_token: CAROL.refreshToken },
        headers: { Authorization: basicAuth(APP.key, APP.secret) },
      },
    );
    expect(form.status).toBe(200);
    const formParams = await tokenCall(emu.url, {}, { form: refreshQuery(CAROL.refreshToken) });
    expect(formParams.status).toBe(200);
    expect(
      (await rawCall(emu.url, 'files/list_folder', { token: form.json.access_token, body: { path: '' } })).status,
    ).toBe(200);
  });

  it('answers bad token requests with 400 OAuth JSON', async () => {
    const before = tokenRequests(CAROL.accountId);
    const cases: [Record<string, string>, Record<string, string>][] = [
      [
        refreshQuery('rt-unknown'),
        { error: 'invalid_grant', error_description: 'refresh token is invalid or revoked' },
      ],
      [refreshQuery('bad token!'), { error: 'invalid_grant', error_description: 'refresh token is malformed' }],
      [
        refreshQuery(CAROL.refreshToken, { client_secret: 'wrong' }),
        { error: 'invalid_client', error_description: 'Invalid client_id or client_secret' },
      ],
      [
        refreshQuery(CAROL.refreshToken, { client_id: 'nosuchapp' }),
        { error: 'invalid_client', error_description: 'Invalid client_id or client_secret' },
      ],
      [
        { grant_type: 'refresh_token', refresh_token: CAROL.refreshToken, client_id: APP.key },
        { error: 'invalid request', error_description: 'No auth function available for given request' },
      ],
      [
        { ...refreshQuery(CAROL.refreshToken), grant_type: 'password' },
        { error: 'unsupported_grant_type', error_description: 'Unsupported grant_type: "password"' },
      ],
      [
        refreshQuery(CAROL.refreshToken, { scope: 'files.content.write team_data.member' }),
        { error: 'invalid_scope', error_description: 'Scope "team_data.member" was not granted to this refresh token' },
      ],
    ];
    for (const [query, body] of cases) {
      const res = await tokenCall(emu.url, query);
      expect({ status: res.status, body: res.json }).toEqual({ status: 400, body });
    }
    // The requests naming Carol's refresh token count for Carol, whatever their outcome.
    expect(tokenRequests(CAROL.accountId) - before).toBe(5);
    const sdk = await sdkFailure(oauthClient(emu, 'rt-unknown').filesListFolder({ path: '' }));
    expect(sdk.status).toBe(400);
    expect(sdk.error).toEqual({ error: 'invalid_grant', error_description: 'refresh token is invalid or revoked' });
  });

  it('exchanges a single-use authorization code for tokens, uid and account_id', async () => {
    const redirectUri = 'http://localhost:5000/callback';
    const code = emu.mintAuthorizationCode({ accountId: CAROL.accountId, redirectUri });
    const auth = new DropboxAuth({ clientId: APP.key, clientSecret: APP.secret, fetch: fetchRewritingTo(emu.url) });
    const res = await auth.getAccessTokenFromCode(redirectUri, code);
    expect(res.result).toEqual({
      access_token: expect.stringMatching(/^sl\./),
      token_type: 'bearer',
      expires_in: 14400,
      refresh_token: expect.stringMatching(/^[A-Za-z0-9_-]{40,}$/),
      scope: 'account_info.read files.content.read files.content.write files.metadata.read',
      uid: expect.stringMatching(/^\d+$/),
      account_id: CAROL.accountId,
    });
    const reused = await sdkFailure(auth.getAccessTokenFromCode(redirectUri, code));
    expect(reused.error).toEqual({ error: 'invalid_grant', error_description: "code doesn't exist or has expired" });
    const other = emu.mintAuthorizationCode({ accountId: CAROL.accountId, redirectUri });
    expect((await sdkFailure(auth.getAccessTokenFromCode('http://evil/cb', other))).error).toEqual({
      error: 'invalid_grant',
      error_description: 'redirect_uri mismatch',
    });

    const startup = await tokenCall(
      emu.url,
      { grant_type: 'authorization_code', code: 'startup-code-1' },
      { headers: { Authorization: `Basic ${Buffer.from(`${APP.key}:${APP.secret}`).toString('base64')}` } },
    );
    expect(startup.json).toMatchObject({ account_id: CAROL.accountId, scope: 'files.metadata.read' });

    const refreshToken = (res.result as { refresh_token: string }).refresh_token;
    expect((await oauthClient(emu, refreshToken).usersGetCurrentAccount()).result.account_id).toBe(CAROL.accountId);
  });

  it('expireAccessTokens makes current tokens answer 401 expired_access_token; the SDK does not refresh by itself', async () => {
    const dbx = oauthClient(emu, CAROL.refreshToken);
    await dbx.filesListFolder({ path: '' });
    const staticId = emu.addAccount({ token: 'sl.static-expiring' });
    expect(emu.expireAccessTokens(CAROL.accountId)).toBeGreaterThanOrEqual(1);
    emu.expireAccessTokens(staticId);
    const e = await sdkFailure(dbx.filesListFolder({ path: '' }));
    expect(e.status).toBe(401);
    expect(e.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('expired_access_token')),
      error: { '.tag': 'expired_access_token' },
    });
    expect(
      (await rawCall(emu.url, 'files/list_folder', { token: 'sl.static-expiring', body: { path: '' } })).json.error,
    ).toEqual({ '.tag': 'expired_access_token' });
    // Requests with a known but unusable token still count for its account.
    expect(emu.stats().accounts[CAROL.accountId]?.requests['/2/files/list_folder 401']).toBe(1);
    expect(emu.stats().accounts[staticId]?.requests).toEqual({ '/2/files/list_folder 401': 1 });
    // A refresh gets a working token again.
    authOf(dbx).setAccessTokenExpiresAt(new Date(0));
    await authOf(dbx).checkAndRefreshAccessToken();
    expect((await dbx.filesListFolder({ path: '' })).status).toBe(200);
  });

  it('a token whose scopes lack files.content.write gets 401 missing_scope on uploads', async () => {
    const reader = createDropboxClient({ accessToken: READER.token, apiBase: emu.url });
    const e = await sdkFailure(reader.filesUpload({ path: '/x.txt', contents: Buffer.from('x') }));
    expect(e.status).toBe(401);
    expect(e.error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('missing_scope')),
      error: { '.tag': 'missing_scope', required_scope: 'files.content.write' },
    });
    expect((await sdkFailure(reader.filesUploadSessionStart({}))).error.error.required_scope).toBe(
      'files.content.write',
    );
    expect((await reader.filesListFolder({ path: '' })).status).toBe(200);
    // A refresh that asks for fewer scopes gets a narrower token.
    const narrow = await tokenCall(emu.url, refreshQuery(CAROL.refreshToken, { scope: 'files.metadata.read' }));
    const denied = await rawCall(emu.url, 'files/upload', {
      token: narrow.json.access_token,
      arg: { path: '/n.txt' },
      body: 'n',
    });
    expect(denied.json.error).toEqual({ '.tag': 'missing_scope', required_scope: 'files.content.write' });
  });

  it('revokeTokens kills refresh and access tokens; auth/token/revoke kills one token and its refresh token', async () => {
    const id = emu.addAccount({ accountId: 'dbid:dave', refreshToken: 'rt-dave-0001' });
    const dbx = oauthClient(emu, 'rt-dave-0001');
    await dbx.usersGetCurrentAccount();
    emu.revokeTokens(id);
    expect((await sdkFailure(dbx.usersGetCurrentAccount())).error).toEqual({
      error_summary: expect.stringMatching(SUMMARY('invalid_access_token')),
      error: { '.tag': 'invalid_access_token' },
    });
    expect((await tokenCall(emu.url, refreshQuery('rt-dave-0001'))).json).toEqual({
      error: 'invalid_grant',
      error_description: 'refresh token is invalid or revoked',
    });

    emu.addAccount({ accountId: 'dbid:dave', refreshToken: 'rt-dave-0002' });
    const fresh = await tokenCall(emu.url, refreshQuery('rt-dave-0002'));
    const revoke = await rawCall(emu.url, 'auth/token/revoke', { token: fresh.json.access_token });
    expect({ status: revoke.status, text: revoke.text }).toEqual({ status: 200, text: 'null' });
    expect(
      (await rawCall(emu.url, 'files/list_folder', { token: fresh.json.access_token, body: { path: '' } })).status,
    ).toBe(401);
    expect((await tokenCall(emu.url, refreshQuery('rt-dave-0002'))).json.error).toBe('invalid_grant');
  });

  it('answers missing or malformed Authorization and bad no-arg bodies with 400 text', async () => {
    const none = await rawCall(emu.url, 'users/get_current_account', {});
    expect({ status: none.status, text: none.text }).toEqual({
      status: 400,
      text: 'Error in call to API function "users/get_current_account": Must provide HTTP header "Authorization" or URL parameter "authorization".',
    });
    const malformed = await rawCall(emu.url, 'users/get_current_account', { headers: { Authorization: 'Bearer a b' } });
    expect(malformed.text).toBe(
      'Error in call to API function "users/get_current_account": The given OAuth 2 access token is malformed.',
    );
    const basic = await rawCall(emu.url, 'users/get_current_account', {
      headers: { Authorization: basicAuth(APP.key, APP.secret) },
    });
    expect(basic.text).toMatch(
      /^Error in call to API function "users\/get_current_account": Invalid authorization value in HTTP header "Authorization": "Basic .*"\. {2}Expecting "Bearer <oauth2-access-token>"\.$/,
    );
    expect((await rawCall(emu.url, 'users/get_current_account', { token: READER.token, body: 'null' })).status).toBe(
      200,
    );
    const withArgs = await rawCall(emu.url, 'users/get_current_account', { token: READER.token, body: { x: 1 } });
    expect(withArgs.status).toBe(400);
  });
});

describe('short-lived access tokens', () => {
  it('expire after accessTokenTtlSeconds; the SDK refreshes before every call when under 5 minutes remain', async () => {
    const emu = await startDropboxEmulator({ apps: [APP], accounts: [CAROL], accessTokenTtlSeconds: 1 });
    try {
      const token = (await tokenCall(emu.url, refreshQuery(CAROL.refreshToken))).json;
      expect(token.expires_in).toBe(1);
      expect(
        (await rawCall(emu.url, 'files/list_folder', { token: token.access_token, body: { path: '' } })).status,
      ).toBe(200);
      await new Promise((r) => setTimeout(r, 1100));
      const expired = await rawCall(emu.url, 'files/list_folder', { token: token.access_token, body: { path: '' } });
      expect(expired.status).toBe(401);
      expect(expired.json.error).toEqual({ '.tag': 'expired_access_token' });

      const dbx = oauthClient(emu, CAROL.refreshToken);
      for (let i = 0; i < 3; i++) await dbx.filesListFolder({ path: '' });
      expect(emu.stats().accounts[CAROL.accountId]?.tokenRequests).toBe(1 + 3);
      emu.setAccessTokenTtl(7200);
      expect((await tokenCall(emu.url, refreshQuery(CAROL.refreshToken))).json.expires_in).toBe(7200);
    } finally {
      await emu.stop();
    }
  });
});
