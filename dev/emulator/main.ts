import { Command, CommanderError } from 'commander';
import { BEARER_TOKEN_PATTERN, startDropboxEmulator, type EmulatorAccountInit, type EmulatorOptions } from './server.js';

/** Usage errors exit 2, like other CLI tools, so scripts can tell them from runtime failures (1). */
const USAGE_EXIT_CODE = 2;

class UsageError extends Error {}

interface RawOptions {
  port: string;
  rate?: string;
  acceptAnyToken?: boolean;
  account: string[];
}

function parsePort(raw: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(raw)}`);
  }
  return port;
}

function parseRate(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const rate = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(rate) || rate <= 0) {
    throw new UsageError(`--rate must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return rate;
}

/**
 * TOKEN[=ACCOUNT_ID]. Tokens may end in base64 padding ("abc=="), so only the last "=" with
 * something after it separates the account id.
 */
function parseAccount(raw: string): EmulatorAccountInit {
  const eq = raw.lastIndexOf('=');
  const split = eq > 0 && eq < raw.length - 1;
  const token = split ? raw.slice(0, eq) : raw;
  if (!BEARER_TOKEN_PATTERN.test(token)) {
    throw new UsageError(`--account must be TOKEN or TOKEN=ACCOUNT_ID where TOKEN is a bearer token (letters, digits, -._~+/, trailing =), got ${JSON.stringify(raw)}`);
  }
  return split ? { token, accountId: raw.slice(eq + 1) } : { token };
}

function toEmulatorOptions(raw: RawOptions): EmulatorOptions {
  const accounts = raw.account.map(parseAccount);
  const uploadsPerSecond = parseRate(raw.rate);
  return {
    port: parsePort(raw.port),
    accounts,
    // With no configured accounts the only useful mode is accepting whatever token the demo uses.
    acceptAnyToken: raw.acceptAnyToken ?? accounts.length === 0,
    ...(uploadsPerSecond !== undefined ? { uploadsPerSecond } : {}),
  };
}

function describe(options: EmulatorOptions): string {
  const rate = options.uploadsPerSecond === undefined ? 'unlimited' : `${options.uploadsPerSecond} uploads/s per token`;
  const tokens = options.acceptAnyToken ? 'any token accepted' : `${options.accounts?.length ?? 0} account(s)`;
  return `rate: ${rate}; ${tokens}`;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('emulator')
    .description('Dropbox API emulator (files/upload, get_metadata, list_folder) for local runs and tests.')
    .option('--port <port>', 'port on 127.0.0.1 (0 = a free port)', '0')
    .option('--rate <uploadsPerSecond>', 'per-token upload rate limit (default: unlimited)')
    .option('--accept-any-token', 'treat unknown bearer tokens as new accounts (default when no --account is given)')
    .option('--no-accept-any-token', 'answer 401 invalid_access_token for unknown tokens')
    .option('--account <TOKEN[=ACCOUNT_ID]>', 'add an account for a bearer token (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
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
