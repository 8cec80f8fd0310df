/**
 * `npm run seed -- --customers N --items M`: inserts demo customers and their pending items (media
 * served by the demo media server) into the database of DATABASE_URL, or else of the stack `npm
 * start` is running. A development script: the product never seeds.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readStackFile, secretKeysEnv } from '../client/stack-file.js';
import { migrate } from '../db/migrate.js';
import { createPool, dbFromPool } from '../db/pool.js';
import { ConfigError, loadConfig, loadSecretKeyring, requireDatabaseUrl } from '../workers/config.js';
import { seedDemo } from './demo-data.js';

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

const DEFAULT_MEDIA_BASE = 'http://127.0.0.1:8370';

async function main(): Promise<void> {
  const stack = readStackFile();
  const options = new Command('npm run seed --')
    .description('Insert demo customers and items (synthetic media served by the demo media server).')
    .exitOverride()
    .showHelpAfterError()
    .requiredOption('--customers <n>', 'how many customers', positiveInt('--customers'))
    .requiredOption('--items <m>', 'items per customer', positiveInt('--items'))
    .option(
      '--media-base <url>',
      'base URL of the media server',
      process.env.MEDIA_BASE ?? stack.MEDIA_BASE ?? DEFAULT_MEDIA_BASE,
    )
    .option('--prefix <prefix>', 'customer ids are <prefix>-<n>', 'demo')
    .addHelpText('after', '\nThe database is DATABASE_URL, else the one `npm start` is running (.data/stack.env).')
    .parse()
    .opts<{ customers: number; items: number; mediaBase: string; prefix: string }>();

  const url = requireDatabaseUrl(loadConfig({ ...stack, ...process.env }));
  const keyring = loadSecretKeyring(secretKeysEnv(stack));
  await migrate(url);
  const pool = createPool(url, 2);
  try {
    const seeded = await seedDemo(dbFromPool(pool), keyring, {
      customers: options.customers,
      itemsPerCustomer: options.items,
      mediaBase: options.mediaBase,
      prefix: options.prefix,
    });
    console.log(
      `seeded ${seeded.length} customers with ${options.items} items each: ${seeded.map((c) => c.id).join(', ')}`,
    );
  } finally {
    await pool.end();
  }
}

main().catch((err: unknown) => {
  // Commander has already printed its message (and help, for --help).
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  console.error(`seed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
