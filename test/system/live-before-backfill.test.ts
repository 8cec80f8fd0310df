import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { upsertCustomer } from '../../db/customers.js';
import { insertPendingItems, leaseItems, skipBeforeBackfill, type NewItem } from '../../db/items.js';
import type { Db } from '../../db/pool.js';
import { runActivity } from '../support/activity-env.js';
import { testKeyring } from '../support/secret-keys.js';
import { freshDatabase, uniqueName, type TestDatabase } from '../support/stack.js';

let database: TestDatabase;
beforeAll(async () => {
  database = await freshDatabase();
});
afterAll(async () => {
  await database?.close();
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TTL = 60_000;

/** Inserts `count` SMS items of `customerId` that occurred `agoMs` before now; returns their ids in order. */
async function insertAgo(customerId: string, count: number, agoMs: number): Promise<string[]> {
  await upsertCustomer(database.db, testKeyring(), { id: customerId, name: `Customer ${customerId}` });
  const before = await maxId();
  const occurredAt = new Date(Date.now() - agoMs);
  for (let from = 0; from < count; from += 1000) {
    const items: NewItem[] = Array.from({ length: Math.min(1000, count - from) }, (_, n) => ({
      kind: 'sms',
      occurredAt,
      metadata: { n: from + n },
      sourceUrl: null,
      body: `sms ${from + n}`,
      sizeBytes: 5,
    }));
    await insertPendingItems(database.db, customerId, items);
  }
  const rows = await database.db.query<{ id: string }>(
    'SELECT id FROM archive_items WHERE customer_id = $1 AND id > $2 ORDER BY id',
    [customerId, before],
  );
  return rows.map((r) => String(r.id));
}

async function maxId(): Promise<string> {
  const [row] = await database.db.query<{ id: string }>('SELECT coalesce(max(id), 0) AS id FROM archive_items');
  return String(row?.id ?? 0);
}

const lease = (customerId: string, limit: number, windowMs = DAY) =>
  leaseItems(database.db, customerId, limit, randomUUID(), TTL, windowMs).then((items) => items.map((i) => i.id));

async function states(customerId: string): Promise<Record<string, number>> {
  const rows = await database.db.query<{ state: string; n: string }>(
    'SELECT state, count(*) AS n FROM archive_items WHERE customer_id = $1 GROUP BY state',
    [customerId],
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

describe('live items before backfill', () => {
  it('fetchBatch leases 5 live items before 200 older pending ones, then the backfill in id order', async () => {
    const customer = uniqueName('live');
    const old = await insertAgo(customer, 200, 30 * DAY);
    const live = await insertAgo(customer, 5, 0);
    const activities = createActivities({ db: database.db, keyring: testKeyring(), leaseTtlMs: TTL });
    const first = await runActivity(activities.fetchBatch, customer, 10);
    // Live first, in the order the batch uploads them, and the rest of the batch from the backfill.
    expect(first.items.map((i) => i.id)).toEqual([...live, ...old.slice(0, 5)]);
    expect(first.backlog).toBe(195);
    const second = await runActivity(activities.fetchBatch, customer, 10);
    expect(second.items.map((i) => i.id)).toEqual(old.slice(5, 15));
  });

  it('honours the live window: an item 2 h old is live in a 6 h window and backfill in a 1 h one', async () => {
    const narrow = uniqueName('window_1h');
    const narrowOld = await insertAgo(narrow, 20, 3 * DAY);
    const narrowRecent = await insertAgo(narrow, 3, 2 * HOUR);
    expect(await lease(narrow, 5, HOUR)).toEqual(narrowOld.slice(0, 5));

    const wide = uniqueName('window_6h');
    const wideOld = await insertAgo(wide, 20, 3 * DAY);
    const wideRecent = await insertAgo(wide, 3, 2 * HOUR);
    expect(await lease(wide, 5, 6 * HOUR)).toEqual([...wideRecent, ...wideOld.slice(0, 2)]);

    // Through the worker's setting too.
    const viaActivities = uniqueName('window_activity');
    const viaOld = await insertAgo(viaActivities, 20, 3 * DAY);
    await insertAgo(viaActivities, 3, 2 * HOUR);
    const activities = createActivities({ db: database.db, keyring: testKeyring(), liveWindowMs: HOUR });
    const batch = await runActivity(activities.fetchBatch, viaActivities, 5);
    expect(batch.items.map((i) => i.id)).toEqual(viaOld.slice(0, 5));
    expect(narrowRecent).toHaveLength(3);
  });

  it('never leases items that occurred before backfill_since: those there and those inserted later are skipped', async () => {
    const customer = uniqueName('since');
    const tooOld = await insertAgo(customer, 30, 90 * DAY);
    const backfill = await insertAgo(customer, 10, 20 * DAY);
    // One of the too-old items was leased before the cut-off was set, and its lease expired.
    await database.db.query(
      `UPDATE archive_items SET state = 'leased', lease_token = gen_random_uuid(), lease_expires_at = now() - interval '1 minute'
        WHERE id = $1`,
      [tooOld[0]],
    );
    await upsertCustomer(database.db, testKeyring(), {
      id: customer,
      name: `Customer ${customer}`,
      backfillSince: new Date(Date.now() - 60 * DAY),
    });
    expect(await skipBeforeBackfill(database.db, customer)).toEqual({ skipped: 30, requeued: 0 });
    const live = await insertAgo(customer, 2, 0);
    // Items of the old history may keep arriving after the customer was added.
    const lateTooOld = await insertAgo(customer, 5, 70 * DAY);

    const leased: string[] = [];
    for (let round = 0; round < 10; round++) leased.push(...(await lease(customer, 4)));
    expect(leased).toEqual([...live, ...backfill]);
    expect(await states(customer)).toEqual({ leased: 12, skipped: 35 });
    const skipped = await database.db.query<{ id: string; lease_token: string | null }>(
      `SELECT id, lease_token FROM archive_items WHERE customer_id = $1 AND state = 'skipped' ORDER BY id`,
      [customer],
    );
    expect(skipped.map((r) => String(r.id))).toEqual([...tooOld, ...lateTooOld]);
    expect(skipped.every((r) => r.lease_token === null)).toBe(true);

    // Moving the cut-off earlier brings back the items it now covers, and only those.
    await upsertCustomer(database.db, testKeyring(), {
      id: customer,
      name: `Customer ${customer}`,
      backfillSince: new Date(Date.now() - 80 * DAY),
    });
    expect(await skipBeforeBackfill(database.db, customer)).toEqual({ skipped: 0, requeued: 5 });
    expect(await lease(customer, 100)).toEqual(lateTooOld);
  });

  it('leases a customer with a 20,000-item backlog by index, reading a few rows, not the backlog', async () => {
    // Most of a database is archived items, of this customer and others, older than its backlog.
    const neighbour = uniqueName('neighbour');
    await insertAgo(neighbour, 5_000, 60 * DAY);
    await database.db.query(
      `UPDATE archive_items SET state = 'archived', remote_path = '/x/' || id, content_hash = 'h' WHERE customer_id = $1`,
      [neighbour],
    );
    const customer = uniqueName('big');
    await insertAgo(customer, 1_000, 400 * DAY);
    await insertAgo(customer, 20_000, 30 * DAY);
    await upsertCustomer(database.db, testKeyring(), {
      id: customer,
      name: `Customer ${customer}`,
      backfillSince: new Date(Date.now() - 365 * DAY),
    });
    expect(await skipBeforeBackfill(database.db, customer)).toEqual({ skipped: 1_000, requeued: 0 });
    // Other customers' live rows, so the index has to pick this customer's out.
    await insertAgo(uniqueName('neighbour'), 2_000, 0);
    const live = await insertAgo(customer, 5, 0);
    await database.db.query('ANALYZE archive_items');
    await database.db.query('ANALYZE customers');

    const plan = await explainLease(database.db, customer, 100);
    const scans = planNodes(plan).filter(
      (n) => n['Relation Name'] === 'archive_items' && n['Node Type'] !== 'ModifyTable',
    );
    expect(scans.length).toBeGreaterThan(0);
    for (const scan of scans) expect(scan['Node Type'], JSON.stringify(plan)).toMatch(/^Index (Only )?Scan$/);
    const read = scans.reduce(
      (sum, s) => sum + s['Actual Rows'] * s['Actual Loops'] + (s['Rows Removed by Filter'] ?? 0),
      0,
    );
    // 100 leased (5 live, 95 backfill), plus a few rows filtered on the way: far from the 20,000
    // of the backlog, or the 28,000 of the table.
    expect(read, JSON.stringify(plan)).toBeLessThan(500);
    const sorts = planNodes(plan).filter((n) => n['Node Type'] === 'Sort');
    for (const sort of sorts) expect(sort['Actual Rows'], JSON.stringify(plan)).toBeLessThan(500);
    console.log(
      `lease of 100 from a 20,000-item backlog: ${plan['Actual Total Time'] ?? '?'} ms, archive_items scans: ${scans
        .map(
          (s) =>
            `${s['Node Type']} on ${s['Index Name']} (${s['Actual Rows']} rows, ${s['Rows Removed by Filter'] ?? 0} filtered)`,
        )
        .join('; ')}`,
    );

    // And the real lease takes the live ones first.
    expect((await lease(customer, 100)).slice(0, 5)).toEqual(live);
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Actual Total Time'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}

/**
 * EXPLAIN ANALYZE of the very statement leaseItems runs (captured through a Db that records it),
 * in a transaction that is rolled back, so nothing stays leased.
 */
async function explainLease(db: Db, customerId: string, limit: number): Promise<PlanNode> {
  let captured: { text: string; values: readonly unknown[] } | undefined;
  const recorder: Db = {
    query: <Row extends object>(text: string, values: readonly unknown[] = []) => {
      captured = { text, values };
      return Promise.resolve([] as Row[]);
    },
    transaction: () => Promise.reject(new Error('not used')),
  };
  await leaseItems(recorder, customerId, limit, randomUUID(), TTL, DAY);
  if (!captured) throw new Error('leaseItems ran no statement');
  const { text, values } = captured;
  return db
    .transaction(async (tx) => {
      const [row] = await tx.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`,
        values,
      );
      throw new Rollback(row?.['QUERY PLAN'][0].Plan);
    })
    .catch((err: unknown) => {
      if (err instanceof Rollback && err.plan) return err.plan;
      throw err;
    });
}

class Rollback extends Error {
  constructor(readonly plan: PlanNode | undefined) {
    super('rollback');
  }
}
