// How one item's upload ends when its source or Dropbox misbehaves: which failures fail the item,
// which give its slot back to wait on the row, and that no external call waits for ever.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import type { Db } from '../../db/pool.js';
import { requeueFailed } from '../../db/items.js';
import { faultyUrl } from '../../dev/media-server.js';
import { freePort } from '../../dev/ports.js';
import { failureOf, runActivity } from '../support/activity-env.js';
import { insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { testKeyring } from '../support/secret-keys.js';
import { useActivityStack } from '../support/activity-stack.js';

const TOKEN = 'token-item-failures';
/** Short timeouts and retry waits, so hung sources and retries take test time, not production time. */
const itemRetry = { initialDelayMs: 300, maxDelayMs: 1_000, maxAttempts: 3, maxAgeMs: 60_000 };
const sourceTimeouts = { answerMs: 700, idleMs: 700 };

const stack = useActivityStack({
  emulator: { accounts: [{ token: TOKEN, accountId: 'acct' }] },
  activities: { itemRetry, sourceTimeouts, dropboxTimeouts: { requestMs: 1_000, perMiBMs: 0 } },
});

const run = runActivity;

interface ItemRow {
  state: string;
  attempts: number;
  failed_attempts: number;
  last_error: string | null;
  last_error_at: Date | null;
  next_attempt_at: Date | null;
  lease_token: string | null;
}

async function row(id: string): Promise<ItemRow> {
  const [r] = await stack.database.db.query<ItemRow>('SELECT * FROM archive_items WHERE id = $1', [id]);
  if (!r) throw new Error(`no item ${id}`);
  return r;
}

/** One item with the given source, leased, then one upload attempt of it. */
async function uploadOnce(sourceUrl: string, acts = stack.activities) {
  const customer = uniqueName('src');
  const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1, { sourceUrl, bytes: 4000 });
  const batch = await run(acts.fetchBatch, customer, 1);
  expect(batch.items).toHaveLength(1);
  const request = { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken };
  const started = Date.now();
  const outcome = await run(acts.uploadItem, request);
  return { customer, id: id as string, outcome, request, ms: Date.now() - started };
}

describe('a source that can never work fails its item at once', () => {
  const cases: [string, () => string | Promise<string>, RegExp][] = [
    ['404', () => faultyUrl(stack.media.url, '404', 'n', 100), /answered 404/],
    ['410', () => faultyUrl(stack.media.url, '410', 'n', 100), /answered 410/],
    ['an ftp:// URL', () => 'ftp://media.example/x.wav', /ftp: and only http: and https:/],
    ['a URL that does not parse', () => 'not a url', /is not a URL/],
    ['a port fetch never connects to', () => 'http://127.0.0.1:1/x.wav', /port 1, which fetch never connects to/],
  ];
  for (const [name, url, message] of cases) {
    it(`${name}: failed, with the reason on the row, and no Dropbox upload`, async () => {
      const uploads = stack.emulator.stats().uploads;
      const { customer, id, outcome } = await uploadOnce(await url());
      expect(outcome).toMatchObject({ status: 'failed', error: expect.stringMatching(message) });
      expect(await row(id)).toMatchObject({
        state: 'failed',
        last_error: expect.stringMatching(message),
        last_error_at: expect.any(Date),
        lease_token: null,
      });
      expect(stack.emulator.stats().uploads).toBe(uploads);
      // A failed item waits for an operator, not for a retry time: the customer may sleep until new items.
      const after = await run(stack.activities.fetchBatch, customer, 10);
      expect(after).toMatchObject({ items: [], backlog: 0, retryWaiting: 0, nextRetryInMs: undefined });
    });
  }
});

describe('a source that fails for now gives the slot back and waits on the row', () => {
  const cases: [string, () => string | Promise<string>, RegExp][] = [
    ['answers 500', () => faultyUrl(stack.media.url, '500', 'n', 4000), /answered 500/],
    ['never answers', () => faultyUrl(stack.media.url, 'hang', 'n', 4000), /did not answer within 0.7 s/],
    ['stalls mid-body', () => faultyUrl(stack.media.url, 'stall', 'n', 4000), /stalled: no bytes for 0.7 s after 2000/],
    [
      'sends fewer bytes than its Content-Length',
      () => faultyUrl(stack.media.url, 'short', 'n', 4000),
      /(broke off after|sent) 2000/,
    ],
    [
      'refuses the connection',
      () => freePort().then((port) => `http://127.0.0.1:${port}/x.wav`),
      /failed: connect ECONNREFUSED/,
    ],
  ];
  for (const [name, url, message] of cases) {
    it(`${name}: deferred with its attempt, error and retry time recorded, and skipped by the lease until then`, async () => {
      const { customer, id, outcome, ms } = await uploadOnce(await url());
      expect(outcome).toMatchObject({ status: 'deferred', error: expect.stringMatching(message) });
      // Bounded by the source timeouts, never by the whole activity.
      expect(ms).toBeLessThan(5_000);
      const r = await row(id);
      expect(r).toMatchObject({ state: 'pending', attempts: 1, failed_attempts: 1, lease_token: null });
      expect(r.last_error).toMatch(message);
      expect(r.last_error).not.toContain('127.0.0.1:' + new URL(stack.media.url).port + '/fault');
      expect(r.next_attempt_at?.getTime()).toBeGreaterThan(Date.now());
      const skipped = await run(stack.activities.fetchBatch, customer, 10);
      expect(skipped.items).toHaveLength(0);
      expect(skipped).toMatchObject({ backlog: 0, retryWaiting: 1 });
      expect(skipped.nextRetryInMs).toBeGreaterThan(0);
      expect(skipped.nextRetryInMs).toBeLessThanOrEqual(itemRetry.initialDelayMs * 1.1 + 50);
    });
  }

  it('is leased again at its retry time and archived once the source recovers', async () => {
    const { customer, id, outcome } = await uploadOnce(faultyUrl(stack.media.url, '503', uniqueName('heal'), 4000, 1));
    expect(outcome.status).toBe('deferred');
    await new Promise((r) => setTimeout(r, itemRetry.initialDelayMs * 1.2));
    const again = await run(stack.activities.fetchBatch, customer, 10);
    expect(again.items.map((i) => i.id)).toEqual([id]);
    const archived = await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id,
      leaseToken: again.leaseToken,
    });
    expect(archived.status).toBe('archived');
    expect(await row(id)).toMatchObject({ state: 'archived', last_error: null, next_attempt_at: null });
  });

  it('becomes failed after the configured attempts, and retry-failed re-drives it from a clean count', async () => {
    const { customer, id } = await uploadOnce(faultyUrl(stack.media.url, '500', uniqueName('never'), 4000));
    let last;
    for (let attempt = 2; attempt <= itemRetry.maxAttempts; attempt++) {
      await stack.database.db.query('UPDATE archive_items SET next_attempt_at = now() WHERE id = $1', [id]);
      const batch = await run(stack.activities.fetchBatch, customer, 10);
      last = await run(stack.activities.uploadItem, { customerId: customer, itemId: id, leaseToken: batch.leaseToken });
    }
    expect(last).toMatchObject({ status: 'failed', error: expect.stringMatching(/gave up after 3 failed attempts/) });
    const r = await row(id);
    expect(r).toMatchObject({ state: 'failed', failed_attempts: 3 });
    expect(r.last_error).toMatch(/gave up after 3 failed attempts since .*answered 500/);
    expect(await requeueFailed(stack.database.db, customer)).toBe(1);
    expect(await row(id)).toMatchObject({ state: 'pending', failed_attempts: 0, next_attempt_at: null });
  });

  it('becomes failed once it has failed for longer than the configured age', async () => {
    const { customer, id } = await uploadOnce(faultyUrl(stack.media.url, '500', uniqueName('old'), 4000));
    await stack.database.db.query(
      `UPDATE archive_items SET next_attempt_at = now(), first_failed_at = now() - interval '2 minutes' WHERE id = $1`,
      [id],
    );
    const batch = await run(stack.activities.fetchBatch, customer, 10);
    const outcome = await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id,
      leaseToken: batch.leaseToken,
    });
    expect(outcome.status).toBe('failed');
    expect((await row(id)).failed_attempts).toBe(2);
  });
});

describe('Dropbox failures of one item', () => {
  async function leasedItem() {
    const customer = uniqueName('dbx');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: customer });
    const [id] = await insertItems(stack.database.db, customer, token, stack.media.url, 1);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    return { customer, request: { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken } };
  }

  it('a request Dropbox never answers times out as Transient instead of hanging its activity', async () => {
    const { customer, request } = await leasedItem();
    stack.emulator.queueFaults(customer, [{ route: 'files/upload', fault: 'stall' }]);
    const started = Date.now();
    const failure = await failureOf(run(stack.activities.uploadItem, request));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(failure.type).toBe('Transient');
    expect(failure.message).toMatch(/Dropbox.*(timeout|aborted)/i);
    expect((await row(request.itemId)).last_error).toMatch(/timeout|aborted/i);
  });

  it("backs off a 5xx from the item's consecutive failures, not from the 429s it met before", async () => {
    const { customer, request } = await leasedItem();
    stack.emulator.queueFaults(customer, [
      { route: 'files/upload', fault: 'too_many_requests', retryAfter: 0 },
      { route: 'files/upload', fault: 'too_many_requests', retryAfter: 0 },
      { route: 'files/upload', fault: 'too_many_requests', retryAfter: 0 },
      { route: 'files/upload', fault: 500 },
      { route: 'files/upload', fault: 500 },
    ]);
    for (let i = 0; i < 3; i++) {
      const limited = await failureOf(run(stack.activities.uploadItem, request));
      expect(limited.type).toBe('RateLimited');
      await stack.database.db.query('UPDATE customers SET throttled_until = NULL WHERE id = $1', [customer]);
    }
    const first = await failureOf(run(stack.activities.uploadItem, request));
    expect(first.type).toBe('Transient');
    expect(Number(first.nextRetryDelay)).toBeLessThanOrEqual(1_200);
    const second = await failureOf(run(stack.activities.uploadItem, request));
    expect(Number(second.nextRetryDelay)).toBeGreaterThanOrEqual(1_600);
    expect(Number(second.nextRetryDelay)).toBeLessThanOrEqual(2_400);
    expect(await row(request.itemId)).toMatchObject({ failed_attempts: 2, state: 'leased' });
    expect((await run(stack.activities.uploadItem, request)).status).toBe('archived');
  });

  it('a Postgres failure inside an upload is reported as a Postgres failure, not as Dropbox trouble', async () => {
    // A real connection that Postgres itself terminates, used for the statement that marks the item.
    const doomed = new pg.Client({ connectionString: stack.database.url });
    await doomed.connect();
    doomed.on('error', () => undefined);
    const [{ pid } = { pid: 0 }] = (await doomed.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
    await stack.database.db.query('SELECT pg_terminate_backend($1)', [pid]);
    // Marking runs in a transaction (with its audit row), so the statement may come through either.
    const failingOn = (db: Db): Db => ({
      query: async (text, values) =>
        text.includes("SET state = 'archived'")
          ? ((await doomed.query(text, values as unknown[])).rows as never)
          : db.query(text, values),
      transaction: (work) => db.transaction((tx) => work(failingOn(tx))),
    });
    const failing = failingOn(stack.database.db);
    const acts = createActivities({
      db: failing,
      keyring: testKeyring(),
      dropboxApiBase: stack.emulator.url,
      itemRetry,
      sourceTimeouts,
    });
    const { request } = await leasedItem();
    const failure = await failureOf(run(acts.uploadItem, request));
    expect(failure.type).toBe('DatabaseUnavailable');
    expect(failure.message).toMatch(/^Postgres failed: /);
    expect(failure.message).not.toMatch(/Dropbox/);
    await doomed.end().catch(() => undefined);
  });
});
