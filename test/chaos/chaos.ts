/**
 * The chaos suite: a fault-free baseline drain, then the same plan drained while workers are
 * SIGKILLed, Temporal and Postgres restart, the emulator injects faults and some sources
 * misbehave; then an independent check of what landed in each customer's Dropbox.
 */
import { runPhase, type EmulatorFaults, type PhaseResult } from './phase.js';
import { buildPlan, SOURCE_FAULT_NAMES, withoutFaults, type SourceFaultName } from './plan.js';
import { failedChecks, type ItemProblem, type Verification } from './verify.js';

export interface ChaosOptions {
  seed: number;
  items: number;
  customers: number;
  workers: number;
  kills: number;
  temporalRestarts: number;
  postgresRestarts: number;
  /** Upload requests per second each customer's Dropbox takes; it paces the drain. */
  ratePerAccount: number;
  /** Run the fault-free baseline first and compare drain times. */
  baseline: boolean;
  maxRatio: number;
  sourceFaults: readonly SourceFaultName[];
  sourceFaultsPerKind: number;
  emulatorFaults: EmulatorFaults | undefined;
  /** Per drain; undefined = derived from the baseline or the rate. */
  drainTimeoutSeconds: number | undefined;
  keepDirs: boolean;
  log: (line: string) => void;
}

/** Fault shares for the whole chaos drain: 5xx, resets, lost responses, stalls, extra and odd 429s. */
export const DEFAULT_EMULATOR_FAULTS: EmulatorFaults = {
  serverErrorShare: 0.01,
  resetShare: 0.005,
  lostResponseShare: 0.005,
  stallShare: 0.001,
  tooManyRequestsShare: 0.005,
  plainText429Share: 0.5,
  noRetryAfterShare: 0.25,
};

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'log'> = {
  seed: 1,
  items: 5000,
  customers: 4,
  workers: 2,
  kills: 10,
  temporalRestarts: 2,
  postgresRestarts: 2,
  ratePerAccount: 5,
  baseline: true,
  maxRatio: 1.5,
  sourceFaults: SOURCE_FAULT_NAMES,
  sourceFaultsPerKind: 3,
  emulatorFaults: DEFAULT_EMULATOR_FAULTS,
  drainTimeoutSeconds: undefined,
  keepDirs: false,
};

export interface ChaosResult {
  passed: boolean;
  /** The one line of figures. */
  figures: string;
  /** Why it failed, with evidence; empty when it passed. */
  problems: string[];
  baseline: PhaseResult | undefined;
  chaos: PhaseResult;
}

const EVIDENCE_PER_CHECK = 8;

function describeItem(p: ItemProblem): string {
  const error = p.lastError ? ` last_error=${JSON.stringify(p.lastError.slice(0, 240))}` : '';
  return `item ${p.itemId} (${p.customerId}, ${p.kind}, source ${p.sourceFault}): state=${p.state} attempts=${p.attempts}${error} — ${p.detail}`;
}

function verificationProblems(phase: string, v: Verification): string[] {
  const out: string[] = [];
  const itemLists: [string, ItemProblem[]][] = [
    ['lost', v.lost],
    ['mismatched', v.mismatched],
    ['wrongly failed', v.wronglyFailed],
    ['not failed', v.notFailed],
    ['unsettled', v.unsettled],
    ['bookkeeping', v.bookkeeping],
  ];
  for (const [name, list] of itemLists) {
    if (list.length === 0) continue;
    out.push(`${phase}: ${list.length} ${name}:`);
    out.push(...list.slice(0, EVIDENCE_PER_CHECK).map((p) => `  ${describeItem(p)}`));
    if (list.length > EVIDENCE_PER_CHECK) out.push(`  … and ${list.length - EVIDENCE_PER_CHECK} more`);
  }
  for (const [name, list] of [
    ['duplicated', v.duplicated],
    ['extra', v.extra],
  ] as const) {
    if (list.length === 0) continue;
    out.push(`${phase}: ${list.length} ${name} files:`);
    out.push(...list.slice(0, EVIDENCE_PER_CHECK).map((f) => `  ${f.customerId} ${f.path}: ${f.detail}`));
  }
  return out;
}

function phaseProblems(r: PhaseResult): string[] {
  const out: string[] = [];
  if (r.error) out.push(`${r.name}: ${r.error}`);
  if (r.stuck.length > 0) out.push(`${r.name}: Temporal still waits for:`, ...r.stuck.map((l) => `  ${l}`));
  if (r.verification) out.push(...verificationProblems(r.name, r.verification));
  else out.push(`${r.name}: the outcome could not be checked`);
  return out;
}

function seconds(s: number | undefined): string {
  return s === undefined ? 'none' : `${s.toFixed(1)}s`;
}

/** Runs the suite and returns its figures; never throws for a failed check. */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const plan = buildPlan(o);
  const perCustomer = Math.ceil(o.items / o.customers);
  const estimateS = perCustomer / o.ratePerAccount;
  const phase = {
    seed: o.seed,
    workers: o.workers,
    ratePerAccount: o.ratePerAccount,
    keepDir: o.keepDirs,
    log: o.log,
  };
  o.log(
    `chaos: seed ${o.seed}, ${o.items} items for ${o.customers} customers, ${o.workers} workers, ` +
      `${o.ratePerAccount} uploads/s per account (fault-free estimate ${estimateS.toFixed(0)} s)`,
  );

  let baseline: PhaseResult | undefined;
  if (o.baseline) {
    baseline = await runPhase({
      ...phase,
      name: 'baseline',
      plan: withoutFaults(plan),
      emulatorFaults: undefined,
      drainTimeoutMs: (o.drainTimeoutSeconds ?? Math.max(300, 3 * estimateS)) * 1000,
    });
  }
  const expectedS = baseline?.drainSeconds ?? estimateS;
  const faulty = plan.items.filter((i) => i.sourceFault !== undefined);
  o.log(
    `chaos: ${faulty.length} items with faulty sources (${o.sourceFaults.join(', ')}), ` +
      `${plan.events.length} events at ${plan.events.map((e) => `${e.kind}@${(e.atFraction * 100).toFixed(0)}%`).join(' ')}`,
  );
  const chaos = await runPhase({
    ...phase,
    name: 'chaos',
    plan,
    emulatorFaults: o.emulatorFaults,
    drainTimeoutMs: (o.drainTimeoutSeconds ?? Math.max(600, 4 * expectedS)) * 1000,
  });

  const problems = [...(baseline ? phaseProblems(baseline) : []), ...phaseProblems(chaos)];
  // Short names of the failed checks, for the figures line.
  const failed = [
    ...(baseline && phaseProblems(baseline).length > 0 ? ['baseline'] : []),
    ...(chaos.drainSeconds === undefined ? ['drain-unfinished'] : []),
    ...(chaos.verification ? failedChecks(chaos.verification) : ['unchecked']),
  ];
  const shortfall = (check: string, what: string, done: number, asked: number): void => {
    if (done >= asked) return;
    failed.push(check);
    problems.push(`chaos: only ${done} of ${asked} ${what} happened`);
  };
  shortfall('kills', 'kills', chaos.kills, o.kills);
  shortfall('temporal-restarts', 'Temporal restarts', chaos.temporalRestarts, o.temporalRestarts);
  shortfall('postgres-restarts', 'Postgres restarts', chaos.postgresRestarts, o.postgresRestarts);
  const ratio =
    baseline?.drainSeconds !== undefined && chaos.drainSeconds !== undefined
      ? chaos.drainSeconds / baseline.drainSeconds
      : undefined;
  if (ratio !== undefined && ratio > o.maxRatio) {
    failed.push('ratio');
    problems.push(`chaos: the drain took ${ratio.toFixed(2)}× the fault-free one (at most ${o.maxRatio}× allowed)`);
  }
  if (chaos.workerExits.length > 0) {
    const reasons = new Map<string, number>();
    for (const exit of chaos.workerExits) {
      const line =
        exit.tail
          .trim()
          .split('\n')
          .reverse()
          .find((l) => /error|Error|failed/.test(l)) ?? '(no output)';
      const key = `exit ${exit.signal ?? exit.code}${exit.hadStarted ? '' : ' before starting'}: ${line.slice(0, 200)}`;
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
    o.log(`chaos: workers ended on their own ${chaos.workerExits.length} times (restarted by the supervisor):`);
    for (const [reason, n] of reasons) o.log(`  ${n}× ${reason}`);
  }
  if (Object.keys(chaos.injectedFaults).length > 0) {
    o.log(
      `chaos: the emulator injected ${Object.entries(chaos.injectedFaults)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
    );
  }
  if (Object.keys(chaos.droppedRequests).length > 0) {
    o.log(
      `chaos: requests the emulator dropped or never answered: ${Object.entries(chaos.droppedRequests)
        .map(([k, n]) => `${k} ×${n}`)
        .join(', ')}`,
    );
  }

  const v = chaos.verification;
  const passed = problems.length === 0;
  const figures = [
    `chaos figures: seed=${o.seed} items=${o.items} customers=${o.customers}`,
    `archived=${v?.archived ?? '?'} failed=${v?.failed ?? '?'}`,
    `lost=${v?.lost.length ?? '?'} duplicated=${v?.duplicated.length ?? '?'} mismatched=${v?.mismatched.length ?? '?'}`,
    `extra=${v?.extra.length ?? '?'} wrongly-failed=${v?.wronglyFailed.length ?? '?'} not-failed=${v?.notFailed.length ?? '?'} unsettled=${v?.unsettled.length ?? '?'}`,
    `kills=${chaos.kills} restarts=${chaos.temporalRestarts + chaos.postgresRestarts} (temporal ${chaos.temporalRestarts}, postgres ${chaos.postgresRestarts})`,
    `worker-exits=${chaos.workerExits.length}`,
    `drain=${seconds(chaos.drainSeconds)} baseline=${o.baseline ? seconds(baseline?.drainSeconds) : 'skipped'}`,
    `ratio=${ratio === undefined ? 'n/a' : ratio.toFixed(2)} (max ${o.maxRatio})`,
    passed ? 'PASS' : `FAIL [${failed.join(' ')}]`,
  ].join(' ');
  return { passed, figures, problems, baseline, chaos };
}
