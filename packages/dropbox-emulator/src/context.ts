import type { Args } from './args.js';
import { tooManyWriteOperations, type EffectiveConfig, type Rng } from './faults.js';
import type { SessionStore } from './sessions.js';
import type { EmulatorStore } from './store.js';
import type { AccountConfig, AccountStats, EmulatorTeamInit, QueuedFault } from './types.js';
import { routeError, type ReadBody, type Tagged } from './wire.js';

/** Everything the emulator knows about one account besides its files and tokens. */
export class AccountState {
  config: AccountConfig = {};
  readonly queue: QueuedFault[] = [];
  stats: AccountStats = emptyAccountStats();
  name: string | undefined;
  email: string | undefined;
  /** Granted scopes; undefined = all. */
  scopes: string[] | undefined;
  /** Set for a member of a team with a team space (see EmulatorAccountInit.team). */
  team: EmulatorTeamInit | undefined;
  /** Commits currently holding (or refused at) the account's write lock. */
  commitsInFlight = 0;

  constructor(readonly id: string) {}
}

export function emptyAccountStats(): AccountStats {
  return {
    requests: {},
    tokenRequests: 0,
    bytesReceived: 0,
    commits: 0,
    maxConcurrentCommits: 0,
    writeContention: 0,
    rateLimited: 0,
    faults: {},
  };
}

export function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/** Finished `upload_session/finish_batch` jobs and ones still committing. */
export interface BatchJob {
  accountId: string;
  entries: unknown[] | undefined;
  checks: number;
  failed: boolean;
}

/** The shared state route handlers work on. */
export interface EmulatorCore {
  readonly store: EmulatorStore;
  readonly sessions: SessionStore;
  readonly jobs: Map<string, BatchJob>;
  readonly rng: Rng;
  readonly keepContent: boolean;
  readonly maxRequestBytes: number;
  readonly maxFileBytes: number;
  config(accountId: string): EffectiveConfig;
  /** auth/token/revoke. */
  revokeToken(token: string): void;
  /** Resolves after `ms`, or at once when the emulator stops. */
  sleep(ms: number): Promise<void>;
}

export interface CallContext {
  route: string;
  accountId: string;
  /** The namespace the request's paths resolve in (its Dropbox-API-Path-Root): the account id for its home. */
  spaceId: string;
  account: AccountState;
  token: string;
  args: Args;
  body: ReadBody;
  core: EmulatorCore;
}

/** A content-download answer: the result goes into Dropbox-API-Result, the bytes into the body. */
export class ContentResult {
  constructor(
    readonly result: unknown,
    readonly bytes: Buffer,
  ) {}
}

export type Style = 'rpc' | 'upload' | 'download';

export interface RouteSpec {
  /** "upload": args in Dropbox-API-Arg, raw bytes as body. "rpc": JSON args as body. "download": args in the header, bytes in the answer. */
  style: Style;
  /** Counted in `uploads` and subject to the per-token upload rate limit. */
  limited?: boolean;
  /** The route takes no arguments (empty body or null). */
  noArgs?: boolean;
  /** OAuth scope a token needs; missing → 401 missing_scope. */
  scope?: string;
  handler: (ctx: CallContext) => unknown;
}

/** A commit's hold on the account's write lock; the refused ones enter too, so overlap is measured. */
export interface CommitLease {
  /** Another commit was in flight when this one arrived. */
  busy: boolean;
  release(): void;
}

export function enterCommit(account: AccountState): CommitLease {
  const busy = account.commitsInFlight > 0;
  account.commitsInFlight++;
  account.stats.commits++;
  account.stats.maxConcurrentCommits = Math.max(account.stats.maxConcurrentCommits, account.commitsInFlight);
  let released = false;
  return {
    busy,
    release: () => {
      if (released) return;
      released = true;
      account.commitsInFlight--;
    },
  };
}

/**
 * Refuses an overlapping commit the way the account is configured to. '429' refusals happen
 * before a commit touches anything; '409' ones where the route would report a write error.
 */
export function refuseIfContended(
  ctx: CallContext,
  lease: CommitLease,
  cfg: EffectiveConfig,
  phase: '429' | '409',
  error409: Tagged,
): void {
  if (!lease.busy || cfg.writeContention !== phase) return;
  ctx.account.stats.writeContention++;
  throw phase === '429' ? tooManyWriteOperations(cfg, ctx.core.rng) : routeError(error409);
}
