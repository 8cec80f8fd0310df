/** The types of the emulator's public API; index.ts re-exports all of them. */

/** How overlapping commits to one account are answered (see AccountConfig.writeContention). */
export type WriteContentionMode = 'none' | '429' | '409';

/** 5xx statuses the fault injector can answer with. */
export type ServerErrorStatus = 500 | 502 | 503 | 504;

/**
 * Per-account behaviour and fault injection. Every field is optional: an unset field inherits
 * the emulator-wide defaults (`EmulatorOptions.defaults`, `configureDefaults`). Shares are
 * probabilities 0..1, drawn from the emulator's seedable PRNG.
 */
export interface AccountConfig {
  /** Requests per second per access token on upload routes; null = unlimited; unset = the global rate. */
  uploadsPerSecond?: number | null;
  /** Token-bucket capacity; unset = max(1, rate). */
  burst?: number | null;
  /**
   * What an overlapping commit (files/upload, upload_session/finish, finish_batch, finish_batch_v2)
   * gets: 'none' = allowed (only counted); '429' = 429 too_many_write_operations + Retry-After: 1;
   * '409' = the route's own too_many_write_operations error (finish_batch: failed entries).
   */
  writeContention?: WriteContentionMode;
  /** '409' mode, finish_batch*: the share of otherwise successful entries that fail. Default 1. */
  batchContentionShare?: number;
  /** Extra time a commit holds the account's write lock. Default 0. */
  commitLatencyMs?: number;
  /** Bytes the account may hold; null = unlimited. Over it: 409 path/insufficient_space. */
  quotaBytes?: number | null;
  /**
   * The team has used up its monthly Data Transport quota: every upload route (files/upload,
   * upload_session/*, finish_batch*) answers 403 invalid_account_type/feature. Default false.
   */
  dataTransportExceeded?: boolean;
  /** Added before every API answer. Default 0. */
  latencyMs?: number;
  /** Share of API requests answered with a 5xx from `serverErrorStatuses`. */
  serverErrorShare?: number;
  /** Default [500, 503, 504]: 500 empty, 502/504 HTML, 503 envoy text. */
  serverErrorStatuses?: ServerErrorStatus[];
  /** Retry-After seconds on injected 503s; null = none. */
  serverErrorRetryAfter?: number | null;
  /** Share of requests whose connection is destroyed before they are processed. */
  resetShare?: number;
  /** Share of requests that are processed, after which the connection is destroyed (lost response). */
  lostResponseShare?: number;
  /** Share of requests that are never answered (until the client gives up or the emulator stops). */
  stallShare?: number;
  /** Share of requests answered 429 too_many_requests regardless of the rate. */
  tooManyRequestsShare?: number;
  /** Share of too_many_requests 429s sent as text/plain instead of JSON. */
  plainText429Share?: number;
  /** Share of 429s sent without Retry-After and without a body retry_after. */
  noRetryAfterShare?: number;
  /**
   * Routes ("files/upload", "files/upload_session/finish", "oauth2/token", …) the random faults
   * and the added latency apply to; null/unset = every /2/ route (not oauth2/token).
   */
  faultRoutes?: string[] | null;
}

/** One scripted fault, consumed by the next matching request of the account. */
export interface QueuedFault {
  /** Route name as in faultRoutes; unset = any /2/ route. */
  route?: string;
  fault:
    | 500
    | 502
    | 503
    | 504
    | 'reset'
    | 'lost_response'
    | 'stall'
    | 'too_many_requests'
    | 'too_many_requests_text'
    | 'too_many_write_operations';
  /** Retry-After for 429s and 503; unset = 1 for 429s, none for 503. */
  retryAfter?: number;
}

export interface EmulatorAccountInit {
  /** A static access token that never expires (but can be expired or revoked through the emulator). */
  token?: string;
  /** Defaults to an id derived from the token (or the refresh token). */
  accountId?: string;
  /** An offline refresh token for `appKey`; the SDK trades it for short-lived `sl.` tokens. */
  refreshToken?: string;
  /** App the refresh token belongs to; may be omitted when exactly one app is registered. */
  appKey?: string;
  /** Scopes granted to this account's tokens; unset = all (e.g. files.content.write). */
  scopes?: string[];
  /** For users/get_current_account. */
  name?: string;
  email?: string;
  /** Per-account behaviour; merged over any earlier configuration of the same account. */
  config?: AccountConfig;
  /**
   * A member of a team with a team space: `root_info` is a TeamRootInfo whose root namespace (the
   * team space) differs from the member's home namespace, and requests with
   * `Dropbox-API-Path-Root: {".tag": "root", "root": rootNamespaceId}` read and write the team
   * space. Its files are listed under the account id `ns:<rootNamespaceId>`. Unset: a plain user.
   */
  team?: EmulatorTeamInit;
}

export interface EmulatorTeamInit {
  /** The team space's namespace id, shared by every member of the team. */
  rootNamespaceId: string;
  /** Where the member's home folder sits in the team space. @default "/<name or account id>" */
  homePath?: string;
}

export interface EmulatorAppInit {
  key: string;
  secret: string;
  /** Shown on the /oauth2/authorize page; defaults to the key. */
  name?: string;
}

export interface AuthorizationCodeInit {
  accountId: string;
  /** May be omitted when exactly one app is registered. */
  appKey?: string;
  /** Scopes of the resulting tokens; unset = the account's scopes. */
  scopes?: string[];
  /** When set, the exchange must send the same redirect_uri. */
  redirectUri?: string;
  /** The code itself (URL-safe); unset = a random one. */
  code?: string;
  /** PKCE: base64url(SHA-256(code_verifier)); when set, the exchange must send the matching code_verifier. */
  codeChallenge?: string;
  /** 'online' = the exchange returns no refresh token; unset or 'offline' = it does. */
  tokenAccessType?: 'offline' | 'online';
}

export interface EmulatorOptions {
  /** 0 or unset = a free port. */
  port?: number;
  /** Per-token upload rate limit; unset = unlimited. */
  uploadsPerSecond?: number;
  accounts?: EmulatorAccountInit[];
  /** Unknown bearer tokens become new accounts (for the demo); default false → 401 invalid_access_token. */
  acceptAnyToken?: boolean;
  /** OAuth apps (app key + secret) that may call /oauth2/token. */
  apps?: EmulatorAppInit[];
  /** Authorization codes to accept from the start (each single-use, valid 10 minutes). */
  authorizationCodes?: AuthorizationCodeInit[];
  /** How long an authorization code stays valid. Default 600. */
  authorizationCodeTtlSeconds?: number;
  /**
   * The account the /oauth2/authorize page starts with as the signed-in one (the person can pick
   * another from the page's list); unset = the page asks, preselecting the first account.
   */
  signedInAccount?: string;
  /** Defaults for every account's AccountConfig. */
  defaults?: AccountConfig;
  /** Lifetime of minted access tokens (expires_in). Default 14400. */
  accessTokenTtlSeconds?: number;
  /** Upload sessions expire after this. Default 7 days. */
  sessionTtlSeconds?: number;
  /** Keep file bytes so files/download works. Default true; false only hashes (for big demo runs). */
  keepContent?: boolean;
  /** Largest request body accepted by upload routes. Default 150 MiB (payload_too_large above). */
  maxRequestBytes?: number;
  /** Largest file an upload session may build. Default 2^41 − 2^22 (too_large above). */
  maxFileBytes?: number;
  /** Persist files (journal + content blobs) here and reload them on start. */
  storeDir?: string;
  /** Seed for the fault PRNG; unset = random. */
  seed?: number;
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

export interface AccountStats {
  /** Key `${path} ${status}` as in EmulatorStats.requests; faults use "reset", "stalled", "lost". */
  requests: Record<string, number>;
  /** POST /oauth2/token calls naming this account's refresh token or code, whatever the outcome. */
  tokenRequests: number;
  /** Request-body bytes received from this account's tokens, on every route, whatever the outcome. */
  bytesReceived: number;
  /** Commit attempts (upload, finish, finish_batch, finish_batch_v2), including refused ones. */
  commits: number;
  /** Most commits in flight at once; 1 means commits never overlapped. */
  maxConcurrentCommits: number;
  /** too_many_write_operations answers: 429s, 409s and failed batch entries. */
  writeContention: number;
  /** 429 answers of any reason. */
  rateLimited: number;
  /** Injected faults by kind ("500", "503", "reset", "stall", "lost_response", "too_many_requests", …). */
  faults: Record<string, number>;
}

export interface EmulatorStats {
  /**
   * Key `${route} ${status}`, e.g. "/2/files/upload 200" or "/oauth2/token 400"; requests ended by
   * a fault count as "… reset", "… stalled" or "… lost". Admin requests are not counted.
   */
  requests: Record<string, number>;
  /** Requests to upload routes (files/upload, files/upload_session/* except finish_batch/check), whatever their outcome. */
  uploads: number;
  /** 429 responses sent. */
  rateLimited: number;
  filesWritten: number;
  /** All POST /oauth2/token requests. */
  tokenRequests: number;
  accounts: Record<string, AccountStats>;
}

export interface SessionInfo {
  sessionId: string;
  accountId: string;
  type: 'sequential' | 'concurrent';
  /** expired: older than the session TTL (then not_found); its data is gone. */
  state: 'open' | 'closed' | 'committed' | 'expired';
  /** Bytes accepted into the session (the offset; for concurrent sessions the sum of pieces). */
  offset: number;
  /** Body bytes of every request naming this session, whatever the outcome (re-sent chunks count twice). */
  bytesReceived: number;
  /** Requests naming this session (start, append, finish, batch entries). */
  requests: number;
  createdAt: string;
  /** Set once committed. */
  path?: string;
}

export interface DropboxEmulator {
  readonly url: string;
  addAccount(init: EmulatorAccountInit): string;
  setUploadsPerSecond(rate: number | undefined): void;
  files(accountId?: string): StoredFile[];
  stats(): EmulatorStats;
  stop(): Promise<void>;
  /** Registers (or replaces) an OAuth app. */
  addApp(app: EmulatorAppInit): void;
  /** A single-use authorization code (valid 10 minutes) for grant_type=authorization_code. */
  mintAuthorizationCode(init: AuthorizationCodeInit): string;
  /** The account /oauth2/authorize shows as signed in (preselected); undefined = none. */
  signIn(accountId: string | undefined): void;
  /** Merges `patch` into the account's config; returns the effective config. */
  configureAccount(accountId: string, patch: AccountConfig): Required<AccountConfig>;
  /** Merges `patch` into the defaults every account inherits; returns them. */
  configureDefaults(patch: AccountConfig): Required<AccountConfig>;
  /** Effective config of an account, or the defaults when no account is given. */
  accountConfig(accountId?: string): Required<AccountConfig>;
  /** Scripted faults for the account's next matching requests, in order. */
  queueFaults(accountId: string, faults: QueuedFault[]): void;
  /** Every current access token of the account (minted and static) answers 401 expired_access_token from now on. */
  expireAccessTokens(accountId: string): number;
  /** Refresh tokens → invalid_grant; access tokens → 401 invalid_access_token. */
  revokeTokens(accountId: string): void;
  setAccessTokenTtl(seconds: number): void;
  /** Restarts the fault PRNG. */
  setSeed(seed: number): void;
  sessions(accountId?: string): SessionInfo[];
  session(sessionId: string): SessionInfo | undefined;
  /** Stored bytes of a file (path or id, any case); undefined when absent or not retained. */
  fileContent(accountId: string, path: string): Buffer | undefined;
  /**
   * Writes a file at `path` (overwriting what is there) as the account's owner would outside the
   * API, e.g. to seed a large listing fast or to change a file behind a client's back.
   * @throws TypeError when the path cannot hold a file (malformed, a folder, under a file)
   */
  putFile(accountId: string, path: string, content: Buffer | string): StoredFile;
  /** Deletes a file as the account's owner would outside the API; false when none is there. Not journaled to a store directory. */
  removeFile(accountId: string, path: string): boolean;
  /** Zeroes request counters and per-account stats (files and sessions stay). */
  resetStats(): void;
}
