// A customer never stalls behind its bad items: sources that fail for good or for now among good
// items, through the whole pipeline (workflow, activities, Postgres, the emulator).
import { describe, expect, it } from 'vitest';
import { formatStatusTable } from '../../client/status-table.js';
import { faultyUrl, type SourceFault } from '../../dev/media-server.js';
import { freePort } from '../../dev/ports.js';
import { itemsAvailableSignal } from '../../workflows/messages.js';
import { workflowIdFor } from '../../workflows/names.js';
import { recordHistory, startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';

const TOKEN = 'token-stuck-sources';
/** Dropbox's pace for this token, so "normal pace" is Dropbox's and not the machine's. */
const UPLOADS_PER_SECOND = 25;

const stack = useArchiverStack({
  emulator: { accounts: [{ token: TOKEN, accountId: 'stuck' }], uploadsPerSecond: UPLOADS_PER_SECOND },
  worker: {
    // With the default source timeouts (a hung source is given up after 10 s). A failed item waits
    // a minute, longer than the test, so each bad item is tried once while the good ones drain.
    itemRetry: { initialDelayMs: 60_000 },
  },
});

async function itemRows(customer: string) {
  return stack.database.db.query<{
    id: string;
    state: string;
    attempts: number;
    failed_attempts: number;
    last_error: string | null;
    next_attempt_at: Date | null;
    archived_at: Date | null;
  }>('SELECT * FROM archive_items WHERE customer_id = $1 ORDER BY id', [customer]);
}

describe('a customer with failing sources among good ones', () => {
  it('archives all good items at its pace, fails the gone ones, and shows the retrying ones in status', async () => {
    const customer = uniqueName('stuck');
    const db = stack.database.db;
    const media = stack.media.url;
    const gone: string[] = [
      faultyUrl(media, '404', 'gone-a', 2000),
      faultyUrl(media, '410', 'gone-b', 2000),
      faultyUrl(media, '404', 'gone-c', 2000),
      faultyUrl(media, '410', 'gone-d', 2000),
      'ftp://media.example/gone-e.wav',
      'not a url',
    ];
    const failing: string[] = [
      ...(['500', '503', 'hang', 'stall', 'short'] as SourceFault[]).map((f) => faultyUrl(media, f, `down-${f}`, 4000)),
      `http://127.0.0.1:${await freePort()}/refused.wav`,
    ];
    // The bad items come first, so that they would take the first batch's upload slots.
    const badIds: string[] = [];
    for (const sourceUrl of [...gone, ...failing])
      badIds.push(...(await insertItems(db, customer, TOKEN, media, 1, { sourceUrl })));
    const goodIds = await insertItems(db, customer, TOKEN, media, 200, { bytes: 2000 });

    const started = Date.now();
    await startArchiving(stack.temporal, customer);
    await eventually(
      async () => {
        const rows = await itemRows(customer);
        return rows.filter((r) => r.state === 'archived').length === 200 ? true : undefined;
      },
      120_000,
      'all 200 good items archived',
    );
    const drainSeconds = (Date.now() - started) / 1000;
    // One that arrives later is not held up either.
    const [late] = await insertItems(db, customer, TOKEN, media, 1, { bytes: 2000 });
    // As the worker's notifier would on the insert.
    await stack.temporal.client.workflow.getHandle(workflowIdFor(customer)).signal(itemsAvailableSignal);
    await eventually(
      async () => ((await itemRows(customer)).find((r) => r.id === late)?.state === 'archived' ? true : undefined),
      30_000,
      'the late item archived',
    );

    // The good items may all be in before the hung sources' 10 s timeouts end their first attempts.
    const failingIds = badIds.slice(gone.length);
    await eventually(
      async () => {
        const rows = (await itemRows(customer)).filter((r) => failingIds.includes(r.id));
        return rows.every((r) => r.failed_attempts === 1) ? true : undefined;
      },
      30_000,
      'every failing source tried once',
    );
    const rows = new Map((await itemRows(customer)).map((r) => [r.id, r]));
    for (const id of goodIds) expect(rows.get(id)?.state).toBe('archived');
    for (const id of badIds.slice(0, gone.length)) {
      expect(rows.get(id)).toMatchObject({
        state: 'failed',
        attempts: 1,
        last_error: expect.stringMatching(/item \d+/),
      });
    }
    for (const id of failingIds) {
      // Each was tried once and gave its slot back: pending, with why and when it is tried next.
      const r = rows.get(id);
      expect(r).toMatchObject({ state: 'pending', attempts: 1, failed_attempts: 1 });
      expect(r?.last_error).toMatch(/source of item|fetching item/);
      expect(r?.next_attempt_at?.getTime()).toBeGreaterThan(Date.now());
    }
    // The same 200 good items alone, for the pace to compare with (printed, not asserted: timings are noisy).
    const alone = uniqueName('alone');
    await insertItems(db, alone, TOKEN, media, 200, { bytes: 2000 });
    const aloneStarted = Date.now();
    await startArchiving(stack.temporal, alone);
    await statusWhen(stack.temporal.client, alone, (s) => s.totals.archived === 200, 120_000);
    const aloneSeconds = (Date.now() - aloneStarted) / 1000;
    console.log(
      `stuck-sources: 200 good items beside 12 bad ones archived in ${drainSeconds.toFixed(1)} s; ` +
        `alone in ${aloneSeconds.toFixed(1)} s (${(drainSeconds / aloneSeconds).toFixed(2)}x)`,
    );

    const status = await statusWhen(
      stack.temporal.client,
      customer,
      (s) => s.state === 'idle' && s.totals.archived === 201,
    );
    expect(status).toMatchObject({ retryWaiting: 6, backlog: 0, totals: { failed: 6 } });
    expect(status.lastError).toMatch(/^item \d+: /);
    await recordHistory(stack.temporal.client, customer, 'stuck-sources');
    expect(Date.parse(status.oldestWaitingSince ?? '')).toBeLessThan(Date.now());
    const table = formatStatusTable([status]);
    expect(table).toMatch(/RETRYING\s+LAG/);
    expect(table.split('\n')[1]).toMatch(new RegExp(`^${customer}\\s+idle\\s+0\\s+6\\s+\\d+[smhd]\\s`));
  });
});
