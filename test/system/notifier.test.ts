import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool, dbFromPool, type Db } from '../../db/pool.js';
import { ItemsNotifier } from '../../workers/notifier.js';
import { migrate } from '../../db/migrate.js';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, type MediaServer } from '../../dev/media-server.js';
import { freePort } from '../../dev/ports.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../../dev/postgres.js';
import { startArchiving, startTestWorker, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { connectTemporal, uniqueName, type TestTemporal } from '../support/stack.js';

/** A Postgres of this file's own, because the test restarts it. */
let dataDir: string;
let port: number;
let postgres: RunningPostgres;
let databaseUrl: string;
let pool: pg.Pool;
let db: Db;
let temporal: TestTemporal;
let emulator: DropboxEmulator;
let media: MediaServer;
let notifier: ItemsNotifier;
let stopWorker: () => Promise<void>;
const TOKEN = 'token-notifier';
const HOUR = 3_600_000;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'archiver-notify-'));
  await chmod(dataDir, 0o755);
  port = await freePort();
  postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port });
  databaseUrl = await postgres.createDatabase('archiver');
  await migrate(databaseUrl);
  pool = createPool(databaseUrl);
  db = dbFromPool(pool);
  [temporal, emulator, media] = await Promise.all([
    connectTemporal(),
    startDropboxEmulator({ accounts: [{ token: TOKEN }] }),
    startMediaServer(),
  ]);
  ({ stop: stopWorker } = await startTestWorker(temporal, { db, dropboxApiBase: emulator.url }));
  notifier = new ItemsNotifier({ databaseUrl, client: temporal.client, debounceMs: 50 });
  await notifier.start();
});
afterAll(async () => {
  await notifier?.stop();
  await stopWorker?.();
  await Promise.allSettled([temporal?.close(), emulator?.stop(), media?.stop(), pool?.end()]);
  await postgres?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Inserts one item for an idle customer and measures how long until it is archived. */
async function secondsToArchive(customer: string, archivedBefore: number): Promise<number> {
  const started = Date.now();
  await insertItems(db, customer, undefined, media.url, 1);
  await statusWhen(temporal.client, customer, (s) => s.totals.archived === archivedBefore + 1, 20_000);
  return (Date.now() - started) / 1000;
}

it('wakes an idle customer within a second or two of an insert, also after Postgres restarts', async () => {
  const customer = uniqueName('idle');
  await insertItems(db, customer, TOKEN, media.url, 1);
  // With an hour-long safety poll, only the notifier can wake it in time.
  await startArchiving(temporal, customer, { safetyPollMs: HOUR });
  await statusWhen(temporal.client, customer, (s) => s.state === 'idle' && s.totals.archived === 1);

  const first = await secondsToArchive(customer, 1);
  console.log(`insert → archived for an idle customer: ${first.toFixed(2)} s`);
  expect(first).toBeLessThan(2);

  await postgres.stop();
  postgres = await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), port });
  const afterRestart = await secondsToArchive(customer, 2);
  console.log(`insert → archived after a Postgres restart: ${afterRestart.toFixed(2)} s`);
  expect(afterRestart).toBeLessThan(10);
}, 120_000);

it('wakes customers whose items were inserted while no notifier listened', async () => {
  const customer = uniqueName('missed');
  await insertItems(db, customer, TOKEN, media.url, 1);
  await startArchiving(temporal, customer, { safetyPollMs: HOUR });
  await statusWhen(temporal.client, customer, (s) => s.state === 'idle' && s.totals.archived === 1);
  await notifier.stop();
  // The NOTIFY for this insert reaches nobody.
  await insertItems(db, customer, undefined, media.url, 1);
  notifier = new ItemsNotifier({ databaseUrl, client: temporal.client, debounceMs: 50 });
  await notifier.start();
  await statusWhen(temporal.client, customer, (s) => s.totals.archived === 2, 10_000);
}, 120_000);
