import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleAdmin } from './admin.js';
import { BEARER_TOKEN_PATTERN, handleApi, handleToken, type ApiHost, type Counters } from './api.js';
import { DEFAULT_CODE_TTL_SECONDS, TokenRegistry } from './auth.js';
import { handleAuthorize, type AuthorizeHost } from './authorize.js';
import { AccountState, emptyAccountStats, type BatchJob, type EmulatorCore } from './context.js';
import {
  BUILTIN_CONFIG,
  mergeConfig,
  Rng,
  validateConfig,
  validateQueuedFaults,
  type EffectiveConfig,
} from './faults.js';
import {
  checkScopes,
  DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_REQUEST_BYTES,
  DEFAULT_SESSION_TTL_SECONDS,
  deriveAccountId,
  positive,
  Sleeper,
  toStoredFile,
} from './options.js';
import { checkTeam } from './path-root.js';
import { contentHash } from './content-hash.js';
import { DiskStore, MemoryContentStore } from './persist.js';
import { TokenBucketLimiter } from './rate-limit.js';
import { SessionStore } from './sessions.js';
import { EmulatorStore, type FileNode } from './store.js';
import type {
  AccountConfig,
  AuthorizationCodeInit,
  DropboxEmulator,
  EmulatorAccountInit,
  EmulatorAppInit,
  EmulatorOptions,
  EmulatorStats,
  QueuedFault,
  SessionInfo,
  StoredFile,
} from './types.js';
import { readBody, sendText } from './wire.js';

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
  private readonly store: EmulatorStore;
  private readonly disk: DiskStore | undefined;
  private readonly tokens: TokenRegistry;
  private readonly limiter: TokenBucketLimiter;
  private readonly rng: Rng;
  private readonly sessionStore: SessionStore;
  private readonly accounts = new Map<string, AccountState>();
  private readonly sleeper = new Sleeper();
  private defaults: AccountConfig = {};
  private counters: Counters = { requests: new Map(), uploads: 0, rateLimited: 0, tokenRequests: 0 };
  private readonly core: EmulatorCore;
  private readonly host: ApiHost;
  private readonly authorizeHost: AuthorizeHost;
  private signedInAccount: string | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: EmulatorOptions) {
    this.limiter = new TokenBucketLimiter(options.uploadsPerSecond);
    this.tokens = new TokenRegistry(
      positive('accessTokenTtlSeconds', options.accessTokenTtlSeconds, DEFAULT_ACCESS_TOKEN_TTL_SECONDS),
      positive('authorizationCodeTtlSeconds', options.authorizationCodeTtlSeconds, DEFAULT_CODE_TTL_SECONDS),
    );
    this.rng = new Rng(options.seed ?? randomBytes(4).readUInt32BE(0));
    const keepContent = options.keepContent ?? true;
    this.sessionStore = new SessionStore(
      positive('sessionTtlSeconds', options.sessionTtlSeconds, DEFAULT_SESSION_TTL_SECONDS, false) * 1000,
      keepContent,
    );
    this.disk = options.storeDir === undefined ? undefined : new DiskStore(options.storeDir);
    const disk = this.disk;
    const contents = !keepContent ? undefined : (disk ?? new MemoryContentStore());
    this.store = new EmulatorStore(contents, disk ? (accountId, node) => disk.record(accountId, node) : undefined);
    for (const line of disk?.load() ?? []) this.store.restore(line.a, line.n);
    if (options.defaults) this.defaults = { ...validateConfig(options.defaults) };
    this.core = {
      store: this.store,
      sessions: this.sessionStore,
      jobs: new Map<string, BatchJob>(),
      rng: this.rng,
      keepContent,
      maxRequestBytes: positive('maxRequestBytes', options.maxRequestBytes, DEFAULT_MAX_REQUEST_BYTES),
      maxFileBytes: positive('maxFileBytes', options.maxFileBytes, DEFAULT_MAX_FILE_BYTES),
      config: (accountId) => this.effective(accountId),
      revokeToken: (token) => this.tokens.revokeAccessToken(token),
      sleep: (ms) => this.sleeper.sleep(ms),
    };
    this.host = {
      core: this.core,
      tokens: this.tokens,
      limiter: this.limiter,
      acceptAnyToken: options.acceptAnyToken ?? false,
      counters: this.counters,
      account: (id) => this.account(id),
      addAccount: (init) => this.addAccount(init),
    };
    this.authorizeHost = {
      tokens: this.tokens,
      accounts: () => [...this.accounts.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      signedIn: () => this.signedInAccount,
      mintAuthorizationCode: (init) => this.mintAuthorizationCode(init),
    };
    for (const app of options.apps ?? []) this.addApp(app);
    for (const account of options.accounts ?? []) this.addAccount(account);
    for (const code of options.authorizationCodes ?? []) this.mintAuthorizationCode(code);
    if (options.signedInAccount !== undefined) this.signIn(options.signedInAccount);
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

  private account(id: string): AccountState {
    let account = this.accounts.get(id);
    if (!account) {
      account = new AccountState(id);
      this.accounts.set(id, account);
    }
    return account;
  }

  private effective(accountId?: string): EffectiveConfig {
    const global: AccountConfig = { uploadsPerSecond: this.limiter.uploadsPerSecond ?? null };
    const own = accountId === undefined ? {} : (this.accounts.get(accountId)?.config ?? {});
    return mergeConfig(BUILTIN_CONFIG, global, this.defaults, own) as EffectiveConfig;
  }

  addAccount(init: EmulatorAccountInit): string {
    if (init.token !== undefined && (typeof init.token !== 'string' || !BEARER_TOKEN_PATTERN.test(init.token))) {
      throw new TypeError(`token must be a non-empty bearer token without spaces, got ${JSON.stringify(init.token)}`);
    }
    if (init.accountId !== undefined && (typeof init.accountId !== 'string' || init.accountId === '')) {
      throw new TypeError(`accountId must be a non-empty string, got ${JSON.stringify(init.accountId)}`);
    }
    const seed = init.token ?? init.refreshToken;
    if (seed === undefined && init.accountId === undefined)
      throw new TypeError('an account needs a token, a refreshToken or an accountId');
    const accountId = init.accountId ?? deriveAccountId(seed as string);
    const config = init.config === undefined ? undefined : validateConfig(init.config);
    const scopes = checkScopes(init.scopes);
    const team = init.team === undefined ? undefined : checkTeam(init.team);
    const account = this.accounts.get(accountId);
    const granted = scopes ?? account?.scopes;
    if (init.refreshToken !== undefined) this.tokens.addRefresh(init.refreshToken, accountId, init.appKey, granted);
    const state = this.account(accountId);
    state.scopes = granted;
    if (init.name !== undefined) state.name = init.name;
    if (init.email !== undefined) state.email = init.email;
    if (team !== undefined) state.team = team;
    if (config) state.config = mergeConfig(state.config, config);
    if (init.token !== undefined) this.tokens.addStatic(init.token, accountId, granted);
    this.store.space(accountId);
    return accountId;
  }

  addApp(app: EmulatorAppInit): void {
    this.tokens.addApp(app?.key, app?.secret, app?.name);
  }

  signIn(accountId: string | undefined): void {
    if (accountId !== undefined && (typeof accountId !== 'string' || accountId === ''))
      throw new TypeError(`accountId must be a non-empty string, got ${JSON.stringify(accountId)}`);
    if (accountId !== undefined) this.account(accountId);
    this.signedInAccount = accountId;
  }

  mintAuthorizationCode(init: AuthorizationCodeInit): string {
    if (typeof init?.accountId !== 'string' || init.accountId === '') throw new TypeError('accountId is required');
    const scopes = checkScopes(init.scopes);
    return this.tokens.mintCode({ ...init, ...(scopes ? { scopes } : {}) }, this.account(init.accountId).scopes);
  }

  setUploadsPerSecond(rate: number | undefined): void {
    this.limiter.setRate(rate);
  }

  configureAccount(accountId: string, patch: AccountConfig): EffectiveConfig {
    const valid = validateConfig(patch);
    const account = this.account(accountId);
    account.config = mergeConfig(account.config, valid);
    return this.effective(accountId);
  }

  configureDefaults(patch: AccountConfig): EffectiveConfig {
    this.defaults = mergeConfig(this.defaults, validateConfig(patch));
    return this.effective();
  }

  accountConfig(accountId?: string): EffectiveConfig {
    return this.effective(accountId);
  }

  queueFaults(accountId: string, faults: QueuedFault[]): void {
    this.account(accountId).queue.push(...validateQueuedFaults(faults));
  }

  expireAccessTokens(accountId: string): number {
    return this.tokens.expire(accountId);
  }

  revokeTokens(accountId: string): void {
    this.tokens.revoke(accountId);
  }

  setAccessTokenTtl(seconds: number): void {
    this.tokens.ttlSeconds = positive('accessTokenTtlSeconds', seconds, DEFAULT_ACCESS_TOKEN_TTL_SECONDS);
  }

  setSeed(seed: number): void {
    if (!Number.isInteger(seed)) throw new TypeError(`seed must be an integer, got ${String(seed)}`);
    this.rng.reseed(seed);
  }

  files(accountId?: string): StoredFile[] {
    const ids =
      accountId === undefined
        ? this.store.accountIds().sort()
        : this.store.accountIds().filter((id) => id === accountId);
    return ids.flatMap((id) =>
      [...this.store.space(id).nodes.values()]
        .filter((n): n is FileNode => n.kind === 'file')
        .sort((a, b) => (a.pathLower < b.pathLower ? -1 : a.pathLower > b.pathLower ? 1 : 0))
        .map((f) => toStoredFile(id, f)),
    );
  }

  fileContent(accountId: string, path: string): Buffer | undefined {
    const node = this.store.lookup(accountId, path.toLowerCase());
    return node?.kind === 'file' ? this.store.contentOf(node) : undefined;
  }

  putFile(accountId: string, path: string, content: Buffer | string): StoredFile {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const result = this.store.write(accountId, {
      path,
      mode: { kind: 'overwrite' },
      autorename: false,
      strictConflict: false,
      clientModified: undefined,
      size: bytes.byteLength,
      contentHash: contentHash(bytes),
      content: bytes,
    });
    if (!result.ok) throw new TypeError(`cannot put a file at ${path}: ${JSON.stringify(result.reason)}`);
    return toStoredFile(accountId, result.file);
  }

  removeFile(accountId: string, path: string): boolean {
    return this.store.remove(accountId, path.toLowerCase());
  }

  sessions(accountId?: string): SessionInfo[] {
    return this.sessionStore.list(accountId);
  }

  session(sessionId: string): SessionInfo | undefined {
    return this.sessionStore.info(sessionId);
  }

  stats(): EmulatorStats {
    const c = this.counters;
    return {
      requests: Object.fromEntries(c.requests),
      uploads: c.uploads,
      rateLimited: c.rateLimited,
      filesWritten: this.store.filesWritten,
      tokenRequests: c.tokenRequests,
      accounts: Object.fromEntries(
        [...this.accounts].map(([id, a]) => [
          id,
          { ...a.stats, requests: { ...a.stats.requests }, faults: { ...a.stats.faults } },
        ]),
      ),
    };
  }

  resetStats(): void {
    const c = this.counters;
    c.requests.clear();
    c.uploads = 0;
    c.rateLimited = 0;
    c.tokenRequests = 0;
    for (const a of this.accounts.values()) a.stats = emptyAccountStats();
  }

  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve, reject) => {
      this.sleeper.wakeAll();
      this.server.close((err) => {
        this.disk?.close();
        if (err) reject(err);
        else resolve();
      });
      // Keep-alive sockets from fetch, and stalled responses, would otherwise hold close() open.
      this.server.closeAllConnections();
    });
    return this.stopping;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = requestUrl(req);
      if (url.pathname.startsWith('/__admin/')) return await handleAdmin(this, req, res, url);
      if (url.pathname === '/oauth2/token') return await handleToken(this.host, req, res, url);
      if (url.pathname === '/oauth2/authorize') return await handleAuthorize(this.authorizeHost, req, res, url);
      if (url.pathname.startsWith('/2/')) return await handleApi(this.host, req, res, url);
      await readBody(req, { keep: false, hash: false, maxKeep: 0 });
      sendText(res, 404, `Unknown path: ${url.pathname}`);
    } catch (err) {
      // A client that hung up mid-body gets no answer.
      if (res.headersSent || !req.complete) {
        res.destroy();
        return;
      }
      // Last resort: a bug in a handler must cost one request, not the whole emulator.
      sendText(res, 500, `Internal emulator error: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** Starts an emulator on 127.0.0.1 (on `options.port`, or a free port) and resolves once it listens at `url`. */
export async function startDropboxEmulator(options: EmulatorOptions = {}): Promise<DropboxEmulator> {
  const emulator = new Emulator(options);
  await emulator.listen(options.port ?? 0);
  return emulator;
}
