import { describe, expect, it } from 'vitest';
import { storeCredentials } from '../../db/customers.js';
import { testKeyring } from '../support/secret-keys.js';
import { createDropboxClient } from '../../activities/dropbox/client.js';
import { reconnectCustomer } from '../../client/archiver-client.js';
import { resumeSignal } from '../../workflows/messages.js';
import { searchAttributes, workflowIdFor } from '../../workflows/names.js';
import { DEFAULT_PACING_LIMITS } from '../../workflows/pacing/controller.js';
import { recordHistory, startArchiving, status, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { expectArchivedExactlyOnce } from '../support/verify.js';

/** How Archiver lives through a customer's Dropbox failing: real Temporal, Postgres and emulator. */
const APP = { key: 'archiver-test-app', secret: 'archiver-test-secret' };

/** A customer whose Dropbox account is linked through a refresh token, as in production. */
const stack = useArchiverStack({ emulator: { apps: [APP], seed: 42 }, worker: { dropboxApp: APP } });

async function linkedCustomer(
  items: number,
  bytes = 2_000,
): Promise<{ id: string; accountId: string; refreshToken: string }> {
  const id = uniqueName('cust');
  const refreshToken = uniqueName('rt');
  stack.emulator.addAccount({ accountId: id, refreshToken, appKey: APP.key });
  await insertItems(stack.database.db, id, undefined, stack.media.url, items, { bytes });
  // Only the refresh token is stored: the first upload must mint an access token.
  await stack.database.db.query('UPDATE customers SET dropbox_refresh_token = $2 WHERE id = $1', [id, refreshToken]);
  return { id, accountId: id, refreshToken };
}

const accountStats = (accountId: string) => stack.emulator.stats().accounts[accountId];

/** An access token for the account, as another app of the customer's would hold. */
function mintAccessToken(accountId: string): string {
  const token = uniqueName('other-app');
  stack.emulator.addAccount({ token, accountId });
  return token;
}

async function stateOf(customerId: string): Promise<string | undefined> {
  const d = await stack.temporal.client.workflow.getHandle(workflowIdFor(customerId)).describe();
  return d.typedSearchAttributes.get(searchAttributes.state);
}

describe('Dropbox failures, end to end', () => {
  it('a revoked token pauses only that customer; reconnect resumes it with nothing lost', async () => {
    // Enough items that the drain is still going when the token is revoked: a slice archives ten or more at once.
    const revoked = await linkedCustomer(200);
    const healthy = await linkedCustomer(40);
    stack.emulator.configureAccount(revoked.accountId, { latencyMs: 30 });
    await Promise.all([startArchiving(stack.temporal, revoked.id), startArchiving(stack.temporal, healthy.id)]);
    await statusWhen(stack.temporal.client, revoked.id, (s) => s.totals.archived >= 5);
    stack.emulator.revokeTokens(revoked.accountId);

    const paused = await statusWhen(stack.temporal.client, revoked.id, (s) => s.state === 'needs-reauth');
    expect(paused.totals.archived).toBeLessThan(200);
    expect(paused.pauseReason).not.toContain(revoked.refreshToken);
    await eventually(
      async () => ((await stateOf(revoked.id)) === 'needs-reauth' ? true : undefined),
      10_000,
      'ArchiverState=needs-reauth',
    );
    // The other customer is untouched.
    await statusWhen(stack.temporal.client, healthy.id, (s) => s.totals.archived === 40 && s.state === 'idle');
    expect((await status(stack.temporal.client, revoked.id)).state).toBe('needs-reauth');

    // Reconnecting with credentials Dropbox still refuses fails and keeps the customer paused.
    await storeCredentials(stack.database.db, testKeyring(), revoked.id, { refreshToken: 'still-revoked' });
    await expect(reconnectCustomer(stack.temporal.client, revoked.id)).rejects.toThrow();
    expect((await status(stack.temporal.client, revoked.id)).state).toBe('needs-reauth');

    const fresh = uniqueName('rt-new');
    stack.emulator.addAccount({ accountId: revoked.accountId, refreshToken: fresh, appKey: APP.key });
    await storeCredentials(stack.database.db, testKeyring(), revoked.id, { refreshToken: fresh });
    const result = await reconnectCustomer(stack.temporal.client, revoked.id);
    expect(result).toEqual({ accountId: expect.any(String) as string, state: 'running' });
    await statusWhen(stack.temporal.client, revoked.id, (s) => s.totals.archived === 200 && s.state === 'idle');
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [revoked, healthy])).toBe(240);
    await recordHistory(stack.temporal.client, revoked.id, 'reconnect');
  });

  it('an expired token is refreshed with exactly one token request for the customer, however many uploads hit it', async () => {
    const customer = await linkedCustomer(1);
    // A fast starting pace, so many uploads are in flight together when the token expires.
    const handle = await startArchiving(stack.temporal, customer.id, { limits: { initialRatePerSecond: 1000 } });
    await statusWhen(stack.temporal.client, customer.id, (s) => s.totals.archived === 1 && s.state === 'idle');
    expect(accountStats(customer.accountId)?.tokenRequests).toBe(1);

    // Dropbox expires the token early; Archiver still believes it valid, so every upload meets a 401.
    stack.emulator.expireAccessTokens(customer.accountId);
    await insertItems(stack.database.db, customer.id, undefined, stack.media.url, 60);
    await handle.signal('itemsAvailable');
    const done = await statusWhen(
      stack.temporal.client,
      customer.id,
      (s) => s.totals.archived === 61 && s.state === 'idle',
    );
    expect(done.concurrency).toBeGreaterThan(1);
    expect(accountStats(customer.accountId)?.requests['/2/files/upload 401']).toBeGreaterThan(1);
    expect(accountStats(customer.accountId)?.tokenRequests).toBe(2);
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [customer])).toBe(61);
  });

  it('a full Dropbox pauses the customer as storage-full until an operator resumes it', async () => {
    const customer = await linkedCustomer(20, 10_000);
    stack.emulator.configureAccount(customer.accountId, { quotaBytes: 55_000 });
    await startArchiving(stack.temporal, customer.id);
    const full = await statusWhen(stack.temporal.client, customer.id, (s) => s.state === 'storage-full');
    expect(full.pauseReason).toContain('insufficient_space');
    await eventually(
      async () => ((await stateOf(customer.id)) === 'storage-full' ? true : undefined),
      10_000,
      'ArchiverState=storage-full',
    );
    const [row] = await stack.database.db.query<{ failed: string; archived: string }>(
      `SELECT count(*) FILTER (WHERE state = 'failed') AS failed, count(*) FILTER (WHERE state = 'archived') AS archived FROM archive_items WHERE customer_id = $1`,
      [customer.id],
    );
    expect(Number(row?.failed)).toBe(0);
    expect(Number(row?.archived)).toBe(5);

    stack.emulator.configureAccount(customer.accountId, { quotaBytes: null });
    await stack.temporal.client.workflow.getHandle(workflowIdFor(customer.id)).signal(resumeSignal);
    await statusWhen(stack.temporal.client, customer.id, (s) => s.totals.archived === 20 && s.state === 'idle');
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [customer])).toBe(20);
  });

  it('honours plain-text 429s and 429s without Retry-After', async () => {
    const plain = await linkedCustomer(15);
    const bare = await linkedCustomer(15);
    // Scripted, so every run meets them: three plain-text 429s, and two 429s with no wait given.
    stack.emulator.queueFaults(
      plain.accountId,
      [1, 2, 3].map(() => ({ route: 'files/upload', fault: 'too_many_requests_text' as const })),
    );
    stack.emulator.configureAccount(bare.accountId, { noRetryAfterShare: 1 });
    stack.emulator.queueFaults(
      bare.accountId,
      [1, 2].map(() => ({ route: 'files/upload', fault: 'too_many_requests' as const })),
    );
    await Promise.all([startArchiving(stack.temporal, plain.id), startArchiving(stack.temporal, bare.id)]);
    const [p, b] = await Promise.all([
      statusWhen(stack.temporal.client, plain.id, (s) => s.totals.archived === 15 && s.state === 'idle', 120_000),
      statusWhen(stack.temporal.client, bare.id, (s) => s.totals.archived === 15 && s.state === 'idle', 120_000),
    ]);
    expect(accountStats(plain.accountId)?.rateLimited).toBe(3);
    expect(accountStats(bare.accountId)?.rateLimited).toBe(2);
    expect(p.totals.rateLimited).toBe(3);
    expect(b.totals.rateLimited).toBe(2);
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [plain, bare])).toBe(30);
  }, 180_000);

  it('a Retry-After holds back only the customer it was sent to; another customer keeps its pace', async () => {
    const throttled = await linkedCustomer(20);
    const steady = await linkedCustomer(300);
    stack.emulator.configureAccount(steady.accountId, { uploadsPerSecond: 20 });
    stack.emulator.queueFaults(throttled.accountId, [
      { route: 'files/upload', fault: 'too_many_requests', retryAfter: 4 },
    ]);
    const uploads = (accountId: string) =>
      Object.entries(accountStats(accountId)?.requests ?? {})
        .filter(([key]) => key.startsWith('/2/files/upload '))
        .reduce((n, [, count]) => n + count, 0);
    const archived = async (customerId: string) =>
      Number(
        (
          await stack.database.db.query<{ n: string }>(
            "SELECT count(*) AS n FROM archive_items WHERE customer_id = $1 AND state = 'archived'",
            [customerId],
          )
        )[0]?.n,
      );
    await Promise.all([startArchiving(stack.temporal, steady.id), startArchiving(stack.temporal, throttled.id)]);
    await eventually(
      () => Promise.resolve(accountStats(throttled.accountId)?.rateLimited === 1 ? true : undefined),
      30_000,
      'the 429',
    );
    // Requests already on the wire when the 429 came cannot be called back: let them land first.
    await new Promise((r) => setTimeout(r, 500));
    const throttledUploads = uploads(throttled.accountId);
    const steadyBefore = await archived(steady.id);
    await new Promise((r) => setTimeout(r, 3_000));
    // Within its 4 s Retry-After the throttled customer sent Dropbox nothing more…
    expect(uploads(throttled.accountId)).toBe(throttledUploads);
    // …while the other kept going at its own limit (20/s: about 60 in 3 s).
    expect((await archived(steady.id)) - steadyBefore).toBeGreaterThanOrEqual(20);
    await Promise.all([
      statusWhen(stack.temporal.client, throttled.id, (s) => s.totals.archived === 20 && s.state === 'idle'),
      statusWhen(stack.temporal.client, steady.id, (s) => s.totals.archived === 300 && s.state === 'idle'),
    ]);
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [throttled, steady])).toBe(320);
  }, 120_000);

  it('commits 1,000 small items through finish_batch_v2, one commit at a time per account', async () => {
    const customer = await linkedCustomer(1000, 300);
    // Overlapping commits would be refused, and each commit holds the account's lock a while.
    stack.emulator.configureAccount(customer.accountId, { writeContention: '429', commitLatencyMs: 50 });
    await startArchiving(stack.temporal, customer.id, { commitMode: 'sessions' });
    await statusWhen(
      stack.temporal.client,
      customer.id,
      (s) => s.totals.archived === 1000 && s.state === 'idle',
      180_000,
    );
    const stats = accountStats(customer.accountId);
    expect(stats?.maxConcurrentCommits).toBe(1);
    expect(stats?.writeContention).toBe(0);
    // Several batches, each one finish_batch_v2 (Dropbox takes up to 1,000 entries per call).
    expect(stats?.requests['/2/files/upload_session/finish_batch_v2 200']).toBeGreaterThanOrEqual(
      Math.ceil(1000 / DEFAULT_PACING_LIMITS.maxBatchSize),
    );
    expect(stats?.requests['/2/files/upload 200']).toBeUndefined();
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [customer])).toBe(1000);
    await recordHistory(stack.temporal.client, customer.id, 'session-commit');
  }, 240_000);

  it('retries only the batch entries Dropbox failed with too_many_write_operations', async () => {
    const customer = await linkedCustomer(60, 300);
    // Another writer (say the customer's desktop client) keeps committing to the same account, so
    // our batch commits overlap it and Dropbox fails some of their entries.
    stack.emulator.configureAccount(customer.accountId, {
      writeContention: '409',
      batchContentionShare: 0.5,
      commitLatencyMs: 150,
    });
    const otherWriter = createDropboxClient({
      accessToken: mintAccessToken(customer.accountId),
      apiBase: stack.emulator.url,
    });
    let done = false;
    const writer = (async () => {
      for (let n = 0; !done; n++) {
        await otherWriter.filesUpload({ path: `/Desktop/note-${n}.txt`, contents: `note ${n}` }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await startArchiving(stack.temporal, customer.id, { commitMode: 'sessions' });
    try {
      await statusWhen(
        stack.temporal.client,
        customer.id,
        (s) => s.totals.archived === 60 && s.state === 'idle',
        120_000,
      );
    } finally {
      done = true;
      await writer;
    }
    const batchEntriesRefused = accountStats(customer.accountId)?.writeContention ?? 0;
    expect(batchEntriesRefused).toBeGreaterThan(0);
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [customer])).toBe(60);
  }, 180_000);
});
