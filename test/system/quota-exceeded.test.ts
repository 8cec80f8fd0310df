import type { temporal } from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { resumeCustomer } from '../../client/archiver-client.js';
import { formatStatusTable } from '../../client/status-table.js';
import { pauseSignal } from '../../workflows/messages.js';
import { searchAttributes, workflowIdFor } from '../../workflows/names.js';
import { recordHistory, startArchiving, status, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { expectArchivedExactlyOnce } from '../support/verify.js';

/**
 * A Dropbox team over its monthly Data Transport quota (403 invalid_account_type/feature):
 * the customer pauses as quota-exceeded on a durable timer until the first of the next month
 * (UTC), then resumes by itself; real Temporal, Postgres and emulator.
 */
const stack = useArchiverStack({ emulator: { seed: 13 } });

async function customerWith(items: number): Promise<{ id: string; accountId: string }> {
  const id = uniqueName('quota');
  const token = uniqueName('tok');
  stack.emulator.addAccount({ accountId: id, token });
  await insertItems(stack.database.db, id, token, stack.media.url, items);
  return { id, accountId: id };
}

async function itemStates(customerId: string): Promise<Record<string, number>> {
  const rows = await stack.database.db.query<{ state: string; n: string }>(
    'SELECT state, count(*) AS n FROM archive_items WHERE customer_id = $1 GROUP BY state',
    [customerId],
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** The quota-exceeded pause's timer: when it was started and how long it runs, from the real history. */
async function pauseTimers(customerId: string) {
  const history = await stack.temporal.client.workflow.getHandle(workflowIdFor(customerId)).fetchHistory();
  const events = history.events ?? [];
  const ms = (d: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
    Number(d?.seconds ?? 0) * 1000 + Math.round((d?.nanos ?? 0) / 1e6);
  return {
    started: events
      .filter((e) => e.timerStartedEventAttributes)
      .map((e) => ({
        id: e.timerStartedEventAttributes?.timerId,
        at: ms(e.eventTime),
        durationMs: ms(e.timerStartedEventAttributes?.startToFireTimeout),
      })),
    fired: events.filter((e) => e.timerFiredEventAttributes).map((e) => e.timerFiredEventAttributes?.timerId),
    patches: events.flatMap((e) => {
      const data = e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]?.data;
      return data ? [(JSON.parse(Buffer.from(data).toString('utf8')) as { id: string }).id] : [];
    }),
  };
}

async function currentDetails(customerId: string): Promise<string> {
  const metadata = await stack.temporal.client.workflow
    .getHandle(workflowIdFor(customerId))
    .query<temporal.api.sdk.v1.IWorkflowMetadata>('__temporal_workflow_metadata');
  return metadata.currentDetails ?? '';
}

async function stateAttribute(customerId: string): Promise<string | undefined> {
  const d = await stack.temporal.client.workflow.getHandle(workflowIdFor(customerId)).describe();
  return d.typedSearchAttributes.get(searchAttributes.state);
}

describe('the Data Transport quota', () => {
  it('pauses the customer as quota-exceeded until the first of next month, UTC, and resume ends it early', async () => {
    const customer = await customerWith(30);
    stack.emulator.configureAccount(customer.accountId, { latencyMs: 30 });
    await startArchiving(stack.temporal, customer.id);
    await statusWhen(stack.temporal.client, customer.id, (s) => s.totals.archived >= 5);
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: true });

    const paused = await statusWhen(stack.temporal.client, customer.id, (s) => s.state === 'quota-exceeded');
    expect(paused.pauseReason).toContain('403 invalid_account_type/feature');
    expect(paused.pauseReason).toContain('Data Transport quota');
    const { started, patches } = await eventually(async () => {
      const t = await pauseTimers(customer.id);
      return t.started.length > 0 ? t : undefined;
    });
    expect(patches).toContain('quota-exceeded-pause');
    // One durable timer to the first of the next month, UTC, measured from workflow time.
    const timer = started.at(-1);
    const now = new Date(timer?.at ?? 0);
    const firstOfNextMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    expect(Math.abs((timer?.at ?? 0) + (timer?.durationMs ?? 0) - firstOfNextMonth)).toBeLessThan(5_000);
    expect(paused.pausedUntil).toBe(new Date(firstOfNextMonth).toISOString());
    expect(paused.pauseReason).toMatch(new RegExp(`^resumes by itself at ${new Date(firstOfNextMonth).toISOString()}`));

    // Visible where operators look: archiver status, the ArchiverState attribute, the current details.
    const table = formatStatusTable([await status(stack.temporal.client, customer.id)]);
    expect(table).toContain('quota-exceeded');
    expect(table).toContain(`resumes by itself at ${new Date(firstOfNextMonth).toISOString()}`);
    await eventually(async () => ((await stateAttribute(customer.id)) === 'quota-exceeded' ? true : undefined));
    expect(await currentDetails(customer.id)).toMatch(/^\*\*quota-exceeded\*\*: resumes by itself at .*Data Transport/);

    // The items in flight went back: nothing failed, nothing is left leased.
    const states = await eventually(async () => {
      const s = await itemStates(customer.id);
      return s['leased'] === undefined ? s : undefined;
    });
    expect(states['failed']).toBeUndefined();
    expect((states['archived'] ?? 0) + (states['pending'] ?? 0)).toBe(30);
    expect(states['pending']).toBeGreaterThan(0);

    // The team bought more quota: an operator ends the pause early.
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: false });
    expect(await resumeCustomer(stack.temporal.client, customer.id)).toMatchObject({ outcome: 'resumed' });
    await statusWhen(stack.temporal.client, customer.id, (s) => s.totals.archived === 30 && s.state === 'idle');
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [customer])).toBe(30);
    await recordHistory(stack.temporal.client, customer.id, 'quota-exceeded');
  });

  it('resumes by itself when the pause timer fires (shortened with testOnlyQuotaPauseMs)', async () => {
    const customer = await customerWith(10);
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: true });
    await startArchiving(stack.temporal, customer.id, { testOnlyQuotaPauseMs: 4_000 });
    const paused = await statusWhen(stack.temporal.client, customer.id, (s) => s.state === 'quota-exceeded');
    expect(paused.totals.archived).toBe(0);
    // The quota resets; nobody sends resume.
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: false });
    const done = await statusWhen(
      stack.temporal.client,
      customer.id,
      (s) => s.totals.archived === 10 && s.state === 'idle',
    );
    expect(done.pauseReason).toBeUndefined();
    const { started, fired } = await pauseTimers(customer.id);
    const pauseTimer = started.find((t) => Math.abs(t.durationMs - 4_000) < 1_000);
    expect(pauseTimer).toBeDefined();
    expect(fired).toContain(pauseTimer?.id);
    expect(await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [customer])).toBe(10);
  });

  it("an operator's pause during quota-exceeded outlasts the quota's timer", async () => {
    const customer = await customerWith(5);
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: true });
    const handle = await startArchiving(stack.temporal, customer.id, { testOnlyQuotaPauseMs: 2_000 });
    await statusWhen(stack.temporal.client, customer.id, (s) => s.state === 'quota-exceeded');
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: false });
    await handle.signal(pauseSignal, 'maintenance');
    await statusWhen(
      stack.temporal.client,
      customer.id,
      (s) => s.state === 'paused' && s.pauseReason === 'maintenance',
    );
    // Past the quota's 2 s, the operator's pause still holds.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const held = await status(stack.temporal.client, customer.id);
    expect(held).toMatchObject({ state: 'paused', pauseReason: 'maintenance', totals: { archived: 0 } });
    expect(held.pausedUntil).toBeUndefined();
    expect(await resumeCustomer(stack.temporal.client, customer.id)).toMatchObject({ outcome: 'resumed' });
    await statusWhen(stack.temporal.client, customer.id, (s) => s.totals.archived === 5 && s.state === 'idle');
  });

  it('continues as new while it waits, keeping the pause and when it ends', async () => {
    const customer = await customerWith(3);
    stack.emulator.configureAccount(customer.accountId, { dataTransportExceeded: true });
    const handle = await startArchiving(stack.temporal, customer.id, { maxHistoryEvents: 60 });
    const paused = await statusWhen(stack.temporal.client, customer.id, (s) => s.state === 'quota-exceeded');
    const firstRun = (await handle.describe()).runId;
    // New items keep being signalled while the quota is used up.
    for (let n = 0; n < 30 && (await handle.describe()).runId === firstRun; n++) await handle.signal('itemsAvailable');
    const next = await eventually(async () => {
      const d = await stack.temporal.client.workflow.getHandle(workflowIdFor(customer.id)).describe();
      return d.runId !== firstRun && d.status.name === 'RUNNING' ? d : undefined;
    });
    expect(next.runId).not.toBe(firstRun);
    const carried = await statusWhen(stack.temporal.client, customer.id, (s) => s.state === 'quota-exceeded');
    expect(carried.pausedUntil).toBe(paused.pausedUntil);
    expect(carried.pauseReason).toBe(paused.pauseReason);
    const { started } = await pauseTimers(customer.id);
    const timer = started.at(-1);
    expect(Math.abs((timer?.at ?? 0) + (timer?.durationMs ?? 0) - Date.parse(paused.pausedUntil ?? ''))).toBeLessThan(
      5_000,
    );
  });
});
