/**
 * `npm run bench:cluster -- [--workers 1,3] [--customers 3] [--items 1000] [--rate 1000]`: items/s
 * on the production topology (a Temporal Server v1.32.0 on Postgres, N worker processes; the
 * cluster tests' stack) with each number of workers, one fresh cluster per number. The emulator
 * takes `--rate` uploads/s per customer, so with the default the pipeline is the limit.
 */
import { cpus } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { startClusterStack } from '../test/support/cluster.js';
// The cluster stack of the tests seeds customers with the tests' keyring, and its workers inherit it.
import '../test/support/secret-keys.js';

const whole = (min: number, max: number) => (raw: string) => {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
  return n;
};
const opts = new Command('npm run bench:cluster --')
  .description('Items/s on a Temporal Server on Postgres with 1, then 3 (or --workers) Archiver worker processes.')
  .option(
    '--workers <list>',
    'comma-separated worker counts, each 1-8',
    (raw) => raw.split(',').map(whole(1, 8)),
    [1, 3],
  )
  .option('--customers <n>', 'customers (1-20)', whole(1, 20), 3)
  .option('--items <n>', 'items per customer (1-100000)', whole(1, 100_000), 1_000)
  .option('--rate <n>', 'uploads/s the emulator takes per customer (1-100000)', whole(1, 100_000), 1_000)
  .showHelpAfterError('(see: npm run bench:cluster -- --help)')
  .parse()
  .opts<{ workers: number[]; customers: number; items: number; rate: number }>();

const log = (m: string) => console.log(`[bench:cluster ${new Date().toISOString().slice(11, 19)}] ${m}`);

async function measure(workers: number): Promise<{ workers: number; seconds: number; itemsPerSecond: number }> {
  const customers = Array.from({ length: opts.customers }, (_, i) => `w${workers}c${i + 1}`);
  log(`${workers} worker(s): starting a cluster…`);
  const stack = await startClusterStack({ customers, rate: opts.rate, workers });
  try {
    const total = customers.length * opts.items;
    await stack.seedAndStart(customers, opts.items);
    // Generous: 2 items/s would be a broken pipeline, not a slow one.
    await stack.untilArchived(customers, total, Math.max(120_000, (total / 2) * 1000));
    const [row] = await stack.db.query<{ first: Date; last: Date }>(
      'SELECT min(archived_at) AS first, max(archived_at) AS last FROM archive_items WHERE customer_id = ANY($1)',
      [customers],
    );
    // From the first archival to the last: seeding the items is not the pipeline's time.
    const seconds = Math.max(0.001, ((row?.last.getTime() ?? 0) - (row?.first.getTime() ?? 0)) / 1000);
    log(`${workers} worker(s): ${total} items in ${seconds.toFixed(1)} s`);
    return { workers, seconds, itemsPerSecond: total / seconds };
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const rows = [];
  for (const n of opts.workers) rows.push(await measure(n));
  const base = rows[0]?.itemsPerSecond ?? 1;
  console.log(
    [
      '',
      `${opts.customers} customers x ${opts.items} items, emulator ${opts.rate} uploads/s per customer, ${cpus().length} CPUs`,
      '| workers | seconds, first to last archival | items/s | vs first |',
      '|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.workers} | ${r.seconds.toFixed(1)} | ${r.itemsPerSecond.toFixed(1)} | ${(r.itemsPerSecond / base).toFixed(2)} |`,
      ),
    ].join('\n'),
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
