/**
 * `npm run cluster -- [--workers N]`: the production topology as processes on this machine. A
 * Temporal Server (all four services) on embedded Postgres with its schemas set up by Temporal's
 * SQL tool, the standalone Web UI pointed at it, N Archiver worker processes, the Dropbox emulator
 * and the demo media server. It keeps nothing between runs: each run starts from empty databases
 * under .data/cluster/.
 */
import { loadSecretKeyring } from '../workers/config.js';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { startDropboxEmulator } from 'dropbox-emulator';
import { DATA_DIR } from '../client/stack-file.js';
import { migrate } from '../db/migrate.js';
import { connectClient } from '../temporal/connection.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { writeWorkflowBundle } from '../workers/bundle.js';
import { SECRET_KEYS_FILE_VARIABLE } from '../secrets/keyring.js';
import { startMediaServer } from './media-server.js';
import { useDevSecretKeys } from './secret-keys.js';
import { freePort } from './ports.js';
import { spawnWorkerProcess } from './worker-process.js';
import { EMBEDDED_POSTGRES_PASSWORD, startEmbeddedPostgres } from './postgres.js';
import { resolveTemporalServer, startTemporalCluster } from './temporal-cluster.js';
import { resolveTemporalUi, startTemporalUi } from './temporal-ui.js';
import { archiverDataConverter } from '../temporal/payload-codec.js';

const WORKER_UP_TIMEOUT_MS = 90_000;

const workersOption = (raw: string): number => {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 16) throw new InvalidArgumentError('must be a whole number from 1 to 16');
  return n;
};
const options = new Command('npm run cluster --')
  .description('Runs a Temporal Server on Postgres with N Archiver worker processes, the emulator and media server.')
  .option('--workers <n>', 'Archiver worker processes (1-16)', workersOption, 2)
  .option('--rate <n>', 'uploads/s the emulator takes per account', (raw) => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
    return n;
  })
  .showHelpAfterError('(see: npm run cluster -- --help)')
  .parse()
  .opts<{ workers: number; rate?: number }>();

const log = (line: string) => console.log(`[cluster] ${line}`);
const dir = join(DATA_DIR, 'cluster');

/** Starts a worker process, its output going to worker-<index>.log, and resolves once it polls. */
async function startWorker(index: number, env: Record<string, string>): Promise<ChildProcess> {
  const logPath = join(dir, `worker-${index}.log`);
  const out = createWriteStream(logPath, { flags: 'a' });
  const worker = spawnWorkerProcess({ ARCHIVER_LOG_LEVEL: 'INFO', ...env });
  worker.child.stdout?.pipe(out);
  worker.child.stderr?.pipe(out);
  const timer = new AbortController();
  const timeout = sleep(WORKER_UP_TIMEOUT_MS, undefined, { signal: timer.signal }).then(
    () =>
      Promise.reject(
        new Error(`worker ${index} did not start within ${WORKER_UP_TIMEOUT_MS / 1000} s; see ${logPath}`),
      ),
    () => undefined,
  );
  try {
    await Promise.race([worker.started, timeout]);
  } finally {
    timer.abort();
  }
  return worker.child;
}

async function main(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    // With no ARCHIVER_SECRET_KEYS, the workers (which inherit it) and the CLI share the development key in .data/.
    const devKeys = useDevSecretKeys(log);
    const binaries = await resolveTemporalServer({ log });
    const uiBinary = await resolveTemporalUi({ log });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    log(`starting embedded Postgres (${join(dir, 'postgres')})…`);
    const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'postgres') });
    cleanups.push(() => postgres.stop());
    const temporal = await startTemporalCluster({
      binaries,
      postgres: { host: '127.0.0.1', port: postgres.port, user: 'postgres', password: EMBEDDED_POSTGRES_PASSWORD },
      dataDir: join(dir, 'temporal'),
      log,
    });
    cleanups.push(() => temporal.stop());
    const ui = await startTemporalUi({ binary: uiBinary, temporalAddress: temporal.address, dataDir: join(dir, 'ui') });
    cleanups.push(() => ui.stop());
    const client = await connectClient(
      { address: temporal.address, namespace: 'default' },
      archiverDataConverter(loadSecretKeyring()),
    );
    cleanups.push(() => client.connection.close());
    // A real cluster registers custom search attributes through the operator service.
    await ensureSearchAttributes(client);
    const databaseUrl = await postgres.createDatabase('archiver');
    await migrate(databaseUrl);
    const emulator = await startDropboxEmulator({
      acceptAnyToken: true,
      keepContent: false,
      ...(options.rate ? { uploadsPerSecond: options.rate } : {}),
    });
    cleanups.push(() => emulator.stop());
    const media = await startMediaServer({ port: await freePort() });
    cleanups.push(() => media.stop());
    const bundle = await writeWorkflowBundle(join(dir, 'workflow-bundle.js'), { quiet: true });
    const metrics: string[] = [];
    const workers: ChildProcess[] = [];
    cleanups.push(async () => {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(0) : w.once('exit', r)))));
    });
    for (let i = 1; i <= options.workers; i++) {
      const metricsAddress = `127.0.0.1:${await freePort()}`;
      metrics.push(metricsAddress);
      const env = {
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: 'default',
        DATABASE_URL: databaseUrl,
        DROPBOX_API_BASE: emulator.url,
        ARCHIVER_METRICS_ADDRESS: metricsAddress,
        ARCHIVER_WORKFLOW_BUNDLE: bundle,
        ...(devKeys ? { [SECRET_KEYS_FILE_VARIABLE]: devKeys } : {}),
      };
      workers.push(await startWorker(i, env));
      log(`worker ${i} polling (metrics http://${metricsAddress}/metrics, log ${join(dir, `worker-${i}.log`)})`);
    }
    const env = `TEMPORAL_ADDRESS=${temporal.address} DATABASE_URL=${databaseUrl} DROPBOX_API_BASE=${emulator.url}${devKeys ? ` ${SECRET_KEYS_FILE_VARIABLE}=${devKeys}` : ''}`;
    console.log(
      [
        '',
        `Temporal Server : ${temporal.address} (metrics http://${temporal.metricsAddress}/metrics, log ${join(dir, 'temporal', 'server.log')})`,
        `Web UI          : ${ui.url}/namespaces/default/workflows (log ${join(dir, 'ui', 'ui.log')})`,
        `Postgres        : ${postgres.url.replace(EMBEDDED_POSTGRES_PASSWORD, '***')}`,
        `Dropbox emulator: ${emulator.url}`,
        `media server    : ${media.url}`,
        `workers         : ${options.workers}`,
        '',
        'Try it from another terminal:',
        `  ${env} npm run seed -- --customers 3 --items 1000 --media-base ${media.url}`,
        `  ${env} npm run archiver -- start --all`,
        `  ${env} npm run archiver -- status`,
        '',
        'Ctrl-C stops everything.',
      ].join('\n'),
    );
    let stopping = false;
    await new Promise<void>((resolve) => {
      const stop = () => {
        stopping = true;
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // Ctrl-C reaches the workers too (one process group): only an exit before it is news.
      for (const w of workers) w.once('exit', (code) => stopping || log(`a worker exited (${code}); see its log`));
    });
    log('stopping…');
  } finally {
    await stopAll();
  }
}

main().catch((err: unknown) => {
  console.error(`npm run cluster: ${(err as Error).message}`);
  process.exit(1);
});
