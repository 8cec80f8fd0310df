/** Boots the one embedded stack the benchmark runs on: Postgres, Temporal (headless), emulator, media server. */
import { chmodSync, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createPool, dbFromPool, type Db } from '../activities/db.js';
import { connectClient, ensureSearchAttributes } from '../client/archiver-client.js';
import { migrate } from '../db/migrate.js';
import { startDropboxEmulator, type DropboxEmulator } from '../dev/emulator/server.js';
import { startMediaServer, type MediaServer } from '../dev/media-server.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/postgres.js';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../dev/search-attributes.js';
import { startTemporalDevServer } from '../dev/temporal-server.js';
import { installRuntime } from '../workers/runtime.js';
import { WORKFLOWS_PATH } from '../workers/worker.js';

export interface BenchDatabase { url: string; db: Db; close(): Promise<void> }

export interface BenchStack {
  dir: string;
  postgres: RunningPostgres;
  temporalAddress: string;
  connection: NativeConnection;
  client: Client;
  emulator: DropboxEmulator;
  media: MediaServer;
  bundle: WorkflowBundleWithSourceMap;
  /** A new, migrated database, so every (scenario, design) run starts from the same empty state. */
  newDatabase(name: string): Promise<BenchDatabase>;
  stop(): Promise<void>;
}

export async function startStack(log: (m: string) => void): Promise<BenchStack> {
  const dir = mkdtempSync(join(tmpdir(), 'archiver-bench-'));
  chmodSync(dir, 0o755); // postgres runs as the postgres user when we are root
  installRuntime({ logLevel: 'WARN', logStream: createWriteStream(join(dir, 'worker.log'), { flags: 'a' }) });
  const cleanups: Array<() => Promise<unknown>> = [];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    log(`stack dir ${dir}: starting Postgres, Temporal, emulator, media server…`);
    const [postgres, temporal, emulator, media, bundle] = await Promise.all([
      startEmbeddedPostgres({ dataDir: join(dir, 'postgres') }),
      startTemporalDevServer({
        uiPort: false, searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES, logFile: join(dir, 'temporal.log'),
        dynamicConfig: {
          // 10,000 workflows start in a burst; the dev server's default per-namespace RPS would throttle it.
          'frontend.namespaceRPS': 100_000, 'frontend.rps': 100_000, 'history.rps': 100_000, 'matching.rps': 100_000,
        },
      }),
      startDropboxEmulator({ keepContent: false }),
      startMediaServer(),
      bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } }),
    ]);
    cleanups.push(() => postgres.stop(), () => temporal.stop(), () => emulator.stop(), () => media.stop());
    const connection = await NativeConnection.connect({ address: temporal.address });
    cleanups.push(() => connection.close());
    const client = await connectClient({ address: temporal.address, namespace: 'default' });
    cleanups.push(() => client.connection.close());
    await ensureSearchAttributes(client);
    const newDatabase = async (name: string): Promise<BenchDatabase> => {
      const url = await postgres.createDatabase(name);
      await migrate(url);
      const pool = createPool(url, 20);
      return { url, db: dbFromPool(pool), close: () => pool.end() };
    };
    return { dir, postgres, temporalAddress: temporal.address, connection, client, emulator, media, bundle, newDatabase, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
