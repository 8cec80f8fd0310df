// A worker started before Postgres or Temporal is up waits for it, saying what it waits for, and
// then comes up and archives; a Postgres that accepts TCP and never answers is named as such.
import { afterAll, afterEach, expect, it } from 'vitest';
import { TASK_QUEUE } from '../../workflows/names.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { gatedProxy, silentServer } from '../support/tcp.js';
import { spawnWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

const stack = useArchiverStack({ namespace: 'startup', worker: false });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A worker process against the stack, with `env` overriding where it finds Postgres or Temporal. */
function spawnWorker(env: Record<string, string>): WorkerProcess {
  const worker = spawnWorkerProcess({
    TEMPORAL_ADDRESS: stack.temporal.address,
    TEMPORAL_NAMESPACE: stack.temporal.namespace,
    DATABASE_URL: stack.database.url,
    DROPBOX_API_BASE: stack.emulator.url,
    DATABASE_CONNECT_TIMEOUT: '1s',
    TEMPORAL_CONNECT_TIMEOUT: '1s',
    ...env,
  });
  cleanups.push(() => worker.child.kill('SIGKILL'));
  return worker;
}

/** Archives a few items for a new customer through whatever worker is polling the production queue. */
async function expectItArchives(): Promise<void> {
  const id = uniqueName('startup');
  stack.emulator.addAccount({ token: `token-${id}`, accountId: id });
  await insertItems(stack.database.db, id, `token-${id}`, stack.media.url, 5, { kind: 'voicemail', bytes: 1_000 });
  await startArchiving({ ...stack.temporal, taskQueue: TASK_QUEUE }, id);
  const status = await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 5, 60_000);
  expect(status.totals.archived).toBe(5);
}

const waitingFor = (worker: WorkerProcess, pattern: RegExp, what: string) =>
  eventually(() => Promise.resolve(pattern.test(worker.output()) ? true : undefined), 15_000, what);

it('waits for a Postgres that is not up yet, naming it without its password, then migrates and archives', async () => {
  const postgres = await gatedProxy(new URL(stack.database.url).host);
  cleanups.push(() => postgres.close());
  const url = new URL(stack.database.url);
  url.host = `127.0.0.1:${postgres.port}`;
  const worker = spawnWorker({ DATABASE_URL: url.href });
  await waitingFor(
    worker,
    new RegExp(`Postgres at 127\\.0\\.0\\.1:${postgres.port}/\\S+ \\(DATABASE_URL\\) refused the connection; waiting`),
    'the worker to say it waits for Postgres',
  );
  expect(worker.output()).not.toContain(decodeURIComponent(url.password));
  expect(worker.child.exitCode).toBeNull();
  await postgres.open();
  await worker.started;
  expect(worker.output()).toContain('Postgres is available');
  await expectItArchives();
}, 120_000);

it('waits for a Temporal that is not up yet, then archives', async () => {
  const temporal = await gatedProxy(stack.temporal.address);
  cleanups.push(() => temporal.close());
  const worker = spawnWorker({ TEMPORAL_ADDRESS: `127.0.0.1:${temporal.port}` });
  await waitingFor(
    worker,
    new RegExp(`Temporal at 127\\.0\\.0\\.1:${temporal.port} \\(TEMPORAL_ADDRESS\\) refused the connection; waiting`),
    'the worker to say it waits for Temporal',
  );
  expect(worker.child.exitCode).toBeNull();
  await temporal.open();
  await worker.started;
  await expectItArchives();
}, 120_000);

it('names a Postgres that accepts TCP and never answers, within the connect timeout, and keeps waiting', async () => {
  const silent = await silentServer();
  cleanups.push(() => silent.close());
  const url = new URL(stack.database.url);
  url.host = silent.address;
  const started = Date.now();
  const worker = spawnWorker({ DATABASE_URL: url.href });
  await waitingFor(
    worker,
    /Postgres at 127\.0\.0\.1:\d+\/\S+ \(DATABASE_URL\) did not answer within 1s \(DATABASE_CONNECT_TIMEOUT\); waiting/,
    'the worker to say Postgres does not answer',
  );
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(worker.child.exitCode).toBeNull();
  expect(worker.output()).not.toMatch(/^\s+at /m);
});

it('refuses to start without a keyring, exiting 2 and naming ARCHIVER_SECRET_KEYS', async () => {
  const worker = spawnWorker({ ARCHIVER_SECRET_KEYS: '' });
  expect(await worker.exited).toBe(2);
  expect(worker.output()).toMatch(/archiver worker: ARCHIVER_SECRET_KEYS is not set/);
  expect(worker.output()).not.toContain('worker started');
});

it('seals legacy plaintext tokens at start-up, logging how many and never a token, then archives with them', async () => {
  const id = uniqueName('legacy');
  const token = `token-${id}`;
  stack.emulator.addAccount({ token, accountId: id });
  // As an Archiver from before tokens were sealed wrote it.
  await stack.database.db.query(`INSERT INTO customers (id, name, dropbox_access_token) VALUES ($1, $1, $2)`, [
    id,
    token,
  ]);
  const worker = spawnWorker({ ARCHIVER_LOG_LEVEL: 'INFO' });
  await worker.started;
  const [row] = await stack.database.db.query<{ row: string; access: string }>(
    `SELECT c::text AS row, dropbox_access_token AS access FROM customers c WHERE id = $1`,
    [id],
  );
  expect(row?.row).not.toContain(token);
  expect(row?.access).toMatch(/^v1:test-1:/);
  expect(worker.output()).toMatch(/sealed plaintext Dropbox tokens at rest.*"customers":[1-9]/);
  expect(worker.output()).not.toContain(token);
  await insertItems(stack.database.db, id, undefined, stack.media.url, 3, { kind: 'voicemail', bytes: 1_000 });
  await startArchiving({ ...stack.temporal, taskQueue: TASK_QUEUE }, id);
  const status = await statusWhen(stack.temporal.client, id, (s) => s.totals.archived === 3, 60_000);
  expect(status.totals.archived).toBe(3);
}, 120_000);
