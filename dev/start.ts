/**
 * `npm start`: the whole of Archiver on embedded defaults, in one process: Postgres, the Temporal
 * dev server with its Web UI, the Dropbox emulator, the demo media server and a worker. Anything
 * configured in the environment (DATABASE_URL, TEMPORAL_ADDRESS, DROPBOX_API_BASE) is used instead.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from '@temporalio/worker';
import { Command, InvalidArgumentError } from 'commander';
import { createPool, dbFromPool } from '../db/pool.js';
import { listCustomers } from '../db/customers.js';
import { sealPlaintextTokens } from '../db/sealed-tokens.js';
import { itemCounts, totalRateLimited } from '../db/item-counts.js';
import { startCustomer } from '../client/archiver-client.js';
import { ItemsNotifier } from '../workers/notifier.js';
import { migrate } from '../db/migrate.js';
import { connectClient, type TemporalTarget } from '../temporal/connection.js';
import { loadDevStackConfig, loadSecretKeyring } from '../workers/config.js';
import { SECRET_KEYS_FILE_VARIABLE } from '../secrets/keyring.js';
import { exitCodeFor, failureMessage } from '../workers/startup.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { workflowIdFor } from '../workflows/names.js';
import { statusQuery } from '../workflows/messages.js';
import { installRuntime } from '../workers/runtime.js';
import { connectWorker, createArchiverWorker } from '../workers/worker.js';
import { startDropboxEmulator } from 'dropbox-emulator';
import { startMediaServer } from './media-server.js';
import { freePort } from './ports.js';
import { startEmbeddedPostgres } from './postgres.js';
import { ProgressDisplay } from './progress.js';
import { DEV_SERVER_SEARCH_ATTRIBUTES } from './search-attributes.js';
import { seedDemo } from './demo-data.js';
import { useDevSecretKeys } from './secret-keys.js';
import { DATA_DIR, writeStackFile } from '../client/stack-file.js';
import { startTemporalDevServer } from './temporal-server.js';
import { archiverDataConverter } from '../temporal/payload-codec.js';
import { startCodecServer } from '../temporal/codec-server.js';

function positiveNumber(name: string, integer: boolean) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0) || (integer && !Number.isInteger(n)))
      throw new InvalidArgumentError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got "${value}"`);
    return n;
  };
}

const options = new Command('npm start --')
  .description(
    'Run Archiver on embedded defaults: Postgres, Temporal with its Web UI, a Dropbox emulator, demo media and a worker.',
  )
  .option(
    '--customers <n>',
    'demo customers to seed when the database is empty',
    positiveNumber('--customers', true),
    3,
  )
  .option('--items <m>', 'demo items per customer to seed', positiveNumber('--items', true), 200)
  .option('--rate <r>', 'emulated Dropbox uploads per second per customer token', positiveNumber('--rate', false), 20)
  .option('--until-drained', 'exit 0 once every item is archived, after printing a summary')
  .showHelpAfterError()
  .parse()
  .opts<{ customers: number; items: number; rate: number; untilDrained?: boolean }>();

/** Prefers the well-known port (so the UI is where people expect it), else any free one. */
async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(freePort()));
    probe.listen(preferred, '127.0.0.1', () => probe.close(() => resolve(preferred)));
  });
}

const log = (message: string): void => console.log(`[archiver] ${message}`);

async function main(): Promise<number> {
  const started = Date.now();
  // Checked before anything starts or is written, with the worker's schema.
  const config = loadDevStackConfig();
  const timeouts = config.databaseTimeouts;
  mkdirSync(DATA_DIR, { recursive: true });
  // The embedded default of ARCHIVER_SECRET_KEYS: a development key under .data/.
  useDevSecretKeys(log);
  const keyring = loadSecretKeyring();
  // The terminal shows progress; the worker's JSON logs go to a file.
  const workerLog = join(DATA_DIR, 'worker.log');
  const metricsAddress = config.metricsAddress;
  installRuntime({
    logLevel: config.logLevel,
    logStream: createWriteStream(workerLog, { flags: 'a' }),
    metricsAddress,
  });
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      log('starting embedded Postgres (.data/postgres)…');
      const postgres = await startEmbeddedPostgres({ dataDir: join(DATA_DIR, 'postgres') });
      cleanups.push(() => postgres.stop());
      databaseUrl = postgres.url;
    }
    await migrate(databaseUrl, timeouts);

    let temporal: TemporalTarget = config.temporal;
    let uiUrl: string | undefined;
    let codecUrl: string | undefined;
    // A Temporal address, or a profile of Temporal's client config asked for by name, points elsewhere.
    const { TEMPORAL_ADDRESS, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE } = process.env;
    if (!TEMPORAL_ADDRESS && !TEMPORAL_PROFILE && !TEMPORAL_CONFIG_FILE) {
      log('starting the Temporal dev server (.data/temporal.db); the first run installs the temporal CLI…');
      const uiPort = await portOr(8233);
      // The Web UI shows payloads through the codec server; the token in its endpoint's path is
      // new at every start, and only this UI's origins may call it.
      const codecToken = randomBytes(24).toString('hex');
      const codec = await startCodecServer({
        keyring,
        token: codecToken,
        origins: [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
      });
      cleanups.push(() => codec.close());
      codecUrl = codec.url;
      const server = await startTemporalDevServer({
        dbFilename: join(DATA_DIR, 'temporal.db'),
        port: await portOr(7233),
        uiPort,
        uiCodecEndpoint: `${codec.url}/${codecToken}`,
        searchAttributes: DEV_SERVER_SEARCH_ATTRIBUTES,
        logFile: join(DATA_DIR, 'temporal.log'),
      });
      cleanups.push(() => server.stop());
      temporal = { address: server.address, namespace: config.temporal.namespace, connectTimeoutMs: 10_000 };
      uiUrl = server.uiUrl;
    }
    const { namespace } = temporal;

    let dropboxApiBase = config.dropboxApiBase;
    // The demo uploads gigabytes: the emulator keeps hashes, not bytes.
    const emulator = dropboxApiBase
      ? undefined
      : await startDropboxEmulator({ acceptAnyToken: true, uploadsPerSecond: options.rate, keepContent: false });
    if (emulator) {
      cleanups.push(() => emulator.stop());
      dropboxApiBase = emulator.url;
    }
    // A fixed port, because seeded items keep their media URLs across restarts.
    const media = await startMediaServer({ port: config.mediaPort });
    cleanups.push(() => media.stop());
    writeStackFile({
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: namespace,
      DROPBOX_API_BASE: dropboxApiBase ?? '',
      MEDIA_BASE: media.url,
      // The CLI and `npm run seed` in another terminal seal and open tokens with the same keys; never the keys themselves.
      ...(process.env[SECRET_KEYS_FILE_VARIABLE]
        ? { [SECRET_KEYS_FILE_VARIABLE]: process.env[SECRET_KEYS_FILE_VARIABLE] }
        : {}),
    });

    // Pool trouble goes to the worker's log, not over the progress display.
    const pool = createPool(databaseUrl, 20, Runtime.instance().logger, timeouts);
    cleanups.push(() => pool.end());
    const db = dbFromPool(pool);
    const sealed = await sealPlaintextTokens(db, keyring);
    if (sealed > 0) log(`sealed the plaintext Dropbox tokens of ${sealed} customers from an earlier run`);
    let customers = await listCustomers(db, { activeOnly: true });
    if (customers.length === 0) {
      log(`seeding ${options.customers} demo customers × ${options.items} items…`);
      await seedDemo(db, keyring, {
        customers: options.customers,
        itemsPerCustomer: options.items,
        mediaBase: media.url,
      });
      customers = await listCustomers(db, { activeOnly: true });
    } else {
      log(`resuming ${customers.length} customers from .data/ (delete .data/ to start over)`);
    }

    const connection = await connectWorker(temporal);
    cleanups.push(() => connection.close());
    const dataConverter = archiverDataConverter(keyring);
    const worker = await createArchiverWorker({
      connection,
      namespace,
      activities: { db, keyring, dropboxApiBase },
      dataConverter,
      shutdownGraceMs: 10_000,
    });
    const client = await connectClient(temporal, dataConverter);
    cleanups.push(() => client.connection.close());
    await ensureSearchAttributes(client);
    const notifier = new ItemsNotifier({ databaseUrl, databaseTimeouts: timeouts, client });
    await notifier.start();
    cleanups.push(() => notifier.stop());
    const running = worker.run();
    for (const c of customers) await startCustomer(client, c.id, c.name);

    log(
      `${customers.length} customers archiving into ${emulator ? `the Dropbox emulator at ${dropboxApiBase}` : dropboxApiBase}`,
    );
    if (uiUrl) log(`Temporal Web UI: ${uiUrl}/namespaces/${namespace}/workflows`);
    if (codecUrl) log(`codec server (the Web UI decrypts payloads through it): ${codecUrl}`);
    log(`worker logs: ${workerLog}`);
    if (metricsAddress) log(`metrics: http://${metricsAddress}/metrics`);
    log('operate it from another terminal with: npm run archiver -- status   (Ctrl-C stops)');

    const progress = new ProgressDisplay();
    let drained = false;
    const watch = (async () => {
      while (worker.getState() === 'RUNNING') {
        const counts = await itemCounts(db);
        const rows = customers.map((c) => {
          const n = counts.get(c.id) ?? { pending: 0, leased: 0, archived: 0, failed: 0, skipped: 0 };
          return {
            customerId: c.id,
            archived: n.archived,
            failed: n.failed,
            total: n.pending + n.leased + n.archived + n.failed,
          };
        });
        const rates = new Map<string, number>();
        await Promise.all(
          customers.map(async (c) => {
            const s = await client.workflow
              .getHandle(workflowIdFor(c.id))
              .query(statusQuery)
              .catch(() => undefined);
            if (s) rates.set(c.id, s.ratePerSecond);
          }),
        );
        progress.update(rows, rates);
        if (options.untilDrained && rows.every((r) => r.archived + r.failed === r.total)) {
          drained = true;
          progress.stop();
          const archived = rows.reduce((n, r) => n + r.archived, 0);
          const rateLimited = emulator ? emulator.stats().rateLimited : await totalRateLimited(db);
          const failed = rows.reduce((n, r) => n + r.failed, 0);
          console.log(
            `archived ${archived} items for ${customers.length} customers in ${((Date.now() - started) / 1000).toFixed(1)}s (429 responses: ${rateLimited})${failed ? `; ${failed} items failed, see: npm run archiver -- status` : ''}`,
          );
          worker.shutdown();
          return;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      progress.stop();
    })();
    await running;
    await watch;
    return options.untilDrained && !drained ? 1 : 0;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`[archiver] ${failureMessage(err)}`);
    process.exit(exitCodeFor(err));
  },
);
