import { describe, expect, it } from 'vitest';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import { failureOf, runActivity } from '../support/activity-env.js';
import { expectedContent, insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useActivityStack } from '../support/activity-stack.js';

const TOKEN = 'token-activities';

const stack = useActivityStack({
  emulator: { accounts: [{ token: TOKEN, accountId: 'acct' }] },
  activities: { leaseTtlMs: 60_000 },
});

const run = runActivity;

async function row(id: string) {
  const [r] = await stack.database.db.query<{
    state: string;
    last_error: string | null;
    content_hash: string | null;
    remote_path: string | null;
    rate_limited_count: number;
    metadata: { media: string; bytes: number };
    kind: 'voicemail';
  }>('SELECT * FROM archive_items WHERE id = $1', [id]);
  if (!r) throw new Error(`no item ${id}`);
  return r;
}

describe('fetchBatch', () => {
  it('leases at most N pending items of that customer only, oldest first, and reports the backlog', async () => {
    const customer = uniqueName('lease');
    const ids = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 5);
    await insertItems(stack.database.db, uniqueName('other'), TOKEN, stack.media.url, 3);
    const batch = await run(stack.activities.fetchBatch, customer, 3);
    expect(batch.items.map((i) => i.id)).toEqual(ids.slice(0, 3));
    expect(batch.backlog).toBe(2);
    expect(JSON.stringify(batch)).not.toContain(TOKEN);
    const second = await run(stack.activities.fetchBatch, customer, 10);
    expect(second.items.map((i) => i.id)).toEqual(ids.slice(3));
    expect(second.leaseToken).not.toBe(batch.leaseToken);
  });

  it("reports how long the customer's Dropbox throttle still lasts", async () => {
    const customer = uniqueName('throttled');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1);
    expect((await run(stack.activities.fetchBatch, customer, 1)).coolDownMs).toBe(0);
    await stack.database.db.query(`UPDATE customers SET throttled_until = now() + interval '5 seconds' WHERE id = $1`, [
      customer,
    ]);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    expect(batch.coolDownMs).toBeGreaterThan(3_000);
    expect(batch.coolDownMs).toBeLessThanOrEqual(5_000);
  });

  it('never hands the same item to two concurrent leases', async () => {
    const customer = uniqueName('race');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 40);
    const batches = await Promise.all(Array.from({ length: 8 }, () => run(stack.activities.fetchBatch, customer, 10)));
    const leased = batches.flatMap((b) => b.items.map((i) => i.id));
    expect(leased).toHaveLength(40);
    expect(new Set(leased).size).toBe(40);
  });

  it('reclaims items whose lease expired', async () => {
    const customer = uniqueName('expired');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1);
    const first = await run(stack.activities.fetchBatch, customer, 1);
    expect((await run(stack.activities.fetchBatch, customer, 1)).items).toHaveLength(0);
    await stack.database.db.query(
      `UPDATE archive_items SET lease_expires_at = now() - interval '1 second' WHERE id = $1`,
      [id],
    );
    const again = await run(stack.activities.fetchBatch, customer, 1);
    expect(again.items.map((i) => i.id)).toEqual([id]);
    // The old lease holder can no longer complete the item.
    const outcome = await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id as string,
      leaseToken: first.leaseToken,
    });
    expect(outcome.status).toBe('lease-lost');
    expect((await row(id as string)).state).toBe('leased');
  });
});

describe('uploadItem', () => {
  it('streams the item from its source to Dropbox, checks the hash, and marks it archived', async () => {
    const customer = uniqueName('upload');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1, { bytes: 70_000 });
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    const outcome = await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id as string,
      leaseToken: batch.leaseToken,
    });
    expect(outcome).toMatchObject({ itemId: id, status: 'archived', bytes: 70_000, rateLimited: 0 });
    const r = await row(id as string);
    const hash = dropboxContentHash(expectedContent(r.metadata, r.kind));
    expect(r).toMatchObject({ state: 'archived', content_hash: hash, last_error: null });
    const stored = stack.emulator.files('acct').find((f) => f.pathDisplay === r.remote_path);
    expect(stored).toMatchObject({ size: 70_000, contentHash: hash, writes: 1 });
  });

  it("stores the item where the customer's path template says", async () => {
    const customer = uniqueName('template');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1, { kind: 'fax' });
    await stack.database.db.query(
      `UPDATE customers SET folder_root = '/Acme', path_template = '{root}/{kind}/{id}.{ext}' WHERE id = $1`,
      [customer],
    );
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id as string,
      leaseToken: batch.leaseToken,
    });
    expect((await row(id as string)).remote_path).toBe(`/Acme/Fax/${id}.pdf`);
    expect(stack.emulator.files('acct').some((f) => f.pathDisplay === `/Acme/Fax/${id}.pdf`)).toBe(true);
  });

  it('is idempotent: running it again for an archived item neither uploads nor fails', async () => {
    const customer = uniqueName('twice');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    const request = { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken };
    await run(stack.activities.uploadItem, request);
    const before = stack.emulator.stats().uploads;
    expect((await run(stack.activities.uploadItem, request)).status).toBe('already-archived');
    expect(stack.emulator.stats().uploads).toBe(before);
  });

  it('treats a re-upload of identical content after a lost acknowledgement as success, not a conflict', async () => {
    const customer = uniqueName('replay');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    const request = { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken };
    await run(stack.activities.uploadItem, request);
    // Simulate a crash after Dropbox stored the file but before the row was marked.
    await stack.database.db.query(
      `UPDATE archive_items SET state = 'leased', lease_token = $2, lease_expires_at = now() + interval '1 minute' WHERE id = $1`,
      [id, batch.leaseToken],
    );
    expect((await run(stack.activities.uploadItem, request)).status).toBe('archived');
    const r = await row(id as string);
    expect(stack.emulator.files('acct').filter((f) => f.pathDisplay === r.remote_path)).toMatchObject([{ writes: 1 }]);
  });

  it('turns a 429 into a RateLimited failure with nextRetryDelay from Retry-After, and holds back the whole customer', async () => {
    const customer = uniqueName('limited');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: customer });
    const ids = await insertItems(stack.database.db, customer, token, stack.media.url, 3);
    const batch = await run(stack.activities.fetchBatch, customer, 3);
    stack.emulator.setUploadsPerSecond(0.5);
    try {
      const req = (i: number) => ({ customerId: customer, itemId: ids[i] as string, leaseToken: batch.leaseToken });
      expect((await run(stack.activities.uploadItem, req(0))).status).toBe('archived');
      const failure = await failureOf(run(stack.activities.uploadItem, req(1)));
      expect(failure.type).toBe('RateLimited');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.nextRetryDelay).toBeGreaterThanOrEqual(1000);
      expect((await row(ids[1] as string)).rate_limited_count).toBe(1);
      // The next item waits out the same Retry-After without asking Dropbox at all.
      const uploadsBefore = stack.emulator.stats().uploads;
      const held = await failureOf(run(stack.activities.uploadItem, req(2)));
      expect(held.type).toBe('RateLimited');
      expect(stack.emulator.stats().uploads).toBe(uploadsBefore);
    } finally {
      stack.emulator.setUploadsPerSecond(undefined);
    }
  });

  it('reports too_many_write_operations on the item, for the pacing controller to narrow W', async () => {
    const customer = uniqueName('contended');
    const token = uniqueName('tok');
    stack.emulator.addAccount({ token, accountId: customer });
    const [id] = await insertItems(stack.database.db, customer, token, stack.media.url, 1);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    stack.emulator.queueFaults(customer, [{ route: 'files/upload', fault: 'too_many_write_operations' }]);
    const request = { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken };
    expect((await failureOf(run(stack.activities.uploadItem, request))).type).toBe('WriteContention');
    const done = await run(stack.activities.uploadItem, request);
    expect(done).toMatchObject({ status: 'archived', writeContention: 1, rateLimited: 0 });
  });

  it('waits for the start time the pacing controller gave the upload', async () => {
    const customer = uniqueName('paced');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    const startAt = Date.now() + 700;
    await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id as string,
      leaseToken: batch.leaseToken,
      startAt,
    });
    const [r] = await stack.database.db.query<{ archived_at: Date }>(
      'SELECT archived_at FROM archive_items WHERE id = $1',
      [id],
    );
    expect(r?.archived_at.getTime()).toBeGreaterThanOrEqual(startAt - 50);
  });

  it('fails an item whose source is gone, visibly, without failing the activity', async () => {
    const customer = uniqueName('gone');
    const [id] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1, {
      sourceUrl: `${stack.media.url}/missing`,
    });
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    const outcome = await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: id as string,
      leaseToken: batch.leaseToken,
    });
    expect(outcome).toMatchObject({ status: 'failed', error: expect.stringContaining('404') });
    expect(await row(id as string)).toMatchObject({ state: 'failed', last_error: expect.stringContaining('404') });
  });

  it('fails an item when different content already sits at its path', async () => {
    const customer = uniqueName('conflict');
    const [first] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1, { bytes: 500 });
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: first as string,
      leaseToken: batch.leaseToken,
    });
    // Same id (hence same path), different bytes: put the row back with another media name.
    await stack.database.db.query(
      `UPDATE archive_items SET state = 'leased', lease_token = $2, lease_expires_at = now() + interval '1 minute',
      source_url = replace(source_url, 'bytes=500', 'bytes=501') WHERE id = $1`,
      [first, batch.leaseToken],
    );
    const outcome = await run(stack.activities.uploadItem, {
      customerId: customer,
      itemId: first as string,
      leaseToken: batch.leaseToken,
    });
    expect(outcome).toMatchObject({ status: 'failed', error: expect.stringContaining('conflict') });
    expect((await row(first as string)).state).toBe('failed');
  });

  it('stops on a revoked token with a non-retryable AuthRevoked, and never puts the token in the error', async () => {
    const customer = uniqueName('revoked');
    const token = 'definitely-not-a-known-token';
    const [id] = await insertItems(stack.database.db, customer, token, stack.media.url, 1);
    const batch = await run(stack.activities.fetchBatch, customer, 1);
    const failure = await failureOf(
      run(stack.activities.uploadItem, { customerId: customer, itemId: id as string, leaseToken: batch.leaseToken }),
    );
    expect(failure.type).toBe('AuthRevoked');
    expect(failure.nonRetryable).toBe(true);
    expect(JSON.stringify({ m: failure.message, d: failure.details })).not.toContain(token);
    expect((await row(id as string)).state).toBe('leased');
  });

  it('releases a batch back to pending', async () => {
    const customer = uniqueName('release');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 4);
    const batch = await run(stack.activities.fetchBatch, customer, 4);
    expect(await run(stack.activities.releaseBatch, customer, batch.leaseToken)).toBe(4);
    expect((await run(stack.activities.fetchBatch, customer, 10)).items).toHaveLength(4);
  });
});
