import { Command, CommanderError } from 'commander';
import { BEARER_TOKEN_PATTERN } from './api.js';
import {
  startDropboxEmulator,
  type AccountConfig,
  type EmulatorAccountInit,
  type EmulatorAppInit,
  type EmulatorOptions,
  type ServerErrorStatus,
  type WriteContentionMode,
} from './index.js';

/** Usage errors exit 2, like other CLI tools, so scripts can tell them from runtime failures (1). */
const USAGE_EXIT_CODE = 2;

class UsageError extends Error {}

interface RawOptions {
  port: string;
  rate?: string;
  acceptAnyToken?: boolean;
  account: string[];
  app: string[];
  refreshAccount: string[];
  authCode: string[];
  storeDir?: string;
  keepContent: boolean;
  tokenTtl?: string;
  sessionTtl?: string;
  maxRequestBytes?: string;
  seed?: string;
  burst?: string;
  quota?: string;
  dataTransportExceeded?: boolean;
  writeContention?: string;
  batchContentionShare?: string;
  commitLatency?: string;
  latency?: string;
  fail5xx?: string;
  fail5xxStatuses?: string;
  reset?: string;
  lostResponse?: string;
  stall?: string;
  fail429?: string;
  plain429?: string;
  omitRetryAfter?: string;
  faultRoutes?: string;
}

function num(flag: string, raw: string | undefined, check: (n: number) => boolean, want: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || !check(n))
    throw new UsageError(`${flag} must be ${want}, got ${JSON.stringify(raw)}`);
  return n;
}

const positive = (flag: string, raw: string | undefined): number | undefined =>
  num(flag, raw, (n) => n > 0, 'a positive number');
const positiveInt = (flag: string, raw: string | undefined): number | undefined =>
  num(flag, raw, (n) => n > 0 && Number.isInteger(n), 'a positive integer');
const nonNegative = (flag: string, raw: string | undefined): number | undefined =>
  num(flag, raw, (n) => n >= 0, 'a number ≥ 0');
const share = (flag: string, raw: string | undefined): number | undefined =>
  num(flag, raw, (n) => n >= 0 && n <= 1, 'a share from 0 to 1');

function parsePort(raw: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(raw)}`);
  }
  return port;
}

/**
 * TOKEN[=ACCOUNT_ID]. Tokens may end in base64 padding ("abc=="), so only the last "=" with
 * something after it separates the account id.
 */
function parseAccount(raw: string, flag = '--account'): { token: string; accountId?: string } {
  const eq = raw.lastIndexOf('=');
  const split = eq > 0 && eq < raw.length - 1;
  const token = split ? raw.slice(0, eq) : raw;
  if (!BEARER_TOKEN_PATTERN.test(token)) {
    throw new UsageError(
      `${flag} must be TOKEN or TOKEN=ACCOUNT_ID where TOKEN is a bearer token (letters, digits, -._~+/, trailing =), got ${JSON.stringify(raw)}`,
    );
  }
  return split ? { token, accountId: raw.slice(eq + 1) } : { token };
}

function parseApp(raw: string): EmulatorAppInit {
  const colon = raw.indexOf(':');
  if (colon <= 0 || colon === raw.length - 1)
    throw new UsageError(`--app must be KEY:SECRET, got ${JSON.stringify(raw)}`);
  return { key: raw.slice(0, colon), secret: raw.slice(colon + 1) };
}

function parseDefaults(raw: RawOptions): AccountConfig {
  const contention = raw.writeContention;
  if (contention !== undefined && !['none', '429', '409'].includes(contention))
    throw new UsageError(`--write-contention must be none, 429 or 409, got ${JSON.stringify(contention)}`);
  const statuses = raw.fail5xxStatuses?.split(',').map((s) => Number(s.trim()));
  if (statuses && !statuses.every((s) => [500, 502, 503, 504].includes(s)))
    throw new UsageError(
      `--fail-5xx-statuses must list 500, 502, 503, 504, got ${JSON.stringify(raw.fail5xxStatuses)}`,
    );
  const config: AccountConfig = {
    burst: num('--burst', raw.burst, (n) => n >= 1, 'at least 1'),
    quotaBytes: nonNegative('--quota', raw.quota),
    dataTransportExceeded: raw.dataTransportExceeded,
    writeContention: contention as WriteContentionMode | undefined,
    batchContentionShare: share('--batch-contention-share', raw.batchContentionShare),
    commitLatencyMs: nonNegative('--commit-latency', raw.commitLatency),
    latencyMs: nonNegative('--latency', raw.latency),
    serverErrorShare: share('--fail-5xx', raw.fail5xx),
    serverErrorStatuses: statuses as ServerErrorStatus[] | undefined,
    resetShare: share('--reset', raw.reset),
    lostResponseShare: share('--lost-response', raw.lostResponse),
    stallShare: share('--stall', raw.stall),
    tooManyRequestsShare: share('--fail-429', raw.fail429),
    plainText429Share: share('--plain-429', raw.plain429),
    noRetryAfterShare: share('--omit-retry-after', raw.omitRetryAfter),
    faultRoutes: raw.faultRoutes
      ?.split(',')
      .map((r) => r.trim())
      .filter(Boolean),
  };
  return Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
}

function toEmulatorOptions(raw: RawOptions): EmulatorOptions {
  const accounts: EmulatorAccountInit[] = raw.account.map((a) => parseAccount(a));
  const apps = raw.app.map(parseApp);
  for (const r of raw.refreshAccount) {
    const { token, accountId } = parseAccount(r, '--refresh-account');
    if (apps.length !== 1) throw new UsageError('--refresh-account needs exactly one --app');
    accounts.push({ refreshToken: token, ...(accountId !== undefined ? { accountId } : {}) });
  }
  const codes = raw.authCode.map((c) => {
    const eq = c.indexOf('=');
    if (eq <= 0 || eq === c.length - 1)
      throw new UsageError(`--auth-code must be CODE=ACCOUNT_ID, got ${JSON.stringify(c)}`);
    if (apps.length !== 1) throw new UsageError('--auth-code needs exactly one --app');
    return { code: c.slice(0, eq), accountId: c.slice(eq + 1) };
  });
  const opt = <K extends keyof EmulatorOptions>(
    key: K,
    value: EmulatorOptions[K] | undefined,
  ): Partial<EmulatorOptions> => (value === undefined ? {} : { [key]: value });
  const seed = num('--seed', raw.seed, Number.isInteger, 'an integer');
  return {
    port: parsePort(raw.port),
    accounts,
    apps,
    // With no configured accounts the only useful mode is accepting whatever token the demo uses.
    acceptAnyToken: raw.acceptAnyToken ?? accounts.length === 0,
    keepContent: raw.keepContent,
    defaults: parseDefaults(raw),
    ...opt('uploadsPerSecond', positive('--rate', raw.rate)),
    ...opt('storeDir', raw.storeDir),
    ...opt('accessTokenTtlSeconds', positiveInt('--token-ttl', raw.tokenTtl)),
    ...opt('sessionTtlSeconds', positive('--session-ttl', raw.sessionTtl)),
    ...opt('maxRequestBytes', positiveInt('--max-request-bytes', raw.maxRequestBytes)),
    ...opt('seed', seed),
    ...opt('authorizationCodes', codes.length > 0 ? codes : undefined),
  };
}

function describe(options: EmulatorOptions): string {
  const rate = options.uploadsPerSecond === undefined ? 'unlimited' : `${options.uploadsPerSecond} uploads/s per token`;
  const tokens = options.acceptAnyToken ? 'any token accepted' : `${options.accounts?.length ?? 0} account(s)`;
  const faults = Object.entries(options.defaults ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const store = options.storeDir ? `; store: ${options.storeDir}` : '';
  return `rate: ${rate}; ${tokens}; content ${options.keepContent === false ? 'not kept' : 'kept'}${store}${faults.length ? `; ${faults.join(' ')}` : ''}`;
}

const collect = (v: string, acc: string[]): string[] => [...acc, v];

async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('emulator')
    .description(
      'Dropbox API emulator for local runs and tests: files/upload, upload sessions (start, append_v2, finish, start_batch, finish_batch[_v2][/check]), download, get_metadata, list_folder, users/get_current_account, /oauth2/token, the /oauth2/authorize page (PKCE, redirect or copy-the-code), and an admin API under /__admin/. Shares are probabilities 0..1 and apply to every account.',
    )
    .option('--port <port>', 'port on 127.0.0.1 (0 = a free port)', '0')
    .option('--rate <uploadsPerSecond>', 'per-token rate limit on upload routes (default: unlimited)')
    .option('--burst <n>', 'token-bucket capacity for --rate (default: max(1, rate))')
    .option(
      '--accept-any-token',
      'treat unknown bearer tokens as new accounts (default when no --account/--refresh-account is given)',
    )
    .option('--no-accept-any-token', 'answer 401 invalid_access_token for unknown tokens')
    .option(
      '--account <TOKEN[=ACCOUNT_ID]>',
      'add an account with a static (never expiring) access token (repeatable)',
      collect,
      [] as string[],
    )
    .option('--app <KEY:SECRET>', 'register an OAuth app for /oauth2/token (repeatable)', collect, [] as string[])
    .option(
      '--refresh-account <REFRESH_TOKEN[=ACCOUNT_ID]>',
      'add an account with a refresh token for the single --app (repeatable)',
      collect,
      [] as string[],
    )
    .option(
      '--auth-code <CODE=ACCOUNT_ID>',
      'accept CODE once (within 10 minutes) for grant_type=authorization_code with the single --app (repeatable)',
      collect,
      [] as string[],
    )
    .option('--token-ttl <seconds>', 'lifetime of minted sl. access tokens (default: 14400)')
    .option('--session-ttl <seconds>', 'upload session lifetime (default: 604800 = 7 days)')
    .option(
      '--max-request-bytes <n>',
      'largest upload request body before payload_too_large (default: 157286400 = 150 MiB)',
    )
    .option('--store-dir <dir>', 'persist files (journal.jsonl + content blobs) in DIR and reload them on start')
    .option(
      '--no-keep-content',
      'only hash uploads, keep no bytes (files/download answers 400); for multi-gigabyte demo runs',
    )
    .option('--quota <bytes>', 'per-account quota; beyond it 409 path/insufficient_space')
    .option(
      '--data-transport-exceeded',
      "the team's monthly Data Transport quota is used up: upload routes answer 403 invalid_account_type/feature",
    )
    .option(
      '--write-contention <mode>',
      'overlapping commits per account: none (allowed), 429 (too_many_write_operations + Retry-After: 1) or 409 (route error / failed batch entries)',
    )
    .option(
      '--batch-contention-share <share>',
      "with --write-contention 409: share of an overlapping batch's entries that fail (default: 1)",
    )
    .option('--commit-latency <ms>', 'how long each commit holds the account write lock (default: 0)')
    .option('--latency <ms>', 'added before every API answer (default: 0)')
    .option('--fail-5xx <share>', 'share of API requests answered with a 5xx')
    .option('--fail-5xx-statuses <list>', 'statuses for --fail-5xx, e.g. 500,503 (default: 500,503,504)')
    .option('--reset <share>', 'share of requests whose connection is destroyed unprocessed')
    .option('--lost-response <share>', 'share of requests processed and then answered by destroying the connection')
    .option('--stall <share>', 'share of requests never answered')
    .option('--fail-429 <share>', 'share of requests answered 429 too_many_requests regardless of --rate')
    .option('--plain-429 <share>', 'share of too_many_requests 429s sent as text/plain')
    .option('--omit-retry-after <share>', 'share of 429s without Retry-After and body retry_after')
    .option(
      '--fault-routes <list>',
      'comma-separated routes the shares and --latency apply to, e.g. files/upload,oauth2/token (default: all /2/ routes)',
    )
    .option('--seed <n>', 'seed for the fault PRNG (default: random)')
    .addHelpText(
      'after',
      '\nAdmin API (JSON): GET /__admin/files, /__admin/stats, /__admin/sessions, /__admin/config; POST /__admin/accounts, /__admin/apps, /__admin/codes, /__admin/config, /__admin/faults, /__admin/tokens/expire, /__admin/tokens/revoke, /__admin/rate, /__admin/seed, /__admin/sign-in. See src/admin.ts.',
    )
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT_CODE);
    throw err;
  }

  let options: EmulatorOptions;
  try {
    options = toEmulatorOptions(program.opts<RawOptions>());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(USAGE_EXIT_CODE);
  }

  const emulator = await startDropboxEmulator(options);
  process.stdout.write(`Dropbox emulator listening on ${emulator.url} (${describe(options)})\n`);

  const shutdown = (signal: NodeJS.Signals): void => {
    process.stderr.write(`Dropbox emulator stopping (${signal})\n`);
    emulator.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`Dropbox emulator failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
