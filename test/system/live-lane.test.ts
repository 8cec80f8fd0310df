import { expect, it } from 'vitest';
import { wakeCustomer } from '../../client/archiver-client.js';
import { recordHistory, startArchiving, statusWhen } from '../support/harness.js';
import { insertItems } from '../support/items.js';
import { eventually, uniqueName } from '../support/stack.js';
import { useArchiverStack } from '../support/archiver-stack.js';
import { expectArchivedExactlyOnce } from '../support/verify.js';

/**
 * Live items that arrive while a backfill batch uploads are not held back until it ends: the
 * workflow's live lane leases and uploads them at once beside it (real Temporal, Postgres and
 * emulator). The batches here last about 30 s, so without the lane every live item would wait
 * for most of one.
 */
const stack = useArchiverStack();

const RATE = 10;
const BACKFILL = 300;
const LIVE = 3;

async function archivedAt(itemId: string): Promise<number | undefined> {
  const [row] = await stack.database.db.query<{ at: Date | null }>(
    `SELECT archived_at AS at FROM archive_items WHERE id = $1 AND state = 'archived'`,
    [itemId],
  );
  return row?.at ? row.at.getTime() : undefined;
}

async function backfillLeft(customerId: string): Promise<number> {
  const [row] = await stack.database.db.query<{ n: string }>(
    `SELECT count(*) AS n FROM archive_items WHERE customer_id = $1 AND state <> 'archived'
        AND occurred_at < now() - interval '1 day'`,
    [customerId],
  );
  return Number(row?.n ?? 0);
}

/** A customer whose BACKFILL month-old items are uploading in one batch (30 s of uploads at its pace). */
async function backfillRunning(name: string): Promise<{ id: string; token: string }> {
  const id = uniqueName(name);
  const token = `token-${id}`;
  stack.emulator.addAccount({ token, accountId: id });
  stack.emulator.configureAccount(id, { uploadsPerSecond: RATE });
  await insertItems(stack.database.db, id, token, stack.media.url, BACKFILL, { kind: 'sms' });
  await stack.database.db.query(
    `UPDATE archive_items SET occurred_at = now() - interval '30 days' WHERE customer_id = $1`,
    [id],
  );
  await startArchiving(stack.temporal, id, { limits: { initialRatePerSecond: RATE, batchSeconds: 30 } });
  await statusWhen(stack.temporal.client, id, (s) => s.state === 'running' && s.totals.archived >= 30);
  return { id, token };
}

it(`uploads ${LIVE} live items within seconds each while a ${BACKFILL}-item backfill batch runs, then finishes both exactly once`, async () => {
  const { id, token } = await backfillRunning('lane');

  const waits: number[] = [];
  for (let n = 0; n < LIVE; n++) {
    const [itemId] = await insertItems(stack.database.db, id, token, stack.media.url, 1, { kind: 'sms' });
    const insertedAt = Date.now();
    await wakeCustomer(stack.temporal.client, id);
    const at = await eventually(() => archivedAt(itemId as string), 20_000, 'the live item archived');
    waits.push(at - insertedAt);
    await new Promise((r) => setTimeout(r, 1_500));
  }
  // Within a few seconds each (about one upload and two activity round trips), while the
  // backfill still had most of its batch to go.
  for (const wait of waits) expect(wait).toBeLessThan(4_000);
  expect(await backfillLeft(id)).toBeGreaterThan(100);

  await statusWhen(
    stack.temporal.client,
    id,
    (s) => s.state === 'idle' && s.totals.archived === BACKFILL + LIVE,
    120_000,
  );
  await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [{ id, accountId: id }]);
  await recordHistory(stack.temporal.client, id, 'live-lane');
}, 180_000);

it('leases live items again at once when a 429 hands them back unsent, instead of leaving them for the backfill batch', async () => {
  const { id, token } = await backfillRunning('lane-back');

  // Five live items at once: the lane plans them a tenth of a second apart. Once it has leased
  // them, the next upload is answered 429, and those planned before it and not yet sent go back.
  const live = await insertItems(stack.database.db, id, token, stack.media.url, 5, { kind: 'sms' });
  const insertedAt = Date.now();
  await wakeCustomer(stack.temporal.client, id);
  await eventually(async () => {
    const [row] = await stack.database.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM archive_items WHERE id = ANY($1) AND state = 'pending'`,
      [live],
    );
    return Number(row?.n) === 0 || undefined;
  }, 10_000);
  stack.emulator.queueFaults(id, [{ route: 'files/upload', fault: 'too_many_requests', retryAfter: 2 }]);

  const at = await Promise.all(live.map((item) => eventually(() => archivedAt(item), 20_000, 'a live item archived')));
  // About the Retry-After and a lease more; the batch they would otherwise wait for lasts 30 s.
  expect(Math.max(...at) - insertedAt).toBeLessThan(8_000);
  expect(await backfillLeft(id)).toBeGreaterThan(100);
  await statusWhen(stack.temporal.client, id, (s) => s.state === 'idle' && s.totals.archived === BACKFILL + 5, 120_000);
  await expectArchivedExactlyOnce(stack.database.db, stack.emulator, [{ id, accountId: id }]);
}, 180_000);
