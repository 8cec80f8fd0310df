// The production topology for the cluster tests: a Temporal Server on embedded Postgres (not the
// dev server), Archiver worker processes, the Dropbox emulator and the media server, each on a
// free port of 127.0.0.1. The first run builds the server (dev/temporal-cluster.ts).
import { mkdtempSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { startCustomer } from '../../client/archiver-client.js';
import { upsertCustomer } from '../../db/customers.js';
import { testKeyring } from './secret-keys.js';
import { migrate } from '../../db/migrate.js';
import { createPool, dbFromPool, type Db } from '../../db/pool.js';
import { startMediaServer, type MediaServer } from '../../dev/media-server.js';
import { EMBEDDED_POSTGRES_PASSWORD, startEmbeddedPostgres, type RunningPostgres } from '../../dev/postgres.js';
import { resolveTemporalServer, startTemporalCluster, type TemporalCluster } from '../../dev/temporal-cluster.js';
import { connectClient } from '../../temporal/connection.js';
import { ensureSearchAttributes } from '../../temporal/search-attributes.js';
import { writeWorkflowBundle } from '../../workers/bundle.js';
import { workflowIdFor } from '../../workflows/names.js';
import { insertItems } from './items.js';
import { spawnWorkerProcess, type WorkerProcess } from './worker-process.js';
import { archiverDataConverter } from '../../temporal/payload-codec.js';

export const tokenOf = (id: string) => `cluster-token-${id}`;

export interface ClusterStack {
  dir: string;
  postgres: RunningPostgres;
  temporal: TemporalCluster;
  client: Client;
  emulator: DropboxEmulator;
  media: MediaServer;
  databaseUrl: string;
  db: Db;
  /** Every worker spawned, in order, including those since killed. */
  workers: WorkerProcess[];
  /**
   * Spawns one more worker process (environment over the stack's own; an undefined value leaves
   * that variable out) and waits until it polls.
   */
  addWorker(env?: Record<string, string | undefined>): Promise<WorkerProcess>;
  /** Inserts `items` pending items for each customer and starts each customer's workflow. */
  seedAndStart(customers: string[], items: number): Promise<void>;
  /** Archived items of the customers, now. */
  archived(customers: string[]): Promise<number>;
  /** Resolves once `total` items of the customers are archived. @throws after `timeoutMs` */
  untilArchived(customers: string[], total: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the stack with `workers` worker processes and an emulator account per customer, limited
 * to `rate` uploads/s each.
 */
export async function startClusterStack(options: {
  customers: string[];
  rate: number;
  workers: number;
  workerEnv?: (index: number) => Promise<Record<string, string>> | Record<string, string>;
}): Promise<ClusterStack> {
  const dir = mkdtempSync(join(tmpdir(), 'archiver-cluster-'));
  const log = (line: string) => console.log(`[cluster test] ${line}`);
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    const binaries = await resolveTemporalServer({ log });
    const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'postgres') });
    cleanups.push(() => postgres.stop());
    const temporal = await startTemporalCluster({
      binaries,
      postgres: { host: '127.0.0.1', port: postgres.port, user: 'postgres', password: EMBEDDED_POSTGRES_PASSWORD },
      dataDir: join(dir, 'temporal'),
      log,
    });
    cleanups.push(() => temporal.stop());
    const client = await connectClient(
      { address: temporal.address, namespace: 'default' },
      archiverDataConverter(testKeyring()),
    );
    cleanups.push(() => client.connection.close());
    await ensureSearchAttributes(client);
    const databaseUrl = await postgres.createDatabase('archiver');
    await migrate(databaseUrl);
    const pool: pg.Pool = createPool(databaseUrl, 4);
    cleanups.push(() => pool.end());
    const db = dbFromPool(pool);
    const emulator = await startDropboxEmulator({
      accounts: options.customers.map((id) => ({ token: tokenOf(id), accountId: id })),
      uploadsPerSecond: options.rate,
      keepContent: false,
    });
    cleanups.push(() => emulator.stop());
    const media = await startMediaServer();
    cleanups.push(() => media.stop());
    const bundle = await writeWorkflowBundle(join(dir, 'workflow-bundle.js'), { quiet: true });
    const workers: WorkerProcess[] = [];
    cleanups.push(async () => {
      for (const w of workers) w.child.kill('SIGKILL');
      await Promise.all(workers.map((w) => w.exited));
    });
    const addWorker = async (env: Record<string, string | undefined> = {}) => {
      const merged: Record<string, string | undefined> = {
        TEMPORAL_ADDRESS: temporal.address,
        DATABASE_URL: databaseUrl,
        DROPBOX_API_BASE: emulator.url,
        ARCHIVER_WORKFLOW_BUNDLE: bundle,
        ...(await options.workerEnv?.(workers.length)),
        ...env,
      };
      const worker = spawnWorkerProcess(
        Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined)),
      );
      workers.push(worker);
      await withTimeout(worker.started, 90_000, 'a worker did not start polling');
      return worker;
    };
    for (let i = 0; i < options.workers; i++) await addWorker();
    const archived = async (customers: string[]) => {
      const [row] = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM archive_items WHERE state = 'archived' AND customer_id = ANY($1)",
        [customers],
      );
      return row?.n ?? 0;
    };
    return {
      dir,
      postgres,
      temporal,
      client,
      emulator,
      media,
      databaseUrl,
      db,
      workers,
      addWorker,
      async seedAndStart(customers, items) {
        for (const id of customers) {
          await upsertCustomer(db, testKeyring(), { id, name: `Cluster ${id}`, accessToken: tokenOf(id) });
          await insertItems(db, id, tokenOf(id), media.url, items, { bytes: 1_000 });
        }
        for (const id of customers) await startCustomer(client, id, `Cluster ${id}`);
      },
      archived,
      async untilArchived(customers, total, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const n = await archived(customers);
          if (n >= total) return;
          if (Date.now() > deadline) throw new Error(`only ${n} of ${total} archived in ${timeoutMs / 1000} s`);
          await sleep(1_000);
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The worker identity Temporal records for a worker process (the SDK's default, pid@host). */
export function identityOf(worker: WorkerProcess): string {
  return `${worker.child.pid}@${hostname()}`;
}

export interface WorkerEvent {
  customerId: string;
  /** A workflow task or an activity that this worker completed (or failed). */
  kind: 'workflow-task' | 'activity';
  identity: string;
  /** When the server recorded it, ms since the epoch. */
  at: number;
}

/** The workflow tasks and activities each worker identity completed, over every run of each customer's workflow. */
export async function workerEvents(client: Client, customers: string[]): Promise<WorkerEvent[]> {
  const events: WorkerEvent[] = [];
  for (const customerId of customers) {
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowIdFor(customerId)}'` })) {
      const history = await client.workflow.getHandle(workflowIdFor(customerId), run.runId).fetchHistory();
      for (const e of history.events ?? []) {
        const at = Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
        const task = e.workflowTaskCompletedEventAttributes?.identity ?? e.workflowTaskFailedEventAttributes?.identity;
        if (task) events.push({ customerId, kind: 'workflow-task', identity: task, at });
        const activity =
          e.activityTaskCompletedEventAttributes?.identity ?? e.activityTaskFailedEventAttributes?.identity;
        if (activity) events.push({ customerId, kind: 'activity', identity: activity, at });
      }
    }
  }
  return events;
}

/** Uploads the customers' emulator accounts answered, and how many of those were 429s. */
export function uploadAnswers(emulator: DropboxEmulator, customers: string[]): { requests: number; refused: number } {
  let requests = 0;
  let refused = 0;
  for (const id of customers) {
    for (const [route, n] of Object.entries(emulator.stats().accounts[id]?.requests ?? {})) {
      if (!route.startsWith('/2/files/upload')) continue;
      requests += n;
      if (route.endsWith(' 429')) refused += n;
    }
  }
  return { requests, refused };
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(ms, undefined, { signal: timer.signal }).then(
        () => Promise.reject(new Error(`${what} within ${ms / 1000} s`)),
        () => new Promise<never>(() => undefined),
      ),
    ]);
  } finally {
    timer.abort();
  }
}
