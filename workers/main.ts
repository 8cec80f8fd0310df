/** `npm run worker`: hosts Archiver's workflows and activities, configured from the environment. */
import { Runtime } from '@temporalio/worker';
import { createPool, dbFromPool } from '../db/pool.js';
import { ItemsNotifier } from './notifier.js';
import { migrate } from '../db/migrate.js';
import { sealPlaintextTokens } from '../db/sealed-tokens.js';
import { connectClient } from '../temporal/connection.js';
import { archiverDataConverter } from '../temporal/payload-codec.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { loadConfig, loadSecretKeyring, requireDatabaseUrl } from './config.js';
import { exitCodeFor, failureMessage, StartupCancelled, whenAvailable } from './startup.js';
import { installRuntime } from './runtime.js';
import { connectWorker, createArchiverWorker } from './worker.js';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

async function main(): Promise<void> {
  const config = loadConfig();
  // No keyring, no worker: it could neither open nor seal a customer's Dropbox tokens.
  const keyring = loadSecretKeyring();
  installRuntime({ logLevel: config.logLevel, metricsAddress: config.metricsAddress });
  const databaseUrl = requireDatabaseUrl(config);
  const dataConverter = archiverDataConverter(keyring);
  const logger = Runtime.instance().logger;
  // Until the worker runs (then Temporal's runtime takes signals over), a signal ends the wait.
  const stopWaiting = new AbortController();
  const onSignal = (): void => stopWaiting.abort();
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  const wait = {
    log: (message: string, fields: Record<string, unknown>) => {
      logger.warn(message, fields);
    },
    signal: stopWaiting.signal,
  };
  await whenAvailable(() => migrate(databaseUrl, config.databaseTimeouts), wait);
  const pool = createPool(databaseUrl, 20, logger, config.databaseTimeouts);
  const db = dbFromPool(pool);
  // Tokens written before they were sealed at rest (migration 007) are sealed now; SQL cannot.
  const sealed = await sealPlaintextTokens(db, keyring);
  logger.info('sealed plaintext Dropbox tokens at rest', { customers: sealed, keyId: keyring.current.id });
  const connection = await whenAvailable(() => connectWorker(config.temporal), wait);
  const client = await whenAvailable(() => connectClient(config.temporal, dataConverter), wait);
  const notifier = new ItemsNotifier({
    databaseUrl,
    databaseTimeouts: config.databaseTimeouts,
    client,
    log: (message, fields) => {
      logger.warn(message, fields);
    },
  });
  try {
    // The Web UI filters on these; registering is idempotent. A cluster that forbids it (Temporal
    // Cloud registers attributes in its console) only costs a warning.
    await ensureSearchAttributes(client).catch((err: unknown) => {
      logger.warn('could not register search attributes', { error: (err as Error).message });
    });
    await whenAvailable(() => notifier.start(), wait);
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    const worker = await createArchiverWorker({
      connection,
      namespace: config.temporal.namespace,
      activities: {
        db,
        keyring,
        dropboxApiBase: config.dropboxApiBase,
        dropboxApp: config.dropboxApp,
        itemRetry: config.itemRetry,
        liveWindowMs: config.liveWindowMs,
        sourceTimeouts: { answerMs: config.sourceTimeoutMs, idleMs: config.sourceTimeoutMs },
        dropboxTimeouts: { requestMs: config.dropboxTimeoutMs },
        initialRatePerSecond: config.initialRatePerSecond,
      },
      dataConverter,
      shutdownGraceMs: config.shutdownGraceMs,
      maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
      maxCachedWorkflows: config.maxCachedWorkflows,
      workerVersion: config.workerVersion,
      ...(config.workflowBundlePath ? { workflowBundle: { codePath: config.workflowBundlePath } } : {}),
    });
    console.log(
      JSON.stringify({
        time: new Date().toISOString(),
        level: 'info',
        message: 'worker started',
        namespace: config.temporal.namespace,
        taskQueue: worker.options.taskQueue,
        maxCachedWorkflows: worker.options.maxCachedWorkflows,
        // Versioned workers get work only once their version is current: archiver deploy set-current.
        deployment: config.workerVersion ?? 'unversioned',
      }),
    );
    // Temporal's runtime handles SIGINT/SIGTERM: it stops polling and lets in-flight work finish.
    await worker.run();
  } finally {
    await notifier.stop();
    await client.connection.close();
    await connection.close();
    await pool.end();
  }
}

main().catch((err: unknown) => {
  if (err instanceof StartupCancelled) process.exit(0);
  // One line naming what failed (the part and its variable), never a stack.
  console.error(`archiver worker: ${failureMessage(err)}`);
  process.exit(exitCodeFor(err));
});
