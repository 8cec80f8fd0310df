/**
 * One drain on a stack of its own: start the parts, insert the plan's items, let the workers
 * drain them (while the chaos run kills and restarts things), then check the outcome.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { startCustomer } from '../../client/archiver-client.js';
import { upsertCustomer } from '../../db/customers.js';
import { loadSecretKeyring } from '../../workers/config.js';
import { migrate } from '../../db/migrate.js';
import { createPool, dbFromPool } from '../../db/pool.js';
import { connectClient } from '../../temporal/connection.js';
import { countItems, insertItems, itemRows, type Counts } from './database.js';
import { ChaosSchedule } from './events.js';
import { pendingActivities } from './evidence.js';
import { EmulatorPart, logStream, MediaPart, PostgresPart, TemporalPart } from './parts.js';
import { FOLDER_ROOT, PATH_TEMPLATE, type ChaosPlan } from './plan.js';
import { SeededRandom } from './rng.js';
import { writeWorkflowBundle } from '../../workers/bundle.js';
import { WorkerSupervisor, type WorkerExit } from './supervisor.js';
import { failedChecks, verifyOutcome, type Verification } from './verify.js';
import { archiverDataConverter } from '../../temporal/payload-codec.js';

/** Emulator fault shares for the whole chaos drain; see packages/dropbox-emulator (Faults). */
export interface EmulatorFaults {
  serverErrorShare: number;
  resetShare: number;
  lostResponseShare: number;
  stallShare: number;
  tooManyRequestsShare: number;
  plainText429Share: number;
  noRetryAfterShare: number;
}

export interface PhaseOptions {
  name: 'baseline' | 'chaos';
  plan: ChaosPlan;
  seed: number;
  workers: number;
  /** Upload requests per second each customer's Dropbox account takes. */
  ratePerAccount: number;
  emulatorFaults: EmulatorFaults | undefined;
  drainTimeoutMs: number;
  /** Keep the run's directory (logs, data) even when every check passes; it is always kept otherwise. */
  keepDir: boolean;
  log: (line: string) => void;
}

export interface PhaseResult {
  name: PhaseOptions['name'];
  /** Seconds from the insert until every item was archived or failed; undefined when it timed out. */
  drainSeconds: number | undefined;
  elapsedSeconds: number;
  verification: Verification | undefined;
  /** Why the phase could not finish or check its outcome. */
  error: string | undefined;
  kills: number;
  temporalRestarts: number;
  postgresRestarts: number;
  workerExits: WorkerExit[];
  /** Faults the emulator injected, by kind, over all accounts. */
  injectedFaults: Record<string, number>;
  /** Requests the emulator never answered or answered by dropping the connection, by route. */
  droppedRequests: Record<string, number>;
  /** When the drain did not finish: the activities Temporal still waited for. */
  stuck: string[];
  dir: string;
}

const WORKERS_UP_TIMEOUT_MS = 180_000;
/** The workers' first wait before retrying an item whose source failed (ARCHIVER_ITEM_RETRY_DELAY). */
const ITEM_RETRY_DELAY = '2s';
const PROGRESS_EVERY_MS = 5_000;
const POLL_EVERY_MS = 1_000;

function emulatorArgs(o: PhaseOptions): string[] {
  const args = ['--seed', String(o.seed), '--rate', String(o.ratePerAccount)];
  for (const c of o.plan.customers) args.push('--account', `${c.token}=${c.accountId}`);
  const f = o.emulatorFaults;
  if (f) {
    args.push('--fail-5xx', String(f.serverErrorShare), '--reset', String(f.resetShare));
    args.push('--lost-response', String(f.lostResponseShare), '--stall', String(f.stallShare));
    args.push('--fail-429', String(f.tooManyRequestsShare), '--plain-429', String(f.plainText429Share));
    args.push('--omit-retry-after', String(f.noRetryAfterShare));
  }
  return args;
}

/** Runs one phase and always stops every process it started. */
export async function runPhase(o: PhaseOptions): Promise<PhaseResult> {
  const dir = mkdtempSync(join(tmpdir(), `archiver-chaos-${o.name}-`));
  chmodSync(dir, 0o755); // Postgres runs as the postgres user when we are root
  const began = Date.now();
  const log = (line: string): void => o.log(`[${o.name} ${((Date.now() - began) / 1000).toFixed(0)}s] ${line}`);
  const result: PhaseResult = {
    name: o.name,
    drainSeconds: undefined,
    elapsedSeconds: 0,
    verification: undefined,
    error: undefined,
    kills: 0,
    temporalRestarts: 0,
    postgresRestarts: 0,
    workerExits: [],
    injectedFaults: {},
    droppedRequests: {},
    stuck: [],
    dir,
  };
  const cleanups: (() => Promise<unknown>)[] = [];
  let supervisor: WorkerSupervisor | undefined;
  try {
    log(`starting Postgres, Temporal, the emulator and the media server in ${dir}`);
    // Bundled once per phase, so a restarted worker polls in about a second, as in the Docker image.
    const [postgres, temporal, emulator, media, workflowBundle] = await Promise.all([
      PostgresPart.start(dir).then((p) => (cleanups.push(() => p.stop()), p)),
      TemporalPart.start(dir).then((t) => (cleanups.push(() => t.stop()), t)),
      EmulatorPart.start(dir, emulatorArgs(o)).then((e) => (cleanups.push(() => e.stop()), e)),
      MediaPart.start(dir).then((m) => (cleanups.push(() => m.stop()), m)),
      writeWorkflowBundle(join(dir, 'workflow-bundle.js')),
    ]);
    const databaseUrl = await postgres.createDatabase('archiver');
    await migrate(databaseUrl);
    const poolLog = logStream(dir, 'orchestrator-pool.log');
    const pool: pg.Pool = createPool(databaseUrl, 4, {
      warn: (message, meta) =>
        poolLog.write(`${JSON.stringify({ time: new Date().toISOString(), message, ...meta })}\n`),
    });
    cleanups.push(() => pool.end());
    const db = dbFromPool(pool);
    for (const c of o.plan.customers) {
      await upsertCustomer(db, loadSecretKeyring(), {
        id: c.id,
        name: c.name,
        accessToken: c.token,
        folderRoot: FOLDER_ROOT,
        pathTemplate: PATH_TEMPLATE,
      });
    }

    supervisor = new WorkerSupervisor(
      {
        TEMPORAL_ADDRESS: temporal.address,
        DATABASE_URL: databaseUrl,
        DROPBOX_API_BASE: emulator.url,
        ARCHIVER_LOG_LEVEL: 'INFO',
        // A healed source is retried within the drain (the default first wait is 30 s).
        ARCHIVER_ITEM_RETRY_DELAY: ITEM_RETRY_DELAY,
        ARCHIVER_WORKFLOW_BUNDLE: workflowBundle,
      },
      o.workers,
      dir,
    );
    const workers = supervisor;
    cleanups.push(() => workers.stop());
    log(`starting ${o.workers} workers`);
    workers.start();
    await workers.waitAllUp(WORKERS_UP_TIMEOUT_MS);
    const client = await connectClient(
      { address: temporal.address, namespace: 'default' },
      archiverDataConverter(loadSecretKeyring()),
    );
    try {
      for (const c of o.plan.customers) await startCustomer(client, c.id, c.name);
    } finally {
      await client.connection.close();
    }

    const insertedAt = Date.now();
    const items = await insertItems(db, o.plan, media.url);
    log(`inserted ${items.length} items for ${o.plan.customers.length} customers; draining`);

    let counts: Counts | undefined;
    const settled = (): number => (counts ? counts.archived + counts.failed : 0);
    const schedule = new ChaosSchedule(
      o.plan.events,
      () => settled() / items.length,
      { workers, temporal, postgres },
      new SeededRandom(o.seed ^ 0x5eed),
      log,
    );

    const deadline = insertedAt + o.drainTimeoutMs;
    let lastProgress = 0;
    let drained = false;
    while (Date.now() < deadline && schedule.error === undefined) {
      try {
        counts = await countItems(db);
      } catch {
        // Postgres is restarting: keep the last counts
      }
      if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = Date.now();
        const c = counts ?? { archived: 0, failed: 0, pending: 0, leased: 0 };
        log(
          `archived ${c.archived} failed ${c.failed} pending ${c.pending} leased ${c.leased} | ` +
            `kills ${workers.kills} restarts temporal ${schedule.temporalRestarts} postgres ${schedule.postgresRestarts} | ` +
            `workers up ${workers.up}/${workers.size}, exits ${workers.exits.length}`,
        );
      }
      if (counts && counts.pending + counts.leased === 0 && settled() >= items.length && schedule.done) {
        drained = true;
        break;
      }
      await sleep(POLL_EVERY_MS);
    }
    if (drained) {
      result.drainSeconds = (Date.now() - insertedAt) / 1000;
      log(`drained in ${result.drainSeconds.toFixed(1)} s`);
    } else {
      result.error = schedule.error ?? `the drain did not finish within ${(o.drainTimeoutMs / 1000).toFixed(0)} s`;
      log(result.error);
      result.stuck = await pendingActivities(temporal.address, o.plan.customers).catch((err: unknown) => [
        `could not describe the workflows: ${(err as Error).message}`,
      ]);
    }
    await schedule.stop(120_000);
    result.temporalRestarts = schedule.temporalRestarts;
    result.postgresRestarts = schedule.postgresRestarts;
    // Nothing may write to Dropbox while it is checked.
    await workers.stop();
    result.kills = workers.kills;
    result.workerExits = workers.exits;

    await emulator.admin('POST', 'config', {
      serverErrorShare: 0,
      resetShare: 0,
      lostResponseShare: 0,
      stallShare: 0,
      tooManyRequestsShare: 0,
    });
    const stats = await emulator.admin<{
      requests: Record<string, number>;
      accounts: Record<string, { faults: Record<string, number> }>;
    }>('GET', 'stats');
    for (const [key, n] of Object.entries(stats.requests)) {
      if (/ (stalled|reset|lost)$/.test(key)) result.droppedRequests[key] = n;
    }
    for (const account of Object.values(stats.accounts)) {
      for (const [kind, n] of Object.entries(account.faults)) {
        result.injectedFaults[kind] = (result.injectedFaults[kind] ?? 0) + n;
      }
    }
    log('verifying every item and every file');
    result.verification = await verifyOutcome({
      customers: o.plan.customers,
      items,
      rows: await itemRows(db),
      emulator,
      mediaUrl: media.url,
    });
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
    log(`failed: ${result.error}`);
  } finally {
    if (supervisor) {
      result.kills = supervisor.kills;
      result.workerExits = supervisor.exits;
    }
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    result.elapsedSeconds = (Date.now() - began) / 1000;
    const clean = result.error === undefined && result.verification && failedChecks(result.verification).length === 0;
    if (clean && !o.keepDir) rmSync(dir, { recursive: true, force: true });
  }
  return result;
}
