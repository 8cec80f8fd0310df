import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthorizationCodeInit } from './types.js';
import { newOpaqueId } from './wire.js';

/** Every scope the emulated routes check; a token without an explicit list has them all. */
export const ALL_SCOPES = ['account_info.read', 'files.content.read', 'files.content.write', 'files.metadata.read'];
export const DEFAULT_CODE_TTL_SECONDS = 10 * 60;
/** RFC 7636 §4.1: 43-128 unreserved characters. */
const CODE_VERIFIER_PATTERN = /^[A-Za-z0-9\-._~]{43,128}$/;
/** RFC 7636 §4.2: base64url of a SHA-256 digest, without padding. */
export const CODE_CHALLENGE_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** What a refresh token may contain; anything else is "malformed", not merely unknown. */
const REFRESH_TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Registered ones must also survive the SDK's unencoded query string ("+" would turn into a space). */
const URL_SAFE = /^[A-Za-z0-9\-._~]+$/;

export interface AccessTokenInfo {
  accountId: string;
  /** undefined = never expires (static tokens from addAccount). */
  expiresAtMs: number | undefined;
  revoked: boolean;
  scopes: string[] | undefined;
  /** The refresh token it was minted from; revoking the access token revokes that too. */
  refreshToken: string | undefined;
}

interface RefreshInfo {
  accountId: string;
  appKey: string;
  scopes: string[] | undefined;
  revoked: boolean;
}

interface CodeInfo {
  accountId: string;
  appKey: string;
  scopes: string[] | undefined;
  redirectUri: string | undefined;
  codeChallenge: string | undefined;
  offline: boolean;
  expiresAtMs: number;
}

export interface TokenOutcome {
  status: number;
  body: Record<string, unknown>;
  /** The account the refresh token or code belongs to, when known (for per-account counts and faults). */
  accountId: string | undefined;
}

/** The S256 code challenge of a PKCE code verifier. */
export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A stable numeric user id ("uid" in token answers) for an account id. */
export function uidOf(accountId: string): string {
  return String(parseInt(createHash('sha256').update(accountId).digest('hex').slice(0, 8), 16));
}

function checkKey(what: string, value: unknown): string {
  if (typeof value !== 'string' || !URL_SAFE.test(value))
    throw new TypeError(`${what} must be non-empty and URL-safe (A-Z a-z 0-9 - . _ ~), got ${JSON.stringify(value)}`);
  return value;
}

/** Apps, refresh tokens, access tokens and authorization codes, as /oauth2/token and the API see them. */
export class TokenRegistry {
  private readonly apps = new Map<string, string>();
  private readonly appNames = new Map<string, string>();
  readonly access = new Map<string, AccessTokenInfo>();
  private readonly refresh = new Map<string, RefreshInfo>();
  private readonly codes = new Map<string, CodeInfo>();

  constructor(
    public ttlSeconds: number,
    private readonly codeTtlSeconds = DEFAULT_CODE_TTL_SECONDS,
  ) {}

  hasApp(key: string): boolean {
    return this.apps.has(key);
  }

  addApp(key: unknown, secret: unknown, name?: unknown): void {
    if (name !== undefined && (typeof name !== 'string' || name.trim() === ''))
      throw new TypeError(`app name must be a non-empty string, got ${JSON.stringify(name)}`);
    const app = checkKey('app key', key);
    this.apps.set(app, checkKey('app secret', secret));
    this.appNames.set(app, name ?? app);
  }

  /** The app's display name, for the authorize page; undefined for an unknown app. */
  appName(key: string): string | undefined {
    return this.appNames.get(key);
  }

  /** The named app, or the only one when none is named. */
  resolveApp(appKey: string | undefined): string {
    if (appKey !== undefined) {
      if (!this.apps.has(appKey))
        throw new TypeError(`unknown app key ${JSON.stringify(appKey)}; register it with addApp first`);
      return appKey;
    }
    if (this.apps.size !== 1) throw new TypeError(`appKey is required when ${this.apps.size} apps are registered`);
    return [...this.apps.keys()][0] as string;
  }

  addStatic(token: string, accountId: string, scopes: string[] | undefined): void {
    this.access.set(token, { accountId, expiresAtMs: undefined, revoked: false, scopes, refreshToken: undefined });
  }

  addRefresh(refreshToken: string, accountId: string, appKey: string | undefined, scopes: string[] | undefined): void {
    if (!URL_SAFE.test(refreshToken))
      throw new TypeError(
        `refresh token must be URL-safe (the SDK does not encode it), got ${JSON.stringify(refreshToken)}`,
      );
    this.refresh.set(refreshToken, { accountId, appKey: this.resolveApp(appKey), scopes, revoked: false });
  }

  mintCode(init: AuthorizationCodeInit, accountScopes: string[] | undefined): string {
    const code = init.code ?? newOpaqueId(32);
    if (!URL_SAFE.test(code)) throw new TypeError(`code must be URL-safe, got ${JSON.stringify(code)}`);
    if (init.codeChallenge !== undefined && !CODE_CHALLENGE_PATTERN.test(init.codeChallenge))
      throw new TypeError(
        `codeChallenge must be 43 base64url characters (S256), got ${JSON.stringify(init.codeChallenge)}`,
      );
    this.codes.set(code, {
      accountId: init.accountId,
      appKey: this.resolveApp(init.appKey),
      scopes: init.scopes ?? accountScopes,
      redirectUri: init.redirectUri,
      codeChallenge: init.codeChallenge,
      offline: init.tokenAccessType !== 'online',
      expiresAtMs: Date.now() + this.codeTtlSeconds * 1000,
    });
    return code;
  }

  /** `sl.` tokens like Dropbox's short-lived ones. */
  private mintAccess(accountId: string, scopes: string[] | undefined, refreshToken: string | undefined): string {
    const token = `sl.${newOpaqueId(96)}`;
    this.access.set(token, {
      accountId,
      expiresAtMs: Date.now() + this.ttlSeconds * 1000,
      revoked: false,
      scopes,
      refreshToken,
    });
    return token;
  }

  /** Marks every unexpired access token of the account expired; returns how many. */
  expire(accountId: string): number {
    const now = Date.now();
    let n = 0;
    for (const t of this.access.values()) {
      if (t.accountId !== accountId || t.revoked || (t.expiresAtMs !== undefined && t.expiresAtMs <= now)) continue;
      t.expiresAtMs = now;
      n++;
    }
    return n;
  }

  revoke(accountId: string): void {
    for (const t of this.access.values()) if (t.accountId === accountId) t.revoked = true;
    for (const r of this.refresh.values()) if (r.accountId === accountId) r.revoked = true;
  }

  /** auth/token/revoke: the access token and the refresh token it came from. */
  revokeAccessToken(token: string): void {
    const info = this.access.get(token);
    if (!info) return;
    info.revoked = true;
    const r = info.refreshToken === undefined ? undefined : this.refresh.get(info.refreshToken);
    if (r) r.revoked = true;
  }

  /** The account whose refresh token or code a token request carries (whatever its grant_type or validity). */
  accountFor(params: URLSearchParams): string | undefined {
    return (
      this.refresh.get(params.get('refresh_token') ?? '')?.accountId ??
      this.codes.get(params.get('code') ?? '')?.accountId
    );
  }

  /** POST /oauth2/token. `params` merges the query string and a form body; `authorization` may be HTTP Basic. */
  token(params: URLSearchParams, authorization: string | undefined): TokenOutcome {
    const grant = params.get('grant_type');
    const refreshToken = params.get('refresh_token') ?? '';
    const code = params.get('code') ?? '';
    const fail = (error: string, description: string): TokenOutcome => ({
      status: 400,
      body: { error, error_description: description },
      accountId: this.accountFor(params),
    });

    if (grant !== 'refresh_token' && grant !== 'authorization_code') {
      return fail(
        'unsupported_grant_type',
        grant === null ? 'Missing grant_type' : `Unsupported grant_type: ${JSON.stringify(grant)}`,
      );
    }
    const basic = /^Basic\s+(\S+)$/i.exec(authorization ?? '');
    const decoded = basic ? Buffer.from(basic[1] as string, 'base64').toString('utf8') : undefined;
    const clientId =
      decoded !== undefined ? decoded.slice(0, Math.max(0, decoded.indexOf(':'))) : params.get('client_id');
    const clientSecret = decoded !== undefined ? decoded.slice(decoded.indexOf(':') + 1) : params.get('client_secret');
    const verifier = params.get('code_verifier');
    const hasSecret = clientSecret !== null && clientSecret !== '';
    // Dropbox's own wording (seen on real refreshes without a secret, dropbox-sdk-rust#85). A code
    // exchange may prove the client with a PKCE code_verifier instead of the secret.
    if (!clientId || (!hasSecret && (grant === 'refresh_token' || verifier === null)))
      return fail('invalid request', 'No auth function available for given request');
    if (!this.apps.has(clientId) || (hasSecret && this.apps.get(clientId) !== clientSecret))
      return fail('invalid_client', 'Invalid client_id or client_secret');

    if (grant === 'refresh_token') {
      if (!REFRESH_TOKEN_PATTERN.test(refreshToken)) return fail('invalid_grant', 'refresh token is malformed');
      const r = this.refresh.get(refreshToken);
      if (!r || r.revoked || r.appKey !== clientId) return fail('invalid_grant', 'refresh token is invalid or revoked');
      const asked = params.get('scope')?.split(' ').filter(Boolean);
      const granted = r.scopes ?? ALL_SCOPES;
      const missing = asked?.find((s) => !granted.includes(s));
      if (missing !== undefined)
        return fail('invalid_scope', `Scope ${JSON.stringify(missing)} was not granted to this refresh token`);
      const access = this.mintAccess(r.accountId, asked ?? r.scopes, refreshToken);
      return {
        status: 200,
        body: { access_token: access, token_type: 'bearer', expires_in: this.ttlSeconds },
        accountId: r.accountId,
      };
    }

    const c = this.codes.get(code);
    if (!c || c.appKey !== clientId || c.expiresAtMs <= Date.now())
      return fail('invalid_grant', "code doesn't exist or has expired");
    // One attempt per code, as RFC 6749 §4.1.2 asks: a failed exchange burns it too.
    this.codes.delete(code);
    if ((c.redirectUri ?? null) !== params.get('redirect_uri')) return fail('invalid_grant', 'redirect_uri mismatch');
    if (c.codeChallenge !== undefined || verifier !== null) {
      if (c.codeChallenge === undefined) return fail('invalid_grant', 'code was not issued with a code_challenge');
      if (verifier === null) return fail('invalid_grant', 'code_verifier is required for this code');
      if (!CODE_VERIFIER_PATTERN.test(verifier) || !sameText(s256Challenge(verifier), c.codeChallenge))
        return fail('invalid_grant', 'invalid code_verifier');
    }
    const newRefresh = c.offline ? newOpaqueId(48) : undefined;
    if (newRefresh !== undefined)
      this.refresh.set(newRefresh, { accountId: c.accountId, appKey: c.appKey, scopes: c.scopes, revoked: false });
    const access = this.mintAccess(c.accountId, c.scopes, newRefresh);
    return {
      status: 200,
      body: {
        access_token: access,
        token_type: 'bearer',
        expires_in: this.ttlSeconds,
        ...(newRefresh === undefined ? {} : { refresh_token: newRefresh }),
        scope: (c.scopes ?? ALL_SCOPES).join(' '),
        uid: uidOf(c.accountId),
        account_id: c.accountId,
      },
      accountId: c.accountId,
    };
  }
}
