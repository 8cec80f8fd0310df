import { describe, expect, it } from 'vitest';
import { startCustomer } from '../../client/archiver-client.js';
import {
  itemsAvailableSignal,
  pauseSignal,
  resumeSignal,
  setLimitsUpdate,
  stopSignal,
  type ArchiveCustomerInput,
} from '../../workflows/messages.js';
import { searchAttributes, workflowIdFor } from '../../workflows/names.js';
import { DEFAULT_PACING_LIMITS } from '../../workflows/pacing/controller.js';
import { recordHistory, startArchiving, status, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { decodePayload, eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const TOKEN = 'token-workflow';

const stack = useArchiverStack({ emulator: { accounts: [{ token: TOKEN, accountId: 'wf' }] } });

async function pendingOrArchived(customerId: string): Promise<Record<string, number>> {
  const rows = await stack.database.db.query<{ state: string; n: string }>(
    'SELECT state, count(*) AS n FROM archive_items WHERE customer_id = $1 GROUP BY state',
    [customerId],
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

async function searchAttributesOf(customerId: string) {
  const d = await stack.temporal.client.workflow.getHandle(workflowIdFor(customerId)).describe();
  return {
    customerId: d.typedSearchAttributes.get(searchAttributes.customerId),
    state: d.typedSearchAttributes.get(searchAttributes.state),
    backlog: d.typedSearchAttributes.get(searchAttributes.backlog),
  };
}

describe('archiveCustomer workflow', () => {
  it('drains the backlog, reports it in status and search attributes, then idles', async () => {
    const customer = uniqueName('drain');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 60);
    const handle = await startArchiving(stack.temporal, customer);
    const done = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.state === 'idle' && s.totals.archived === 60,
    );
    expect(done).toMatchObject({ customerId: customer, backlog: 0, totals: { archived: 60, failed: 0 } });
    // Without a 429 the controller is still in slow start: the pace grew from the initial rate.
    expect(done.pacedRatePerSecond).toBeGreaterThan(DEFAULT_PACING_LIMITS.initialRatePerSecond);
    expect(done.limitEstimatePerSecond).toBeUndefined();
    expect(await pendingOrArchived(customer)).toEqual({ archived: 60 });
    // Every upload carries the customer as its fairness key, so a saturated task queue is shared.
    const firstRun = stack.temporal.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
    const uploads = ((await firstRun.fetchHistory()).events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name === 'uploadItems');
    // Several items per upload activity (patch upload-slices): far fewer activities than items.
    expect(uploads.length).toBeGreaterThan(0);
    expect(uploads.length).toBeLessThan(60 / 3);
    for (const a of uploads) expect(a?.priority?.fairnessKey).toBe(customer);
    await eventually(
      async () => {
        const sa = await searchAttributesOf(customer);
        return sa.state === 'idle' ? sa : undefined;
      },
      20_000,
      'ArchiverState=idle',
    );
    expect(await searchAttributesOf(customer)).toEqual({ customerId: customer, state: 'idle', backlog: 0 });
    await recordHistory(stack.temporal.client, customer, 'drain');
  });

  it('wakes from idle on itemsAvailable instead of waiting for the safety poll', async () => {
    const customer = uniqueName('wake');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1);
    await startArchiving(stack.temporal, customer, { safetyPollMs: 3_600_000 });
    await statusWhen(stack.temporal.client, customer, (s) => s.state === 'idle' && s.totals.archived === 1);
    // Asleep, not polling: an idle customer with nothing waiting to retry looks at its queue no
    // more (one that woke every second to look, as a NULL retry time once made it, leased twice in two seconds).
    const handle = stack.temporal.client.workflow.getHandle(workflowIdFor(customer));
    const leases = async () =>
      (await handle.fetchHistory()).events?.filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchBatch',
      ).length;
    const asleep = await leases();
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await leases()).toBe(asleep);
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 5);
    // Without the signal the new items would wait an hour.
    await handle.signal(itemsAvailableSignal);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 6, 20_000);
  });

  it("cools the whole customer down while Dropbox's Retry-After lasts, showing it in status", async () => {
    const customer = uniqueName('cool');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 5);
    // As if an upload had just been answered 429 with Retry-After: 3.
    await stack.database.db.query(`UPDATE customers SET throttled_until = now() + interval '3 seconds' WHERE id = $1`, [
      customer,
    ]);
    const uploadsBefore = stack.emulator.stats().uploads;
    await startArchiving(stack.temporal, customer);
    const cooling = await statusWhen(stack.temporal.client, customer, (s) => s.state === 'cooling-down', 10_000);
    expect(Date.parse(cooling.coolingDownUntil ?? '')).toBeGreaterThan(Date.now());
    expect((await searchAttributesOf(customer)).state).toBe('cooling-down');
    expect(stack.emulator.stats().uploads).toBe(uploadsBefore);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 5, 20_000);
    await recordHistory(stack.temporal.client, customer, 'cool-down');
  });

  it('pauses without starting new uploads and resumes where it stopped', async () => {
    const customer = uniqueName('pause');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 30);
    const handle = await startArchiving(stack.temporal, customer, {
      pausedState: 'paused',
      pauseReason: 'maintenance',
    });
    const paused = await statusWhen(stack.temporal.client, customer, (s) => s.state === 'paused');
    expect(paused.pauseReason).toBe('maintenance');
    expect(await pendingOrArchived(customer)).toEqual({ pending: 30 });
    await handle.signal(resumeSignal);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 30 && s.state === 'idle');
    await handle.signal(pauseSignal, 'operator says stop');
    const again = await statusWhen(stack.temporal.client, customer, (s) => s.state === 'paused');
    expect(again.pauseReason).toBe('operator says stop');
    expect((await searchAttributesOf(customer)).state).toBe('paused');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 3);
    await handle.signal(itemsAvailableSignal);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await pendingOrArchived(customer)).pending).toBe(3);
    await handle.signal(resumeSignal);
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 33);
    await recordHistory(stack.temporal.client, customer, 'pause-resume');
  });

  it('pauses as needs-reauth when the token is revoked, returning its items to pending', async () => {
    const customer = uniqueName('reauth');
    await insertItems(stack.database.db, customer, 'revoked-token', stack.media.url, 10);
    await startArchiving(stack.temporal, customer);
    const s = await statusWhen(stack.temporal.client, customer, (x) => x.state === 'needs-reauth');
    expect(s.pauseReason).toMatch(/invalid_access_token/);
    expect(s.pauseReason).not.toContain('revoked-token');
    await eventually(
      async () => ((await pendingOrArchived(customer)).pending === 10 ? true : undefined),
      10_000,
      'items released',
    );
    expect((await searchAttributesOf(customer)).state).toBe('needs-reauth');
    // Once credentials are fixed, resume archives everything.
    await stack.database.db.query('UPDATE customers SET dropbox_access_token = $2 WHERE id = $1', [customer, TOKEN]);
    await stack.temporal.client.workflow.getHandle(workflowIdFor(customer)).signal(resumeSignal);
    await statusWhen(stack.temporal.client, customer, (x) => x.totals.archived === 10);
    await recordHistory(stack.temporal.client, customer, 'needs-reauth');
  });

  it('resumes a needs-reauth customer only once Dropbox accepts its credentials', async () => {
    const customer = uniqueName('resume-check');
    await insertItems(stack.database.db, customer, 'revoked-token', stack.media.url, 3);
    const handle = await startArchiving(stack.temporal, customer);
    await statusWhen(stack.temporal.client, customer, (x) => x.state === 'needs-reauth');
    // An operator resumes before fixing anything: the workflow checks and stays paused.
    await handle.signal(resumeSignal);
    const refused = await statusWhen(stack.temporal.client, customer, (x) =>
      (x.pauseReason ?? '').startsWith('resume refused'),
    );
    expect(refused.state).toBe('needs-reauth');
    await stack.database.db.query('UPDATE customers SET dropbox_access_token = $2 WHERE id = $1', [customer, TOKEN]);
    await handle.signal(resumeSignal);
    const resumed = await statusWhen(
      stack.temporal.client,
      customer,
      (x) => x.totals.archived === 3 && x.state === 'idle',
    );
    expect(resumed.lastError).toBeUndefined();
    await recordHistory(stack.temporal.client, customer, 'resume-checks-credentials');
  });

  it('applies operator caps from setLimits, rejecting bad ones before they reach history', async () => {
    const customer = uniqueName('caps');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 30);
    const handle = await startArchiving(stack.temporal, customer, {
      pausedState: 'paused',
      pauseReason: 'set caps first',
    });
    await statusWhen(stack.temporal.client, customer, (s) => s.state === 'paused');
    const rejection = (caps: object) =>
      handle.executeUpdate(setLimitsUpdate, { args: [caps] }).then(
        () => 'accepted',
        (err: { cause?: Error }) => err.cause?.message,
      );
    expect(await rejection({ maxConcurrency: 0 })).toMatch(/maxConcurrency must be a positive number/);
    expect(await rejection({ maxBatchSize: 2.5 })).toMatch(/whole number/);
    const caps = await handle.executeUpdate(setLimitsUpdate, {
      args: [{ maxConcurrency: 1, maxBatchSize: 4, maxRatePerSecond: 5 }],
    });
    expect(caps).toEqual({ maxConcurrency: 1, maxBatchSize: 4, maxRatePerSecond: 5 });
    const history = await handle.fetchHistory();
    // A rejected update leaves no trace in history.
    expect(history.events?.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes)).toHaveLength(1);
    await handle.signal(resumeSignal);
    const done = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.totals.archived === 30 && s.state === 'idle',
    );
    expect(done.operatorLimits).toEqual(caps);
    // At most 4 items per batch: 30 items took at least 8 batches.
    expect(done.totals.batches).toBeGreaterThanOrEqual(8);
    // At most 5 starts a second (uncapped, the controller starts at 10/s and grows): 30 items took ≥ 5.8 s.
    expect(done.pacedRatePerSecond).toBeLessThanOrEqual(5);
    const [span] = await stack.database.db.query<{ seconds: number }>(
      'SELECT extract(epoch FROM max(archived_at) - min(archived_at))::float AS seconds FROM archive_items WHERE customer_id = $1',
      [customer],
    );
    expect(span?.seconds).toBeGreaterThanOrEqual(5.4);
    expect(await handle.executeUpdate(setLimitsUpdate, { args: [{ maxConcurrency: null }] })).toEqual({
      maxBatchSize: 4,
      maxRatePerSecond: 5,
    });
  });

  it('fails as BadInput, naming the customer and the field, when its pacing limits are invalid', async () => {
    const customer = uniqueName('bad-limits');
    const handle = await startArchiving(stack.temporal, customer, { limits: { maxConcurrency: 0 } });
    const failure = await handle.result().then(
      () => undefined,
      (err: unknown) => (err as { cause?: { type?: string; message?: string } }).cause,
    );
    expect(failure?.type).toBe('BadInput');
    expect(failure?.message).toContain(customer);
    expect(failure?.message).toContain('maxConcurrency');
  });

  it('ends cleanly on stop, finishing the batch in flight', async () => {
    const customer = uniqueName('stop');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 5);
    const handle = await startArchiving(stack.temporal, customer);
    await statusWhen(stack.temporal.client, customer, (s) => s.state === 'idle' && s.totals.archived === 5);
    await handle.signal(stopSignal, 'customer disconnected Dropbox');
    await handle.result();
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    expect(await pendingOrArchived(customer)).toEqual({ archived: 5 });
  });

  it('continues as new when history grows, carrying totals and pace across runs', async () => {
    const customer = uniqueName('can');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 400);
    // Batches of about a second of uploads: an upload activity carries up to 50 items, so with the
    // default 10 s batches 400 items can take fewer than the 100 events at which the suite's server suggests it.
    const handle = await startArchiving(stack.temporal, customer, { limits: { batchSeconds: 1 } });
    const done = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.totals.archived === 400 && s.state === 'idle',
      90_000,
    );
    const description = await handle.describe();
    // The suite's server suggests continue-as-new at a small history size (see global setup).
    expect(description.runId).not.toBe(handle.firstExecutionRunId);
    expect(done.totals.batches).toBeGreaterThan(1);
    expect(await pendingOrArchived(customer)).toEqual({ archived: 400 });
    expect((await status(stack.temporal.client, customer)).totals.archived).toBe(400);
    // The pacing controller's state rides along: the first run hands it to the next.
    const first = await stack.temporal.client.workflow
      .getHandle(handle.workflowId, handle.firstExecutionRunId)
      .fetchHistory();
    const carried = first.events?.find((e) => e.workflowExecutionContinuedAsNewEventAttributes)
      ?.workflowExecutionContinuedAsNewEventAttributes?.input?.payloads?.[0];
    if (!carried) throw new Error('the first run did not continue as new with an input');
    const input = await decodePayload<ArchiveCustomerInput>(carried);
    expect(input.controller?.ratePerSecond).toBeGreaterThan(DEFAULT_PACING_LIMITS.initialRatePerSecond);
    expect(input.totals?.archived).toBeGreaterThan(0);
    await recordHistory(stack.temporal.client, customer, 'continue-as-new');
  });

  it("hands a dead worker's customers to another worker within seconds, not the SDK's 10 s", async () => {
    const customer = uniqueName('deadlines');
    await startCustomer(stack.temporal.client, customer, 'Deadlines', { taskQueue: stack.temporal.taskQueue });
    const { raw } = await stack.temporal.client.workflow.getHandle(workflowIdFor(customer)).describe();
    // A task a dying worker had taken is retried after this long.
    expect(Number(raw.executionConfig?.defaultWorkflowTaskTimeout?.seconds)).toBe(5);
    // A task queued for a dead worker's cache goes to any worker after this long.
    expect(stack.worker?.options.stickyQueueScheduleToStartTimeoutMs).toBe(2_000);
    await stack.temporal.client.workflow.getHandle(workflowIdFor(customer)).signal(stopSignal, 'test done');
  });

  it('continues as new at maxHistoryEvents, before Temporal suggests it, so a takeover replays little', async () => {
    const customer = uniqueName('short');
    await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 120);
    // Batches of about 10 items, so the first run ends soon after 60 events, well before the drain
    // does: a run that reaches 60 only in its last idle look at the queue continues on its next wake.
    const handle = await startArchiving(stack.temporal, customer, {
      maxHistoryEvents: 60,
      limits: { batchSeconds: 1 },
    });
    await statusWhen(stack.temporal.client, customer, (s) => s.totals.archived === 120 && s.state === 'idle', 90_000);
    const first = await stack.temporal.client.workflow
      .getHandle(handle.workflowId, handle.firstExecutionRunId)
      .fetchHistory();
    const events = first.events ?? [];
    expect(events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
    // Short of the 100 at which the suite's server suggests it (see global setup).
    expect(events.length).toBeGreaterThanOrEqual(60);
    expect(events.length).toBeLessThan(100);
    expect(await pendingOrArchived(customer)).toEqual({ archived: 120 });
  });
});
