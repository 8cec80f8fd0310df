/** `npm run bench [-- --scenario steady,limit-change,huge-and-small,ceiling,scale,warm-start,live-backfill] [--design archiver,cron,fixed] [--quick] [--backfill-items N]` */
import { cpus } from 'node:os';
import { Command } from 'commander';
import { ALL_DESIGNS } from './designs/index.js';
import type { DesignName } from './designs/types.js';
import { tableLines, writeResults } from './report.js';
import { ceiling } from './scenarios/ceiling.js';
import { hugeAndSmall } from './scenarios/huge-and-small.js';
import { limitChange } from './scenarios/limit-change.js';
import { DEFAULT_BACKFILL_ITEMS, liveBackfill } from './scenarios/live-backfill.js';
import { scale } from './scenarios/scale.js';
import { steady } from './scenarios/steady.js';
import { warmStart } from './scenarios/warm-start.js';
import type { ResultRow, Scenario, ScenarioName } from './scenarios/types.js';
import { startStack } from './stack.js';
import { useEphemeralSecretKeys } from '../dev/secret-keys.js';

// The bench's databases do not outlive it: its workers seal tokens with a key kept in memory.
useEphemeralSecretKeys();

const SCENARIOS: Record<ScenarioName, Scenario> = {
  steady,
  'limit-change': limitChange,
  'huge-and-small': hugeAndSmall,
  ceiling,
  scale,
  'warm-start': warmStart,
  'live-backfill': liveBackfill,
};
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const opts = new Command('npm run bench --')
  .option('--scenario <list>', `comma-separated: ${Object.keys(SCENARIOS).join(',')}`, list, Object.keys(SCENARIOS))
  .option('--design <list>', `comma-separated: ${ALL_DESIGNS.join(',')}`, list, ALL_DESIGNS)
  .option('--quick', 'smaller sizes, for a smoke run')
  .option(
    '--backfill-items <n>',
    `live-backfill: items to backfill (default ${DEFAULT_BACKFILL_ITEMS.full}, --quick ${DEFAULT_BACKFILL_ITEMS.quick})`,
    (v) => {
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error('--backfill-items must be a positive whole number');
      return Number(v);
    },
  )
  .parse()
  .opts<{ scenario: string[]; design: string[]; quick?: boolean; backfillItems?: number }>();

for (const s of opts.scenario) if (!(s in SCENARIOS)) throw new Error(`unknown scenario ${s}`);
for (const d of opts.design) if (!ALL_DESIGNS.includes(d as DesignName)) throw new Error(`unknown design ${d}`);

const log = (m: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);

async function main(): Promise<number> {
  const stack = await startStack(log);
  const rows: ResultRow[] = [];
  let failed = false;
  try {
    for (const name of opts.scenario as ScenarioName[]) {
      try {
        rows.push(
          ...(await SCENARIOS[name](stack, {
            quick: !!opts.quick,
            designs: opts.design as DesignName[],
            log,
            backfillItems: opts.backfillItems,
          })),
        );
      } catch (err) {
        failed = true;
        log(`scenario ${name} failed: ${(err as Error).stack ?? String(err)}`);
        rows.push({ scenario: name, design: 'archiver', error: (err as Error).message });
      }
    }
  } finally {
    await stack.stop();
  }
  const out = writeResults(rows, {
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
    quick: !!opts.quick,
    cpus: cpus().length,
    finishedAt: new Date().toISOString(),
  });
  console.log(['', ...tableLines(rows)].join('\n'));
  log(`results: ${out.json} (and latest.json), summary: ${out.md}`);
  log(`plots: ${out.plots.join(', ')}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
