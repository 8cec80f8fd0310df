import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleAdmin } from './admin.js';
import { TokenBucketLimiter } from './rate-limit.js';
import { Args, ROUTES, type RouteSpec } from './routes.js';
import { EmulatorStore, type FileNode } from './store.js';
import { ApiFailure, authError, badInput, rateLimited, readBody, sendFailure, sendJson, sendText } from './wire.js';

export interface EmulatorAccountInit {
  token: string;
  /** Defaults to an id derived from the token. */
  accountId?: string;
}

export interface EmulatorOptions {
  /** 0 or unset = a free port. */
  port?: number;
  /** Per-token upload rate limit; unset = unlimited. */
  uploadsPerSecond?: number;
  accounts?: EmulatorAccountInit[];
  /** Unknown bearer tokens become new accounts (for the demo); default false → 401 invalid_access_token. */
  acceptAnyToken?: boolean;
}

export interface StoredFile {
  accountId: string;
  pathLower: string;
  pathDisplay: string;
  size: number;
  contentHash: string;
  rev: string;
  id: string;
  serverModified: string;
  /** Times content was written at this path; identical re-uploads do not count. */
  writes: number;
}

export interface EmulatorStats {
  /** Key `${route} ${status}`, e.g. "/2/files/upload 200". Admin requests are not counted. */
  requests: Record<string, number>;
  /** Upload requests received, whatever their outcome. */
  uploads: number;
  /** 429 responses sent. */
  rateLimited: number;
  filesWritten: number;
}

export interface DropboxEmulator {
  readonly url: string;
  addAccount(init: EmulatorAccountInit): string;
  setUploadsPerSecond(rate: number | undefined): void;
  files(accountId?: string): StoredFile[];
  stats(): EmulatorStats;
  stop(): Promise<void>;
}

/** RFC 6750 b64token; anything else is a malformed token (400), not an unknown one (401). */
export const BEARER_TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;
const RPC_BODY_LIMIT = 16 * 1024 * 1024;
const UPLOAD_CONTENT_TYPES = ['application/octet-stream', 'text/plain; charset=dropbox-cors-hack'];

/** Stable per token, shaped like a real account id ("dbid:" + 40 chars). */
function deriveAccountId(token: string): string {
  return `dbid:AA${createHash('sha256').update(token).digest('base64url').slice(0, 38)}`;
}

function toStoredFile(accountId: string, f: FileNode): StoredFile {
  return {
    accountId,
    pathLower: f.pathLower,
    pathDisplay: f.pathDisplay,
    size: f.size,
    contentHash: f.contentHash,
    rev: f.rev,
    id: f.id,
    serverModified: f.serverModified,
    writes: f.writes,
  };
}

/** An unparseable request target is treated as "/", which no route answers (404). */
function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://emulator');
  } catch {
    return new URL('/', 'http://emulator');
  }
}

class Emulator implements DropboxEmulator {
  url = '';
  private readonly server: Server;
  private readonly store = new EmulatorStore();
  private readonly limiter: TokenBucketLimiter;
  private readonly accountsByToken = new Map<string, string>();
  private readonly requestCounts = new Map<string, number>();
  private uploads = 0;
  private rateLimitedCount = 0;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: EmulatorOptions) {
    this.limiter = new TokenBucketLimiter(options.uploadsPerSecond);
    for (const account of options.accounts ?? []) this.addAccount(account);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  addAccount(init: EmulatorAccountInit): string {
    if (typeof init.token !== 'string' || !BEARER_TOKEN_PATTERN.test(init.token)) {
      throw new TypeError(`token must be a non-empty bearer token without spaces, got ${JSON.stringify(init.token)}`);
    }
    if (init.accountId !== undefined && (typeof init.accountId !== 'string' || init.accountId === '')) {
      throw new TypeError(`accountId must be a non-empty string, got ${JSON.stringify(init.accountId)}`);
    }
    const accountId = init.accountId ?? deriveAccountId(init.token);
    this.accountsByToken.set(init.token, accountId);
    this.store.space(accountId);
    return accountId;
  }

  setUploadsPerSecond(rate: number | undefined): void {
    this.limiter.setRate(rate);
  }

  files(accountId?: string): StoredFile[] {
    const ids = accountId === undefined ? this.store.accountIds().sort() : this.store.accountIds().filter((id) => id === accountId);
    return ids.flatMap((id) =>
      [...this.store.space(id).nodes.values()]
        .filter((n): n is FileNode => n.kind === 'file')
        .sort((a, b) => (a.pathLower < b.pathLower ? -1 : a.pathLower > b.pathLower ? 1 : 0))
        .map((f) => toStoredFile(id, f)),
    );
  }

  stats(): EmulatorStats {
    return {
      requests: Object.fromEntries(this.requestCounts),
      uploads: this.uploads,
      rateLimited: this.rateLimitedCount,
      filesWritten: this.store.filesWritten,
    };
  }

  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      // Keep-alive sockets from fetch would otherwise hold close() open until they time out.
      this.server.closeAllConnections();
    });
    return this.stopping;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let pathname: string | undefined;
    try {
      const url = requestUrl(req);
      pathname = url.pathname;
      if (pathname.startsWith('/__admin/')) return await handleAdmin(this, req, res, url);
      await this.handleApi(req, res, url);
    } catch (err) {
      // A client that hung up mid-body gets no answer and isn't counted as a request.
      if (res.headersSent || !req.complete) {
        res.destroy();
        return;
      }
      // Last resort: a bug in a handler must cost one request, not the whole emulator.
      sendText(res, 500, `Internal emulator error: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      if (pathname !== undefined && !pathname.startsWith('/__admin/') && res.headersSent) {
        const key = `${pathname} ${res.statusCode}`;
        this.requestCounts.set(key, (this.requestCounts.get(key) ?? 0) + 1);
      }
    }
  }

  private async handleApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = url.pathname.startsWith('/2/') ? url.pathname.slice(3) : url.pathname;
    const spec = ROUTES.get(route);
    if (spec?.style === 'upload') this.uploads++;
    const body = await readBody(req, { keep: spec?.style === 'rpc', hash: spec?.style === 'upload', maxKeep: RPC_BODY_LIMIT });
    try {
      if (!spec) throw new ApiFailure(404, `Unknown API function: "${route}"`);
      if (req.method !== 'POST') throw new ApiFailure(405, `Error in call to API function "${route}": Expected POST, got ${req.method ?? '?'}`, { Allow: 'POST' });
      const token = this.bearerToken(route, req, url);
      const accountId = this.authenticate(token);
      if (spec.style === 'upload') {
        const taken = this.limiter.take(token);
        if (!taken.ok) throw rateLimited(taken.retryAfterSeconds);
      }
      const args = this.parseArgs(route, spec, req, url, body.bytes, body.truncated);
      sendJson(res, 200, spec.handler({ route, accountId, args, body, store: this.store }));
    } catch (err) {
      if (!(err instanceof ApiFailure)) throw err;
      if (err.status === 429) this.rateLimitedCount++;
      sendFailure(res, err);
    }
  }

  private bearerToken(route: string, req: IncomingMessage, url: URL): string {
    const value = req.headers.authorization ?? url.searchParams.get('authorization') ?? '';
    if (value === '') throw badInput(route, 'Must provide HTTP header "Authorization" or URL parameter "authorization".');
    const match = /^Bearer\s+(.*)$/i.exec(value);
    if (!match) {
      throw badInput(route, `Invalid authorization value in HTTP header "Authorization": ${JSON.stringify(value.slice(0, 40))}.  Expecting "Bearer <oauth2-access-token>".`);
    }
    const token = (match[1] ?? '').trim();
    if (!BEARER_TOKEN_PATTERN.test(token)) throw badInput(route, 'The given OAuth 2 access token is malformed.');
    return token;
  }

  private authenticate(token: string): string {
    const known = this.accountsByToken.get(token);
    if (known !== undefined) return known;
    if (this.options.acceptAnyToken) return this.addAccount({ token });
    throw authError('invalid_access_token');
  }

  private parseArgs(route: string, spec: RouteSpec, req: IncomingMessage, url: URL, bytes: Buffer | undefined, truncated: boolean): Args {
    const contentType = (req.headers['content-type'] ?? '').trim();
    if (spec.style === 'upload') {
      if (!UPLOAD_CONTENT_TYPES.includes(contentType.toLowerCase())) {
        throw badInput(route, `Bad HTTP "Content-Type" header: ${JSON.stringify(contentType)}.  Expecting one of "application/octet-stream", "text/plain; charset=dropbox-cors-hack".`);
      }
      const header = req.headers['dropbox-api-arg'];
      const text = (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get('arg');
      if (text === null || text === undefined) throw badInput(route, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".');
      return Args.parse(route, 'HTTP header "Dropbox-API-Arg"', text);
    }
    if (truncated) throw badInput(route, 'request body: too large');
    const text = bytes?.toString('utf8') ?? '';
    const okType = /^application\/json\s*(;|$)/i.test(contentType) || contentType.toLowerCase() === 'text/plain; charset=dropbox-cors-hack';
    if (text !== '' && !okType) {
      throw badInput(route, `Bad HTTP "Content-Type" header: ${JSON.stringify(contentType)}.  Expecting one of "application/json", "application/json; charset=utf-8", "text/plain; charset=dropbox-cors-hack".`);
    }
    return Args.parse(route, 'request body', text);
  }
}

export async function startDropboxEmulator(options: EmulatorOptions = {}): Promise<DropboxEmulator> {
  const emulator = new Emulator(options);
  await emulator.listen(options.port ?? 0);
  return emulator;
}
