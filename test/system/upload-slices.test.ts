// uploadItems and stageItems, the upload activities that carry several items (a slice), against
// the emulator through the real dropbox SDK, Postgres and the media server. Each runs in the SDK's
// activity test environment, which records heartbeats and lets a test play a retry.
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { SliceProgress } from '../../activities/slice.js';
import type { SliceOutcome, SliceRequest } from '../../activities/types.js';
import { faultyUrl } from '../../dev/media-server.js';
import { insertItems } from '../support/items.js';
import { uniqueName } from '../support/stack.js';
import { useActivityStack } from '../support/activity-stack.js';

const stack = useActivityStack({
  // Short, so that deferring a source that keeps failing is quick to show.
  activities: { leaseTtlMs: 60_000, itemRetry: { initialDelayMs: 60_000 } },
});

function customerWithAccount(): { customer: string; token: string; accountId: string } {
  const token = uniqueName('tok');
  return { customer: uniqueName('c'), token, accountId: stack.emulator.addAccount({ token }) };
}

/** Leases `count` new items and plans a slice of them, `spacingMs` apart from now. */
async function slice(
  customer: string,
  token: string,
  count: number,
  options: { spacingMs?: number; concurrency?: number; sourceUrl?: (n: number) => string | undefined } = {},
): Promise<SliceRequest> {
  for (let n = 0; n < count; n++) {
    const sourceUrl = options.sourceUrl?.(n);
    await insertItems(stack.database.db, customer, token, stack.media.url, 1, sourceUrl ? { sourceUrl } : {});
  }
  const batch = await stack.activities.fetchBatch(customer, count);
  const now = Date.now();
  return {
    customerId: customer,
    leaseToken: batch.leaseToken,
    concurrency: options.concurrency ?? 4,
    items: batch.items.map((item, i) => ({ itemId: item.id, startAt: now + i * (options.spacingMs ?? 0) })),
  };
}

/** Runs a slice activity as attempt `attempt`, with the heartbeat a previous attempt left; returns what it heartbeated too. */
async function attempt(
  fn: (request: SliceRequest) => Promise<SliceOutcome>,
  request: SliceRequest,
  previous?: { attempt: number; heartbeat: SliceProgress | undefined },
  /** When the workflow scheduled the slice, epoch ms: its start times were planned then. */
  scheduledAt = Date.now(),
): Promise<{ outcome?: SliceOutcome; failure?: ApplicationFailure; heartbeat: SliceProgress | undefined }> {
  const env = new MockActivityEnvironment({
    scheduledTimestampMs: scheduledAt,
    ...(previous ? { attempt: previous.attempt, heartbeatDetails: previous.heartbeat } : {}),
  });
  let heartbeat: SliceProgress | undefined;
  env.on('heartbeat', (details: SliceProgress) => (heartbeat = details));
  try {
    return { outcome: await env.run(fn, request), heartbeat };
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    return { failure: err, heartbeat };
  }
}

async function states(ids: string[]): Promise<Record<string, string>> {
  const rows = await stack.database.db.query<{ id: string; state: string }>(
    'SELECT id::text, state FROM archive_items WHERE id = ANY($1::bigint[])',
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.id, r.state]));
}

describe('uploadItems', () => {
  it('uploads every item of the slice at its start time, at most `concurrency` at once, and times each', async () => {
    const { customer, token, accountId } = customerWithAccount();
    // Every commit holds the account's write lock this long, so overlapping uploads would show.
    stack.emulator.configureAccount(accountId, { latencyMs: 150 });
    const request = await slice(customer, token, 8, { spacingMs: 50, concurrency: 2 });
    const started = Date.now();
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    expect(outcome?.items.map((i) => i.status)).toEqual(Array(8).fill('archived'));
    expect(outcome?.items.map((i) => i.itemId)).toEqual(request.items.map((i) => i.itemId));
    expect(outcome?.unfinished).toEqual([]);
    // Two at a time, each about 150 ms: at least four rounds.
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * 150);
    for (const item of outcome?.items ?? []) {
      expect(item.durationMs).toBeGreaterThanOrEqual(140);
      expect(item.attempts).toBe(1);
    }
    expect(stack.emulator.files(accountId)).toHaveLength(8);
  });

  it('waits for each start time: a slice spread over a second takes a second', async () => {
    const { customer, token } = customerWithAccount();
    const request = await slice(customer, token, 5, { spacingMs: 250 });
    const started = Date.now();
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    expect(outcome?.items).toHaveLength(5);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('keeps the spacing of a slice that starts late, rather than sending its overdue items at once', async () => {
    const { customer, token } = customerWithAccount();
    const request = await slice(customer, token, 5, { spacingMs: 200 });
    // A busy worker picks the task up after every start time has passed.
    await new Promise((r) => setTimeout(r, 1_000));
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    const starts = (outcome?.items ?? []).map((i) => i.endedAt - i.durationMs).sort((a, b) => a - b);
    expect(starts).toHaveLength(5);
    for (let i = 1; i < starts.length; i++)
      expect((starts[i] as number) - (starts[i - 1] as number)).toBeGreaterThanOrEqual(180);
  });

  it('fails the slice on a 429 with Retry-After as nextRetryDelay; the retry re-sends only what was in flight', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 6, { spacingMs: 20, concurrency: 1 });
    // Two uploads go through at once, the third is answered 429.
    stack.emulator.configureAccount(accountId, { uploadsPerSecond: 0.5, burst: 2 });
    const first = await attempt(stack.activities.uploadItems, request);
    expect(first.failure?.type).toBe('RateLimited');
    expect(first.failure?.nextRetryDelay).toBeDefined();
    const done = first.heartbeat?.done ?? [];
    // The heartbeat names the items that ended before the 429; none of the rest is archived.
    const ids = request.items.map((i) => i.itemId);
    const rows = await states(ids);
    const archivedFirst = ids.filter((id) => rows[id] === 'archived');
    expect(done.map((d) => d.itemId)).toEqual(archivedFirst);
    expect(archivedFirst).toHaveLength(2);
    // Temporal waits nextRetryDelay; here the account's limit is lifted instead.
    stack.emulator.configureAccount(accountId, { uploadsPerSecond: null });
    await stack.database.db.query('UPDATE customers SET throttled_until = NULL WHERE id = $1', [customer]);
    const uploadsBefore = stack.emulator.stats().accounts[accountId]?.requests['/2/files/upload 200'] ?? 0;
    const retry = await attempt(stack.activities.uploadItems, request, { attempt: 2, heartbeat: first.heartbeat });
    expect(retry.failure).toBeUndefined();
    const items = retry.outcome?.items ?? [];
    // Items done before the 429 keep the outcome the first attempt heartbeated; the one in flight
    // is sent again; the three never started go back to the workflow, to be paced anew.
    expect(items.map((i) => i.itemId)).toEqual(ids.slice(0, 3));
    for (const item of items.slice(0, 2)) expect(item).toMatchObject({ status: 'archived', attempts: 1 });
    expect(items[2]).toMatchObject({ status: 'archived', rateLimited: 1 });
    expect(retry.outcome?.unstarted).toEqual(ids.slice(3));
    expect(retry.outcome?.rateLimitedAt).toBeGreaterThan(0);
    const uploadsAfter = stack.emulator.stats().accounts[accountId]?.requests['/2/files/upload 200'] ?? 0;
    expect(uploadsAfter - uploadsBefore).toBe(1);
    expect(stack.emulator.files(accountId)).toHaveLength(3);
  });

  it('after a 429, re-sends what was in flight no faster than Dropbox accepted this slice before it', async () => {
    const { customer, token, accountId } = customerWithAccount();
    // Planned all at once and 8 at a time, as a slice of a pace far above the limit is.
    const request = await slice(customer, token, 8, { spacingMs: 0, concurrency: 8 });
    stack.emulator.configureAccount(accountId, { uploadsPerSecond: 0.5, burst: 2 });
    const first = await attempt(stack.activities.uploadItems, request);
    expect(first.failure?.type).toBe('RateLimited');
    const accepted = first.heartbeat?.acceptedPerSecond ?? 0;
    expect(accepted).toBeGreaterThan(0);
    const refused = (first.heartbeat?.started ?? []).filter(
      (id) => !first.heartbeat?.done.some((d) => d.itemId === id),
    );
    expect(refused.length).toBeGreaterThanOrEqual(2);
    stack.emulator.configureAccount(accountId, { uploadsPerSecond: null });
    await stack.database.db.query('UPDATE customers SET throttled_until = NULL WHERE id = $1', [customer]);
    const retry = await attempt(stack.activities.uploadItems, request, { attempt: 2, heartbeat: first.heartbeat });
    expect(retry.failure).toBeUndefined();
    const resent = (retry.outcome?.items ?? [])
      .filter((i) => refused.includes(i.itemId))
      .map((i) => i.endedAt - i.durationMs)
      .sort((a, b) => a - b);
    expect(resent).toHaveLength(refused.length);
    // Planned 0 ms apart; re-sent at most at the accepted rate (a little timer slack allowed).
    for (let n = 1; n < resent.length; n++)
      expect(resent[n]! - resent[n - 1]!).toBeGreaterThanOrEqual(0.9 * (1000 / accepted) - 2);
  });

  it('sends nothing of a slice planned before the customer met a 429 elsewhere: its items go back to be paced anew', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 5, { spacingMs: 20, concurrency: 2 });
    const plannedAt = Date.now() - 100;
    // Another slice of the customer met a 429 after this one was planned, and its Retry-After is over.
    await stack.database.db.query('UPDATE customers SET rate_limited_at = now() WHERE id = $1', [customer]);
    const first = await attempt(stack.activities.uploadItems, request, undefined, plannedAt);
    expect(first.failure?.type).toBe('RateLimited');
    expect(stack.emulator.stats().accounts[accountId]?.requests['/2/files/upload 200'] ?? 0).toBe(0);
    // The retry is planned afresh: it sends the one item the first attempt started, and hands the others back.
    const ids = request.items.map((i) => i.itemId);
    const retry = await attempt(
      stack.activities.uploadItems,
      request,
      { attempt: 2, heartbeat: first.heartbeat },
      plannedAt,
    );
    expect(retry.failure).toBeUndefined();
    expect(retry.outcome?.items.map((i) => [i.itemId, i.status])).toEqual([[ids[0], 'archived']]);
    expect(retry.outcome?.unstarted).toEqual(ids.slice(1));
    expect(retry.outcome?.rateLimitedAt).toBeGreaterThan(0);
    // A slice planned after that 429 goes ahead.
    const later = await slice(customer, token, 2, { spacingMs: 20 });
    const fresh = await attempt(stack.activities.uploadItems, later);
    expect(fresh.outcome?.items.map((i) => i.status)).toEqual(['archived', 'archived']);
  });

  it('ends an item whose source is gone as failed, without failing the slice', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 4, {
      sourceUrl: (n) => (n === 1 ? faultyUrl(stack.media.url, '404', uniqueName('gone'), 100) : undefined),
    });
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    expect(outcome?.items.map((i) => i.status)).toEqual(['archived', 'failed', 'archived', 'archived']);
    expect(outcome?.items[1]?.error).toContain('404');
    expect(stack.emulator.files(accountId)).toHaveLength(3);
  });

  it('defers an item whose source keeps failing, and archives the others', async () => {
    const { customer, token } = customerWithAccount();
    const request = await slice(customer, token, 3, {
      sourceUrl: (n) => (n === 0 ? faultyUrl(stack.media.url, '503', uniqueName('down'), 100) : undefined),
    });
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    expect(outcome?.items.map((i) => i.status)).toEqual(['deferred', 'archived', 'archived']);
  });

  it('retries write contention and a 5xx inside the slice, marking those items not clean', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 3, { concurrency: 1 });
    stack.emulator.queueFaults(accountId, [
      { route: 'files/upload', fault: 'too_many_write_operations', retryAfter: 1 },
      { route: 'files/upload', fault: 503 },
    ]);
    const { outcome, failure } = await attempt(stack.activities.uploadItems, request);
    expect(failure).toBeUndefined();
    expect(outcome?.items.map((i) => i.status)).toEqual(['archived', 'archived', 'archived']);
    // One at a time: the first item met both faults, and went through on its third try.
    expect(outcome?.items[0]).toMatchObject({ writeContention: 1, attempts: 3 });
    expect(outcome?.items[1]?.attempts).toBe(1);
    expect(outcome?.items[2]?.attempts).toBe(1);
    expect(stack.emulator.files(accountId)).toHaveLength(3);
  });

  it('returns a pause on a revoked token, naming the items it did not finish, which stay leased', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 4, { spacingMs: 300, concurrency: 1 });
    const revoke = setTimeout(() => stack.emulator.revokeTokens(accountId), 450);
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    clearTimeout(revoke);
    expect(outcome?.pause?.type).toBe('AuthRevoked');
    const ended = outcome?.items.map((i) => i.itemId) ?? [];
    expect(ended.length).toBeGreaterThanOrEqual(1);
    expect(outcome?.unfinished).toEqual(request.items.map((i) => i.itemId).filter((id) => !ended.includes(id)));
    const rows = await states(outcome?.unfinished ?? []);
    expect(Object.values(rows).every((s) => s === 'leased')).toBe(true);
    expect(JSON.stringify(outcome)).not.toContain(token);
  });

  it('returns a pause when Dropbox is full', async () => {
    const { customer, token, accountId } = customerWithAccount();
    stack.emulator.configureAccount(accountId, { quotaBytes: 1500 });
    const request = await slice(customer, token, 3, { concurrency: 1 });
    const { outcome } = await attempt(stack.activities.uploadItems, request);
    expect(outcome?.pause?.type).toBe('StorageFull');
    expect(outcome?.items.filter((i) => i.status === 'archived')).toHaveLength(1);
    expect(outcome?.unfinished).toHaveLength(2);
  });

  it('after a worker died mid-slice, the retry skips the items the rows show archived', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 4);
    // The dead attempt archived two items but its last heartbeat never reached Temporal.
    const partial = await attempt(stack.activities.uploadItems, { ...request, items: request.items.slice(0, 2) });
    expect(partial.outcome?.items).toHaveLength(2);
    const retry = await attempt(stack.activities.uploadItems, request, { attempt: 2, heartbeat: undefined });
    expect(retry.outcome?.items.map((i) => i.status)).toEqual([
      'already-archived',
      'already-archived',
      'archived',
      'archived',
    ]);
    expect(stack.emulator.files(accountId)).toHaveLength(4);
    expect(stack.emulator.stats().accounts[accountId]?.requests['/2/files/upload 200']).toBe(4);
  });
});

describe('stageItems', () => {
  it('stages each item of the slice in a closed session, committed later by commitSessions', async () => {
    const { customer, token, accountId } = customerWithAccount();
    const request = await slice(customer, token, 5);
    const { outcome } = await attempt(stack.activities.stageItems, request);
    const staged = outcome?.items.flatMap((i) => (i.status === 'staged' && i.staged ? [i.staged] : [])) ?? [];
    expect(staged).toHaveLength(5);
    expect(stack.emulator.files(accountId)).toHaveLength(0);
    const committed = await new MockActivityEnvironment().run<
      Parameters<typeof stack.activities.commitSessions>,
      Awaited<ReturnType<typeof stack.activities.commitSessions>>,
      typeof stack.activities.commitSessions
    >(stack.activities.commitSessions, customer, request.leaseToken, staged);
    expect(committed.archived).toHaveLength(5);
    expect(stack.emulator.files(accountId)).toHaveLength(5);
  });
});
