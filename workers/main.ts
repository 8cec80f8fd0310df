/** `npm run worker`: hosts Archiver's workflows and activities, configured from the environment. */
import { createPool, dbFromPool } from '../activities/db.js';
import { migrate } from '../db/migrate.js';
import { ConfigError, loadConfig, requireDatabaseUrl } from './config.js';
import { installJsonLogging } from './logging.js';
import { connectWorker, createArchiverWorker } from './worker.js';

async function main(): Promise<void> {
  const config = loadConfig();
  installJsonLogging(config.logLevel);
  const databaseUrl = requireDatabaseUrl(config);
  await migrate(databaseUrl);
  const pool = createPool(databaseUrl, 20);
  const connection = await connectWorker(config.temporal);
  try {
    const worker = await createArchiverWorker({
      connection,
      namespace: config.temporal.namespace,
      activities: { db: dbFromPool(pool), dropboxApiBase: config.dropboxApiBase, dropboxApp: config.dropboxApp },
      shutdownGraceMs: config.shutdownGraceMs,
      maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    });
    console.log(JSON.stringify({ time: new Date().toISOString(), level: 'info', message: 'worker started', namespace: config.temporal.namespace, taskQueue: worker.options.taskQueue }));
    // Temporal's runtime handles SIGINT/SIGTERM: it stops polling and lets in-flight work finish.
    await worker.run();
  } finally {
    await connection.close();
    await pool.end();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
