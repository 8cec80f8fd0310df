/** Boots the one embedded stack the benchmark runs on: Postgres, Temporal (headless), emulator, media server. */
import { loadSecretKeyring } from '../workers/config.js';
import { chmodSync, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createPool, dbFromPool, type Db } from '../db/pool.js';
import { connectClient } from '../temporal/connection.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { migrate } from '../db/migrate.js';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, type MediaServer } from '../dev/media-server.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../dev/postgres.js';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from '../dev/search-attributes.js';
import { startTemporalDevServer } from '../dev/temporal-server.js';
import { installRuntime } from '../workers/runtime.js';
import { WORKFLOWS_PATH } from '../workers/worker.js';
import { archiverDataConverter, FAILURE_CONVERTER_PATH } from '../temporal/payload-codec.js';

export interface BenchDatabase {
  url: string;
  db: Db;
  close(): Promise<void>;
}

/** One Temporal dev server, with a worker connection and a client for its `default` namespace. */
export interface BenchTemporal {
  address: string;
  /** Whether the server honours task fairness keys (`matching.enableFairness`). */
  fairness: boolean;
  /** Process id of the server, to read its CPU from /proc. */
  pid: number | undefined;
  connection: NativeConnection;
  client: Client;
}

/** The namespace of the scale scenario, whose worker runs on the production task queue. */
export const SCALE_NAMESPACE = 'bench-scale';

export interface BenchStack {
  dir: string;
  postgres: RunningPostgres;
  /** The default Temporal server: fairness on, as `npm start` runs it. */
  temporal: BenchTemporal;
  temporalAddress: string;
  connection: NativeConnection;
  client: Client;
  /** A second Temporal server with `matching.enableFairness: false`, started on first use. */
  temporalWithoutFairness(): Promise<BenchTemporal>;
  emulator: DropboxEmulator;
  media: MediaServer;
  bundle: WorkflowBundleWithSourceMap;
  /** A new, migrated database, so every (scenario, design) run starts from the same empty state. */
  newDatabase(name: string): Promise<BenchDatabase>;
  stop(): Promise<void>;
}

/** 10,000 workflows start in a burst; the dev server's default per-namespace RPS would throttle it. */
const HIGH_RPS = {
  'frontend.namespaceRPS': 100_000,
  'frontend.rps': 100_000,
  'history.rps': 100_000,
  'matching.rps': 100_000,
};

async function startTemporal(
  dir: string,
  name: string,
  fairness: boolean,
  cleanups: Array<() => Promise<unknown>>,
): Promise<BenchTemporal> {
  const server = await startTemporalDevServer({
    uiPort: false,
    searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES,
    logFile: join(dir, `${name}.log`),
    extraNamespaces: [SCALE_NAMESPACE],
    dynamicConfig: { ...HIGH_RPS, 'matching.enableFairness': fairness },
  });
  cleanups.push(() => server.stop());
  const connection = await NativeConnection.connect({ address: server.address });
  cleanups.push(() => connection.close());
  const client = await connectClient(
    { address: server.address, namespace: 'default' },
    archiverDataConverter(loadSecretKeyring()),
  );
  cleanups.push(() => client.connection.close());
  await ensureSearchAttributes(client);
  return { address: server.address, fairness, pid: server.pid, connection, client };
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
      startEmbeddedPostgres({ dataDir: join(dir, 'postgres') }).then((p) => {
        cleanups.push(() => p.stop());
        return p;
      }),
      startTemporal(dir, 'temporal', true, cleanups),
      startDropboxEmulator({ keepContent: false }).then((e) => {
        cleanups.push(() => e.stop());
        return e;
      }),
      startMediaServer().then((m) => {
        cleanups.push(() => m.stop());
        return m;
      }),
      bundleWorkflowCode({
        workflowsPath: WORKFLOWS_PATH,
        failureConverterPath: FAILURE_CONVERTER_PATH,
        logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
      }),
    ]);
    let withoutFairness: Promise<BenchTemporal> | undefined;
    const temporalWithoutFairness = (): Promise<BenchTemporal> => {
      if (!withoutFairness) log('starting a second Temporal server with matching.enableFairness=false…');
      withoutFairness ??= startTemporal(dir, 'temporal-no-fairness', false, cleanups);
      return withoutFairness;
    };
    const newDatabase = async (name: string): Promise<BenchDatabase> => {
      const url = await postgres.createDatabase(name);
      await migrate(url);
      const pool = createPool(url, 20);
      return { url, db: dbFromPool(pool), close: () => pool.end() };
    };
    return {
      dir,
      postgres,
      temporal,
      temporalAddress: temporal.address,
      connection: temporal.connection,
      client: temporal.client,
      temporalWithoutFairness,
      emulator,
      media,
      bundle,
      newDatabase,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
