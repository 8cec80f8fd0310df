/** `npm run chaos -- [options]`: see --help, and "Chaos suite" in the README. */
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_EMULATOR_FAULTS, DEFAULT_OPTIONS, runChaos, type ChaosOptions } from './chaos.js';
import type { EmulatorFaults } from './phase.js';
import { SOURCE_FAULT_NAMES, type SourceFaultName } from './plan.js';
import { useEphemeralSecretKeys } from '../../dev/secret-keys.js';

// Each phase's database is thrown away: its workers seal tokens with a key kept in memory.
useEphemeralSecretKeys();

/** Emulator faults by name, each the share field(s) it turns on. */
const EMULATOR_FAULTS: Record<string, (keyof EmulatorFaults)[]> = {
  '5xx': ['serverErrorShare'],
  reset: ['resetShare'],
  lost: ['lostResponseShare'],
  stall: ['stallShare'],
  '429': ['tooManyRequestsShare'],
  'plain-429': ['plainText429Share'],
  'no-retry-after': ['noRetryAfterShare'],
};

const int = (min: number) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`must be a whole number ≥ ${min}`);
  return n;
};
const positive = (raw: string) => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
};
const names =
  <T extends string>(known: readonly T[]) =>
  (raw: string): T[] => {
    if (raw === 'none') return [];
    const list = raw.split(',').map((s) => s.trim());
    for (const name of list) {
      if (!known.includes(name as T)) throw new InvalidArgumentError(`unknown: ${name}; known: ${known.join(',')}`);
    }
    return list as T[];
  };

const d = DEFAULT_OPTIONS;
const program = new Command('npm run chaos --')
  .description(
    'Drains items from several customers while SIGKILLing workers, restarting Temporal and Postgres, and ' +
      'injecting Dropbox and source faults; then checks every customer Dropbox through the SDK. First runs the ' +
      'same seed without faults for the drain-time baseline. Prints one line of figures; exits 1 if a check fails.',
  )
  .option('--items <n>', 'items to drain', int(1), d.items)
  .option('--customers <n>', 'customers, each with its own Dropbox account', int(1), d.customers)
  .option('--workers <n>', 'worker processes', int(1), d.workers)
  .option('--kills <n>', 'worker SIGKILLs during the drain', int(0), d.kills)
  .option('--temporal-restarts <n>', 'Temporal server restarts', int(0), d.temporalRestarts)
  .option('--postgres-restarts <n>', 'Postgres restarts', int(0), d.postgresRestarts)
  .option('--seed <n>', 'seed of the plan (items, faults, when things are killed)', int(0), d.seed)
  .option('--rate <n>', 'upload requests per second each Dropbox account takes', positive, d.ratePerAccount)
  .option('--no-baseline', 'skip the fault-free run (and the drain-time ratio)')
  .option('--max-ratio <x>', 'largest chaos/baseline drain-time ratio that passes', positive, d.maxRatio)
  .option(
    '--source-faults <list>',
    `source faults to plant, or none (default: all of ${SOURCE_FAULT_NAMES.join(',')})`,
    names(SOURCE_FAULT_NAMES),
  )
  .option('--source-faults-per-kind <n>', 'items per source fault', int(0), d.sourceFaultsPerKind)
  .option(
    '--emulator-faults <list>',
    `Dropbox faults for the whole chaos drain, or none (default: all of ${Object.keys(EMULATOR_FAULTS).join(',')})`,
    names(Object.keys(EMULATOR_FAULTS)),
  )
  .option('--drain-timeout <s>', 'give up on a drain after this long (default: from the baseline or the rate)', int(1))
  .option('--keep', 'keep each run directory (logs, data) even when it passes; failing ones are always kept')
  .parse();

const raw = program.opts<{
  items: number;
  customers: number;
  workers: number;
  kills: number;
  temporalRestarts: number;
  postgresRestarts: number;
  seed: number;
  rate: number;
  baseline: boolean;
  maxRatio: number;
  sourceFaults?: SourceFaultName[];
  sourceFaultsPerKind: number;
  emulatorFaults?: string[];
  drainTimeout?: number;
  keep?: boolean;
}>();

function emulatorFaults(chosen: string[]): EmulatorFaults | undefined {
  if (chosen.length === 0) return undefined;
  const shares = Object.fromEntries(
    Object.keys(DEFAULT_EMULATOR_FAULTS).map((k) => [k, 0]),
  ) as unknown as EmulatorFaults;
  for (const name of chosen)
    for (const field of EMULATOR_FAULTS[name] ?? []) shares[field] = DEFAULT_EMULATOR_FAULTS[field];
  return shares;
}

const options: ChaosOptions = {
  seed: raw.seed,
  items: raw.items,
  customers: raw.customers,
  workers: raw.workers,
  kills: raw.kills,
  temporalRestarts: raw.temporalRestarts,
  postgresRestarts: raw.postgresRestarts,
  ratePerAccount: raw.rate,
  baseline: raw.baseline,
  maxRatio: raw.maxRatio,
  sourceFaults: raw.sourceFaults ?? d.sourceFaults,
  sourceFaultsPerKind: raw.sourceFaultsPerKind,
  emulatorFaults: emulatorFaults(raw.emulatorFaults ?? Object.keys(EMULATOR_FAULTS)),
  drainTimeoutSeconds: raw.drainTimeout,
  keepDirs: raw.keep ?? false,
  log: (line) => console.log(line),
};

const result = await runChaos(options);
for (const line of result.problems) console.log(line);
for (const phase of [result.baseline, result.chaos]) {
  if (phase && existsSync(phase.dir)) console.log(`${phase.name} logs: ${phase.dir}`);
}
console.log(result.figures);
process.exit(result.passed ? 0 : 1);
