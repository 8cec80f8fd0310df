import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, type MediaServer } from '../dev/media-server.js';
import { recordHistory, startArchiving, startTestWorker, statusWhen } from './support/harness.js';
import { insertItems } from './support/items.js';
import { connectTemporal, freshDatabase, uniqueName, type TestDatabase, type TestTemporal } from './support/stack.js';
import { expectArchivedExactlyOnce } from './support/verify.js';

let database: TestDatabase;
let temporal: TestTemporal;
let emulator: DropboxEmulator;
let media: MediaServer;
let stopWorker: () => Promise<void>;

const CUSTOMERS = 3;
const ITEMS = 300;
/** Per-token uploads per second: low enough that the pipeline's growing concurrency runs into 429s. */
const RATE = 15;

beforeAll(async () => {
  [database, temporal, emulator, media] = await Promise.all([freshDatabase(), connectTemporal(), startDropboxEmulator({ uploadsPerSecond: RATE }), startMediaServer()]);
  ({ stop: stopWorker } = await startTestWorker(temporal, { db: database.db, dropboxApiBase: emulator.url }));
});
afterAll(async () => {
  await stopWorker?.();
  await Promise.allSettled([temporal?.close(), database?.close(), emulator?.stop(), media?.stop()]);
});

it(`drains ${CUSTOMERS} customers × ${ITEMS} items under a rate limit, each item archived exactly once with the right hash`, async () => {
  const customers = Array.from({ length: CUSTOMERS }, () => {
    const id = uniqueName('e2e');
    return { id, accountId: id, token: `token-${id}` };
  });
  for (const c of customers) {
    emulator.addAccount({ token: c.token, accountId: c.accountId });
    await insertItems(database.db, c.id, c.token, media.url, ITEMS, { kind: 'call_recording', bytes: 2_000 });
  }
  await Promise.all(customers.map((c) => startArchiving(temporal, c.id)));
  const statuses = await Promise.all(customers.map((c) => statusWhen(temporal.client, c.id, (s) => s.totals.archived === ITEMS && s.state === 'idle', 240_000)));
  await recordHistory(temporal.client, customers[0]?.id as string, 'drain-under-429');

  expect(emulator.stats().rateLimited).toBeGreaterThan(0);
  // The workflows saw the throttling and slowed down.
  expect(statuses.reduce((n, s) => n + s.totals.rateLimited, 0)).toBeGreaterThan(0);
  // Throttled customers carry the controller's estimate of their limit, near the real one.
  for (const s of statuses.filter((x) => x.totals.rateLimited > 0)) {
    expect(s.limitEstimatePerSecond).toBeGreaterThan(RATE / 2);
    expect(s.limitEstimatePerSecond).toBeLessThan(RATE * 2);
    expect(s.pacedRatePerSecond).toBeGreaterThan(0);
  }
  expect(await expectArchivedExactlyOnce(database.db, emulator, customers)).toBe(CUSTOMERS * ITEMS);
}, 300_000);
