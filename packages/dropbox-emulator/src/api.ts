import type { IncomingMessage, ServerResponse } from 'node:http';
import { Args } from './args.js';
import type { AccessTokenInfo, TokenRegistry } from './auth.js';
import { bump, ContentResult, type AccountState, type EmulatorCore, type RouteSpec } from './context.js';
import { dataTransportExceeded, drawFault, faultApplies, tooManyRequests, type FaultDecision } from './faults.js';
import type { TokenBucketLimiter } from './rate-limit.js';
import { resolvePathRoot } from './path-root.js';
import { buffersBody, ROUTES } from './routes.js';
import {
  ApiFailure,
  authError,
  badInput,
  headerSafeJson,
  newRequestId,
  readBody,
  sendContent,
  sendFailure,
  sendJson,
  type ReadBody,
} from './wire.js';

/** RFC 6750 b64token; anything else is a malformed token (400), not an unknown one (401). */
export const BEARER_TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;
const RPC_BODY_LIMIT = 16 * 1024 * 1024;
const TOKEN_BODY_LIMIT = 64 * 1024;
const UPLOAD_CONTENT_TYPES = ['application/octet-stream', 'text/plain; charset=dropbox-cors-hack'];

export interface Counters {
  requests: Map<string, number>;
  uploads: number;
  rateLimited: number;
  tokenRequests: number;
}

/** What the request pipeline needs from the emulator. */
export interface ApiHost {
  readonly core: EmulatorCore;
  readonly tokens: TokenRegistry;
  readonly limiter: TokenBucketLimiter;
  readonly acceptAnyToken: boolean;
  readonly counters: Counters;
  account(accountId: string): AccountState;
  addAccount(init: { token: string }): string;
}

function bearerToken(route: string, req: IncomingMessage, url: URL): string {
  const value = req.headers.authorization ?? url.searchParams.get('authorization') ?? '';
  if (value === '') throw badInput(route, 'Must provide HTTP header "Authorization" or URL parameter "authorization".');
  const match = /^Bearer\s+(.*)$/i.exec(value);
  if (!match) {
    throw badInput(
      route,
      `Invalid authorization value in HTTP header "Authorization": ${JSON.stringify(value.slice(0, 40))}.  Expecting "Bearer <oauth2-access-token>".`,
    );
  }
  const token = (match[1] ?? '').trim();
  if (!BEARER_TOKEN_PATTERN.test(token)) throw badInput(route, 'The given OAuth 2 access token is malformed.');
  return token;
}

/** The token's record; unknown tokens become accounts only with acceptAnyToken. */
function lookupToken(host: ApiHost, token: string): AccessTokenInfo | undefined {
  const info = host.tokens.access.get(token);
  if (info || !host.acceptAnyToken) return info;
  host.addAccount({ token });
  return host.tokens.access.get(token);
}

/** 401s for tokens that exist but can't be used; their requests still count for the account. */
function checkToken(info: AccessTokenInfo | undefined, spec: RouteSpec): asserts info is AccessTokenInfo {
  if (!info || info.revoked) throw authError('invalid_access_token');
  if (info.expiresAtMs !== undefined && Date.now() >= info.expiresAtMs) throw authError('expired_access_token');
  if (spec.scope !== undefined && info.scopes !== undefined && !info.scopes.includes(spec.scope)) {
    throw authError('missing_scope', { required_scope: spec.scope });
  }
}

function headerArg(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers['dropbox-api-arg'];
  return (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get('arg') ?? undefined;
}

function parseArgs(route: string, spec: RouteSpec, req: IncomingMessage, url: URL, body: ReadBody): Args {
  const contentType = (req.headers['content-type'] ?? '').trim();
  if (spec.style !== 'rpc') {
    if (spec.style === 'upload' && !UPLOAD_CONTENT_TYPES.includes(contentType.toLowerCase())) {
      throw badInput(
        route,
        `Bad HTTP "Content-Type" header: ${JSON.stringify(contentType)}.  Expecting one of "application/octet-stream", "text/plain; charset=dropbox-cors-hack".`,
      );
    }
    const text = headerArg(req, url);
    if (text === undefined) throw badInput(route, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".');
    return Args.parse(route, 'HTTP header "Dropbox-API-Arg"', text);
  }
  if (body.truncated) throw badInput(route, 'request body: too large');
  const text = body.bytes?.toString('utf8') ?? '';
  const okType =
    /^application\/json\s*(;|$)/i.test(contentType) ||
    contentType.toLowerCase() === 'text/plain; charset=dropbox-cors-hack';
  if (text !== '' && !okType) {
    throw badInput(
      route,
      `Bad HTTP "Content-Type" header: ${JSON.stringify(contentType)}.  Expecting one of "application/json", "application/json; charset=utf-8", "text/plain; charset=dropbox-cors-hack".`,
    );
  }
  return spec.noArgs ? Args.none(route, 'request body', text) : Args.parse(route, 'request body', text);
}

/** Per-session byte counts, taken before anything can refuse the request (refused bytes were still sent). */
function noteSessionBytes(
  host: ApiHost,
  route: string,
  argText: string | undefined,
  accountId: string,
  size: number,
): void {
  if (route !== 'files/upload_session/append_v2' && route !== 'files/upload_session/finish') return;
  try {
    const id = (JSON.parse(argText ?? '') as { cursor?: { session_id?: unknown } } | null)?.cursor?.session_id;
    if (typeof id === 'string') host.core.sessions.get(accountId, id)?.note(size);
  } catch {
    // Unparseable args get their 400 later; there is no session to charge.
  }
}

/** Resolves when the client hangs up (or stop() closes the connection). */
function untilClosed(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (res.destroyed || req.socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => res.once('close', () => resolve()));
}

/**
 * Carries out the parts of a fault decision that don't produce an ordinary answer. Returns the
 * pseudo-status to count ("reset", "stalled") when the request is over, or throws the failure.
 */
async function injectFault(
  decision: FaultDecision,
  account: AccountState,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<string | undefined> {
  if (decision.kind === 'none') return undefined;
  if (decision.kind === 'fail') {
    bump(account.stats.faults, decision.label);
    throw decision.failure;
  }
  bump(account.stats.faults, decision.kind);
  if (decision.kind === 'reset') {
    res.destroy();
    return 'reset';
  }
  await untilClosed(req, res);
  return 'stalled';
}

function count(
  host: ApiHost,
  account: AccountState | undefined,
  pathname: string,
  res: ServerResponse,
  outcome: string | undefined,
): void {
  if (outcome === undefined && !res.headersSent) return;
  const key = `${pathname} ${outcome ?? res.statusCode}`;
  host.counters.requests.set(key, (host.counters.requests.get(key) ?? 0) + 1);
  if (account) bump(account.stats.requests, key);
}

function fail(host: ApiHost, account: AccountState | undefined, res: ServerResponse, err: unknown): void {
  if (!(err instanceof ApiFailure)) throw err;
  if (err.status === 429) {
    host.counters.rateLimited++;
    if (account) account.stats.rateLimited++;
  }
  sendFailure(res, err);
}

/**
 * Ends a request's bookkeeping. A lost response was processed; destroying the connection instead
 * of answering is the fault.
 */
function settle(
  host: ApiHost,
  account: AccountState | undefined,
  pathname: string,
  res: ServerResponse,
  outcome: string | undefined,
  loseResponse: boolean,
): void {
  if (loseResponse && account) {
    bump(account.stats.faults, 'lost_response');
    res.destroy();
    outcome = 'lost';
  }
  count(host, account, pathname, res, outcome);
}

export async function handleApi(host: ApiHost, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const route = url.pathname.slice('/2/'.length);
  const spec = ROUTES.get(route);
  res.setHeader('X-Dropbox-Request-Id', newRequestId());
  if (spec?.limited) host.counters.uploads++;
  const keep = spec?.style === 'rpc' || buffersBody(route, host.core.keepContent);
  const maxKeep = spec?.style === 'rpc' ? RPC_BODY_LIMIT : host.core.maxRequestBytes;
  const body = await readBody(req, { keep, hash: route === 'files/upload', maxKeep });
  let account: AccountState | undefined;
  let outcome: string | undefined;
  let loseResponse = false;
  try {
    if (!spec) throw new ApiFailure(404, `Unknown API function: "${route}"`);
    if (req.method !== 'POST')
      throw new ApiFailure(405, `Error in call to API function "${route}": Expected POST, got ${req.method ?? '?'}`, {
        Allow: 'POST',
      });
    const token = bearerToken(route, req, url);
    const info = lookupToken(host, token);
    if (info) {
      account = host.account(info.accountId);
      account.stats.bytesReceived += body.size;
    }
    checkToken(info, spec);
    const accountId = info.accountId;
    const owner = host.account(accountId);
    noteSessionBytes(host, route, headerArg(req, url), accountId, body.size);
    const cfg = host.core.config(accountId);
    const decision = drawFault(cfg, host.core.rng, route, owner.queue);
    if (faultApplies(cfg, route)) await host.core.sleep(cfg.latencyMs);
    outcome = await injectFault(decision, owner, req, res);
    if (outcome !== undefined) return;
    loseResponse = decision.kind === 'none' && decision.loseResponse;
    // Every upload route counts as a data transport call; over the quota none of them work.
    if (spec.limited && cfg.dataTransportExceeded) throw dataTransportExceeded();
    if (spec.limited) {
      const taken = host.limiter.take(token, cfg.uploadsPerSecond, cfg.burst);
      if (!taken.ok) throw tooManyRequests(cfg, host.core.rng, taken.retryAfterSeconds);
    }
    const args = parseArgs(route, spec, req, url, body);
    const pathRoot = req.headers['dropbox-api-path-root'];
    const spaceId = resolvePathRoot(route, owner, Array.isArray(pathRoot) ? pathRoot[0] : pathRoot);
    const result = await spec.handler({
      route,
      accountId,
      spaceId,
      account: owner,
      token,
      args,
      body,
      core: host.core,
    });
    if (loseResponse) return;
    if (result instanceof ContentResult)
      sendContent(req, res, result.bytes, { 'Dropbox-API-Result': headerSafeJson(result.result) });
    else sendJson(res, 200, result);
  } catch (err) {
    if (!loseResponse) fail(host, account, res, err);
    else if (!(err instanceof ApiFailure)) throw err;
  } finally {
    settle(host, account, url.pathname, res, outcome, loseResponse);
  }
}

/** POST /oauth2/token: parameters from the query string (the SDK's way) and/or a form body. */
export async function handleToken(host: ApiHost, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const body = await readBody(req, { keep: true, hash: false, maxKeep: TOKEN_BODY_LIMIT });
  res.setHeader('X-Dropbox-Request-Id', newRequestId());
  host.counters.tokenRequests++;
  let account: AccountState | undefined;
  let outcome: string | undefined;
  let loseResponse = false;
  try {
    if (req.method !== 'POST') throw new ApiFailure(405, 'Method Not Allowed', { Allow: 'POST' });
    const params = new URLSearchParams(url.search);
    if (
      /^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '') &&
      body.bytes &&
      body.bytes.length > 0
    ) {
      for (const [k, v] of new URLSearchParams(body.bytes.toString('utf8'))) params.set(k, v);
    }
    const accountId = host.tokens.accountFor(params);
    if (accountId !== undefined) {
      account = host.account(accountId);
      account.stats.tokenRequests++;
      account.stats.bytesReceived += body.size;
      const cfg = host.core.config(accountId);
      const decision = drawFault(cfg, host.core.rng, 'oauth2/token', account.queue);
      if (faultApplies(cfg, 'oauth2/token')) await host.core.sleep(cfg.latencyMs);
      outcome = await injectFault(decision, account, req, res);
      if (outcome !== undefined) return;
      loseResponse = decision.kind === 'none' && decision.loseResponse;
    }
    const answer = host.tokens.token(params, req.headers.authorization);
    if (loseResponse) return;
    sendJson(res, answer.status, answer.body);
  } catch (err) {
    if (!loseResponse) fail(host, account, res, err);
  } finally {
    settle(host, account, url.pathname, res, outcome, loseResponse);
  }
}
