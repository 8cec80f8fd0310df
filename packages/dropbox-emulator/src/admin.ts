import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DropboxEmulator, QueuedFault } from './types.js';
import { readBody, sendBytes, sendJson } from './wire.js';

const ADMIN_BODY_LIMIT = 1024 * 1024;

class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function str(input: Record<string, unknown>, name: string): string {
  const v = input[name];
  if (typeof v !== 'string' || v === '') throw new AdminError(400, `${name} must be a non-empty string`);
  return v;
}

/**
 * `/__admin/*`: the DropboxEmulator methods over HTTP, for a demo or a separate process. Errors are
 * `{ "error": message }` JSON; admin calls are not counted in the API request stats.
 *
 *   GET  files[?account=ID]            stored files (size, content hash, rev, writes)
 *   GET  files/content?account=&path=  a file's bytes (404 when absent or not kept)
 *   GET  stats | POST stats/reset      request counts by route/status/account, tokens, bytes, commits
 *   GET  sessions[?account=ID|?id=SID] upload sessions with offsets and bytes received
 *   POST accounts {token?, accountId?, refreshToken?, appKey?, scopes?, name?, email?, config?, team?}
 *   POST apps {key, secret, name?}     register an OAuth app (name: shown on /oauth2/authorize)
 *   POST sign-in {account}             the account /oauth2/authorize shows as signed in (null: none)
 *   POST codes {accountId, appKey?, scopes?, redirectUri?} → {code}
 *   POST rate {uploadsPerSecond}       global per-token rate (null = unlimited)
 *   GET  config[?account=ID] | POST config {account?, ...AccountConfig}
 *   POST faults {account, faults: [{route?, fault, retryAfter?}]}
 *   POST tokens/expire {account} | POST tokens/revoke {account} | POST token-ttl {seconds}
 *   POST seed {seed}
 */
export async function handleAdmin(
  emulator: DropboxEmulator,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const body = await readBody(req, { keep: true, hash: false, maxKeep: ADMIN_BODY_LIMIT });
  const fail = (status: number, error: string): void => sendJson(res, status, { error });
  const route = `${req.method ?? ''} ${url.pathname}`;
  const q = (name: string): string | undefined => url.searchParams.get(name) ?? undefined;
  let input: Record<string, unknown> = {};
  if (req.method === 'POST') {
    try {
      input = JSON.parse(body.bytes?.toString('utf8') || '{}') as Record<string, unknown>;
      if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('not an object');
    } catch {
      return fail(400, 'request body must be a JSON object');
    }
  }
  try {
    switch (route) {
      case 'GET /__admin/files':
        return sendJson(res, 200, emulator.files(q('account')));
      case 'GET /__admin/files/content': {
        const bytes = emulator.fileContent(q('account') ?? '', q('path') ?? '');
        return bytes ? sendBytes(res, bytes, {}) : fail(404, 'no such file, or its content was not kept');
      }
      case 'GET /__admin/stats':
        return sendJson(res, 200, emulator.stats());
      case 'POST /__admin/stats/reset':
        emulator.resetStats();
        return sendJson(res, 200, {});
      case 'GET /__admin/sessions': {
        const id = q('id');
        if (id === undefined) return sendJson(res, 200, emulator.sessions(q('account')));
        const session = emulator.session(id);
        return session ? sendJson(res, 200, session) : fail(404, `no session ${id}`);
      }
      case 'POST /__admin/accounts': {
        const id = emulator.addAccount(input);
        return sendJson(res, 200, { token: input['token'], accountId: id, refreshToken: input['refreshToken'] });
      }
      case 'POST /__admin/apps':
        emulator.addApp({
          key: input['key'] as string,
          secret: input['secret'] as string,
          ...(input['name'] === undefined ? {} : { name: input['name'] as string }),
        });
        return sendJson(res, 200, { key: input['key'] });
      case 'POST /__admin/codes':
        return sendJson(res, 200, {
          code: emulator.mintAuthorizationCode({ ...input, accountId: str(input, 'accountId') }),
        });
      case 'POST /__admin/sign-in': {
        const account = input['account'];
        if (account !== null && (typeof account !== 'string' || account === ''))
          return fail(400, 'account must be a non-empty string or null');
        emulator.signIn(account ?? undefined);
        return sendJson(res, 200, { account });
      }
      case 'POST /__admin/rate': {
        const rate = input['uploadsPerSecond'];
        if (rate !== null && typeof rate !== 'number')
          return fail(400, 'uploadsPerSecond must be a positive number or null');
        emulator.setUploadsPerSecond(rate ?? undefined);
        return sendJson(res, 200, { uploadsPerSecond: rate });
      }
      case 'GET /__admin/config':
        return sendJson(res, 200, emulator.accountConfig(q('account')));
      case 'POST /__admin/config': {
        const { account, ...patch } = input;
        if (account === undefined) return sendJson(res, 200, emulator.configureDefaults(patch));
        return sendJson(res, 200, emulator.configureAccount(str(input, 'account'), patch));
      }
      case 'POST /__admin/faults': {
        const faults = input['faults'] as QueuedFault[];
        emulator.queueFaults(str(input, 'account'), faults);
        return sendJson(res, 200, { queued: faults.length });
      }
      case 'POST /__admin/tokens/expire':
        return sendJson(res, 200, { expired: emulator.expireAccessTokens(str(input, 'account')) });
      case 'POST /__admin/tokens/revoke':
        emulator.revokeTokens(str(input, 'account'));
        return sendJson(res, 200, {});
      case 'POST /__admin/token-ttl':
        emulator.setAccessTokenTtl(input['seconds'] as number);
        return sendJson(res, 200, { seconds: input['seconds'] });
      case 'POST /__admin/seed':
        emulator.setSeed(input['seed'] as number);
        return sendJson(res, 200, { seed: input['seed'] });
      default:
        return fail(404, `no admin route ${route}`);
    }
  } catch (err) {
    // The emulator's methods throw on invalid input, which is the caller's fault.
    return fail(err instanceof AdminError ? err.status : 400, err instanceof Error ? err.message : String(err));
  }
}
