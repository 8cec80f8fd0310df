import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeCredentials } from '../db/customers.js';
import { createDropboxClient } from '../activities/dropbox/client.js';
import { reconnectCustomer } from '../client/archiver-client.js';
import { startDropboxEmulator, type DropboxEmulator } from 'dropbox-emulator';
import { startMediaServer, type MediaServer } from '../dev/media-server.js';
import { resumeSignal } from '../workflows/messages.js';
import { searchAttributes, workflowIdFor } from '../workflows/names.js';
import { DEFAULT_PACING_LIMITS } from '../workflows/pacing/controller.js';
import { recordHistory, startArchiving, startTestWorker, status, statusWhen } from './support/harness.js';
import { insertItems } from './support/items.js';
import { connectTemporal, eventually, freshDatabase, uniqueName, type TestDatabase, type TestTemporal } from './support/stack.js';
import { expectArchivedExactlyOnce } from './support/verify.js';

/** How Archiver lives through a customer's Dropbox failing: real Temporal, Postgres and emulator. */
let database: TestDatabase;
let temporal: TestTemporal;
let emulator: DropboxEmulator;
let media: MediaServer;
let stopWorker: () => Promise<void>;
const APP = { key: 'archiver-test-app', secret: 'archiver-test-secret' };

beforeAll(async () => {
  [database, temporal, emulator, media] = await Promise.all([
    freshDatabase(), connectTemporal(), startDropboxEmulator({ apps: [APP], seed: 42 }), startMediaServer(),
  ]);
  ({ stop: stopWorker } = await startTestWorker(temporal, { db: database.db, dropboxApiBase: emulator.url, dropboxApp: APP }));
});
afterAll(async () => {
  await stopWorker?.();
  await Promise.allSettled([temporal?.close(), database?.close(), emulator?.stop(), media?.stop()]);
});

/** A customer whose Dropbox account is linked through a refresh token, as in production. */
async function linkedCustomer(items: number, bytes = 2_000): Promise<{ id: string; accountId: string; refreshToken: string }> {
  const id = uniqueName('cust');
  const refreshToken = uniqueName('rt');
  emulator.addAccount({ accountId: id, refreshToken, appKey: APP.key });
  await insertItems(database.db, id, undefined, media.url, items, { bytes });
  // Only the refresh token is stored: the first upload must mint an access token.
  await database.db.query('UPDATE customers SET dropbox_refresh_token = $2 WHERE id = $1', [id, refreshToken]);
  return { id, accountId: id, refreshToken };
}

const accountStats = (accountId: string) => emulator.stats().accounts[accountId];

/** An access token for the account, as another app of the customer's would hold. */
function mintAccessToken(accountId: string): string {
  const token = uniqueName('other-app');
  emulator.addAccount({ token, accountId });
  return token;
}

async function stateOf(customerId: string): Promise<string | undefined> {
  const d = await temporal.client.workflow.getHandle(workflowIdFor(customerId)).describe();
  return d.typedSearchAttributes.get(searchAttributes.state);
}

describe('Dropbox failures, end to end', () => {
  it('a revoked token pauses only that customer; reconnect resumes it with nothing lost', async () => {
    const revoked = await linkedCustomer(40);
    const healthy = await linkedCustomer(40);
    emulator.configureAccount(revoked.accountId, { latencyMs: 30 });
    await Promise.all([startArchiving(temporal, revoked.id), startArchiving(temporal, healthy.id)]);
    await statusWhen(temporal.client, revoked.id, (s) => s.totals.archived >= 5);
    emulator.revokeTokens(revoked.accountId);

    const paused = await statusWhen(temporal.client, revoked.id, (s) => s.state === 'needs-reauth');
    expect(paused.totals.archived).toBeLessThan(40);
    expect(paused.pauseReason).not.toContain(revoked.refreshToken);
    await eventually(async () => ((await stateOf(revoked.id)) === 'needs-reauth' ? true : undefined), 10_000, 'ArchiverState=needs-reauth');
    // The other customer is untouched.
    await statusWhen(temporal.client, healthy.id, (s) => s.totals.archived === 40 && s.state === 'idle');
    expect((await status(temporal.client, revoked.id)).state).toBe('needs-reauth');

    // Reconnecting with credentials Dropbox still refuses fails and keeps the customer paused.
    await storeCredentials(database.db, revoked.id, { refreshToken: 'still-revoked' });
    await expect(reconnectCustomer(temporal.client, revoked.id)).rejects.toThrow();
    expect((await status(temporal.client, revoked.id)).state).toBe('needs-reauth');

    const fresh = uniqueName('rt-new');
    emulator.addAccount({ accountId: revoked.accountId, refreshToken: fresh, appKey: APP.key });
    await storeCredentials(database.db, revoked.id, { refreshToken: fresh });
    const result = await reconnectCustomer(temporal.client, revoked.id);
    expect(result).toEqual({ accountId: expect.any(String) as string, state: 'running' });
    await statusWhen(temporal.client, revoked.id, (s) => s.totals.archived === 40 && s.state === 'idle');
    expect(await expectArchivedExactlyOnce(database.db, emulator, [revoked, healthy])).toBe(80);
    await recordHistory(temporal.client, revoked.id, 'reconnect');
  });

  it('an expired token is refreshed with exactly one token request for the customer, however many uploads hit it', async () => {
    const customer = await linkedCustomer(1);
    // A fast starting pace, so many uploads are in flight together when the token expires.
    const handle = await startArchiving(temporal, customer.id, { limits: { initialRatePerSecond: 1000 } });
    await statusWhen(temporal.client, customer.id, (s) => s.totals.archived === 1 && s.state === 'idle');
    expect(accountStats(customer.accountId)?.tokenRequests).toBe(1);

    // Dropbox expires the token early; Archiver still believes it valid, so every upload meets a 401.
    emulator.expireAccessTokens(customer.accountId);
    await insertItems(database.db, customer.id, undefined, media.url, 60);
    await handle.signal('itemsAvailable');
    const done = await statusWhen(temporal.client, customer.id, (s) => s.totals.archived === 61 && s.state === 'idle');
    expect(done.concurrency).toBeGreaterThan(1);
    expect(accountStats(customer.accountId)?.requests['/2/files/upload 401']).toBeGreaterThan(1);
    expect(accountStats(customer.accountId)?.tokenRequests).toBe(2);
    expect(await expectArchivedExactlyOnce(database.db, emulator, [customer])).toBe(61);
  });

  it('a full Dropbox pauses the customer as storage-full until an operator resumes it', async () => {
    const customer = await linkedCustomer(20, 10_000);
    emulator.configureAccount(customer.accountId, { quotaBytes: 55_000 });
    await startArchiving(temporal, customer.id);
    const full = await statusWhen(temporal.client, customer.id, (s) => s.state === 'storage-full');
    expect(full.pauseReason).toContain('insufficient_space');
    await eventually(async () => ((await stateOf(customer.id)) === 'storage-full' ? true : undefined), 10_000, 'ArchiverState=storage-full');
    const [row] = await database.db.query<{ failed: string; archived: string }>(
      `SELECT count(*) FILTER (WHERE state = 'failed') AS failed, count(*) FILTER (WHERE state = 'archived') AS archived FROM archive_items WHERE customer_id = $1`, [customer.id]);
    expect(Number(row?.failed)).toBe(0);
    expect(Number(row?.archived)).toBe(5);

    emulator.configureAccount(customer.accountId, { quotaBytes: null });
    await temporal.client.workflow.getHandle(workflowIdFor(customer.id)).signal(resumeSignal);
    await statusWhen(temporal.client, customer.id, (s) => s.totals.archived === 20 && s.state === 'idle');
    expect(await expectArchivedExactlyOnce(database.db, emulator, [customer])).toBe(20);
  });

  it('honours plain-text 429s and 429s without Retry-After', async () => {
    const plain = await linkedCustomer(15);
    const bare = await linkedCustomer(15);
    // Scripted, so every run meets them: three plain-text 429s, and two 429s with no wait given.
    emulator.queueFaults(plain.accountId, [1, 2, 3].map(() => ({ route: 'files/upload', fault: 'too_many_requests_text' as const })));
    emulator.configureAccount(bare.accountId, { noRetryAfterShare: 1 });
    emulator.queueFaults(bare.accountId, [1, 2].map(() => ({ route: 'files/upload', fault: 'too_many_requests' as const })));
    await Promise.all([startArchiving(temporal, plain.id), startArchiving(temporal, bare.id)]);
    const [p, b] = await Promise.all([
      statusWhen(temporal.client, plain.id, (s) => s.totals.archived === 15 && s.state === 'idle', 120_000),
      statusWhen(temporal.client, bare.id, (s) => s.totals.archived === 15 && s.state === 'idle', 120_000),
    ]);
    expect(accountStats(plain.accountId)?.rateLimited).toBe(3);
    expect(accountStats(bare.accountId)?.rateLimited).toBe(2);
    expect(p.totals.rateLimited).toBe(3);
    expect(b.totals.rateLimited).toBe(2);
    expect(await expectArchivedExactlyOnce(database.db, emulator, [plain, bare])).toBe(30);
  }, 180_000);

  it("a Retry-After holds back only the customer it was sent to; another customer keeps its pace", async () => {
    const throttled = await linkedCustomer(20);
    const steady = await linkedCustomer(300);
    emulator.configureAccount(steady.accountId, { uploadsPerSecond: 20 });
    emulator.queueFaults(throttled.accountId, [{ route: 'files/upload', fault: 'too_many_requests', retryAfter: 4 }]);
    const uploads = (accountId: string) => Object.entries(accountStats(accountId)?.requests ?? {})
      .filter(([key]) => key.startsWith('/2/files/upload ')).reduce((n, [, count]) => n + count, 0);
    const archived = async (customerId: string) => Number((await database.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM archive_items WHERE customer_id = $1 AND state = 'archived'", [customerId]))[0]?.n);
    await Promise.all([startArchiving(temporal, steady.id), startArchiving(temporal, throttled.id)]);
    await eventually(() => Promise.resolve(accountStats(throttled.accountId)?.rateLimited === 1 ? true : undefined), 30_000, 'the 429');
    const throttledUploads = uploads(throttled.accountId);
    const steadyBefore = await archived(steady.id);
    await new Promise((r) => setTimeout(r, 3_000));
    // Within its 4 s Retry-After the throttled customer sent Dropbox nothing more…
    expect(uploads(throttled.accountId)).toBe(throttledUploads);
    // …while the other kept going at its own limit (20/s: about 60 in 3 s).
    expect(await archived(steady.id) - steadyBefore).toBeGreaterThanOrEqual(20);
    await Promise.all([
      statusWhen(temporal.client, throttled.id, (s) => s.totals.archived === 20 && s.state === 'idle'),
      statusWhen(temporal.client, steady.id, (s) => s.totals.archived === 300 && s.state === 'idle'),
    ]);
    expect(await expectArchivedExactlyOnce(database.db, emulator, [throttled, steady])).toBe(320);
  }, 120_000);

  it('commits 1,000 small items through finish_batch_v2, one commit at a time per account', async () => {
    const customer = await linkedCustomer(1000, 300);
    // Overlapping commits would be refused, and each commit holds the account's lock a while.
    emulator.configureAccount(customer.accountId, { writeContention: '429', commitLatencyMs: 50 });
    await startArchiving(temporal, customer.id, { commitMode: 'sessions' });
    await statusWhen(temporal.client, customer.id, (s) => s.totals.archived === 1000 && s.state === 'idle', 180_000);
    const stats = accountStats(customer.accountId);
    expect(stats?.maxConcurrentCommits).toBe(1);
    expect(stats?.writeContention).toBe(0);
    // Several batches, each one finish_batch_v2 (Dropbox takes up to 1,000 entries per call).
    expect(stats?.requests['/2/files/upload_session/finish_batch_v2 200']).toBeGreaterThanOrEqual(Math.ceil(1000 / DEFAULT_PACING_LIMITS.maxBatchSize));
    expect(stats?.requests['/2/files/upload 200']).toBeUndefined();
    expect(await expectArchivedExactlyOnce(database.db, emulator, [customer])).toBe(1000);
    await recordHistory(temporal.client, customer.id, 'session-commit');
  }, 240_000);

  it('retries only the batch entries Dropbox failed with too_many_write_operations', async () => {
    const customer = await linkedCustomer(60, 300);
    // Another writer (say the customer's desktop client) keeps committing to the same account, so
    // our batch commits overlap it and Dropbox fails some of their entries.
    emulator.configureAccount(customer.accountId, { writeContention: '409', batchContentionShare: 0.5, commitLatencyMs: 150 });
    const otherWriter = createDropboxClient({ accessToken: mintAccessToken(customer.accountId), apiBase: emulator.url });
    let done = false;
    const writer = (async () => {
      for (let n = 0; !done; n++) {
        await otherWriter.filesUpload({ path: `/Desktop/note-${n}.txt`, contents: `note ${n}` }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await startArchiving(temporal, customer.id, { commitMode: 'sessions' });
    try {
      await statusWhen(temporal.client, customer.id, (s) => s.totals.archived === 60 && s.state === 'idle', 120_000);
    } finally {
      done = true;
      await writer;
    }
    const batchEntriesRefused = accountStats(customer.accountId)?.writeContention ?? 0;
    expect(batchEntriesRefused).toBeGreaterThan(0);
    expect(await expectArchivedExactlyOnce(database.db, emulator, [customer])).toBe(60);
  }, 180_000);
});
