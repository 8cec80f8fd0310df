import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dropboxContentHash } from '../../activities/dropbox/content-hash.js';
import { appendAuditEvent, auditEvents, auditHash, auditEventsAfter, verifyAuditChain } from '../../db/audit.js';
import { deferItem, markManyArchived } from '../../db/items.js';
import { dbFromConnection } from '../../db/pool.js';
import { runActivity } from '../support/activity-env.js';
import { expectedContent, insertItems } from '../support/items.js';
import { useActivityStack } from '../support/activity-stack.js';
import { uniqueName } from '../support/stack.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = 'token-audit-trail';
const WORKER = 'audit-test-worker@host';

const stack = useActivityStack({
  emulator: { accounts: [{ token: TOKEN, accountId: 'acct' }] },
  activities: { leaseTtlMs: 60_000, workerIdentity: WORKER },
});

const trail = (customerId: string) => auditEventsAfter(stack.database.db, customerId, 0, 10_000);

/** Runs `npm run archiver -- …` as operators do, against this file's database only. */
async function archiver(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'client/cli.ts', ...args],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: stack.database.url, ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Changes a stored row as a superuser would, past the append-only trigger. */
async function tamper(statement: string, values: unknown[]): Promise<void> {
  const client = await stack.database.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
    await client.query(statement, values);
    await client.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

/** A customer with a chain of `n` operator events. */
async function chainOf(n: number): Promise<string> {
  const customer = uniqueName('chain');
  for (let i = 0; i < n; i++) {
    // Rows a few ms apart, so a time window can fall between two of them.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await stack.database.db.transaction((tx) =>
      appendAuditEvent(tx, {
        customerId: customer,
        kind: 'operator.action',
        actor: 'alice',
        command: 'pause',
        details: { args: { id: customer, reason: `reason ${i}` } },
      }),
    );
  }
  return customer;
}

describe('archival audit rows', () => {
  it('records each archived item with its path, content hash, rev, attempt and the worker, in the chain', async () => {
    const customer = uniqueName('archived');
    const ids = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 2, { bytes: 5_000 });
    const batch = await runActivity(stack.activities.fetchBatch, customer, 2);
    for (const itemId of ids)
      expect(
        await runActivity(stack.activities.uploadItem, { customerId: customer, itemId, leaseToken: batch.leaseToken }),
      ).toMatchObject({ status: 'archived' });
    const rows = await trail(customer);
    expect(rows).toHaveLength(2);
    for (const [i, itemId] of ids.entries()) {
      const [item] = await stack.database.db.query<{
        remote_path: string;
        remote_rev: string;
        content_hash: string;
        metadata: { media: string; bytes: number };
      }>('SELECT remote_path, remote_rev, content_hash, metadata FROM archive_items WHERE id = $1', [itemId]);
      expect(item?.content_hash).toBe(dropboxContentHash(expectedContent(item!.metadata, 'voicemail')));
      expect(rows[i]).toMatchObject({
        seq: i + 1,
        kind: 'item.archived',
        itemId,
        remotePath: item?.remote_path,
        remoteRev: item?.remote_rev,
        contentHash: item?.content_hash,
        attempt: 1,
        actor: WORKER,
        details: { sizeBytes: 5_000, activityAttempt: 1 },
      });
    }
    expect(rows[1]?.prevHash).toBe(rows[0]?.hash);
    expect(await verifyAuditChain(stack.database.db, customer)).toEqual({ intact: true, rows: 2 });
  });

  it('records items archived by a batch commit', async () => {
    const customer = uniqueName('committed');
    const ids = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 3);
    const batch = await runActivity(stack.activities.fetchBatch, customer, 3);
    const staged = [];
    for (const itemId of ids) {
      const done = await runActivity(stack.activities.stageItem, {
        customerId: customer,
        itemId,
        leaseToken: batch.leaseToken,
      });
      if (done.status === 'staged') staged.push(done.staged);
    }
    const outcome = await runActivity(stack.activities.commitSessions, customer, batch.leaseToken, staged);
    expect(outcome.archived).toEqual(ids);
    const rows = await trail(customer);
    expect(rows.map((r) => [r.kind, r.itemId, r.actor])).toEqual(ids.map((id) => ['item.archived', id, WORKER]));
    expect(rows.every((r) => r.remoteRev && r.contentHash && r.remotePath)).toBe(true);
  });

  it('records an item that became failed, with its reason', async () => {
    const customer = uniqueName('failed');
    const [itemId] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 1, {
      sourceUrl: `${stack.media.url}/missing`,
    });
    const batch = await runActivity(stack.activities.fetchBatch, customer, 1);
    const outcome = await runActivity(stack.activities.uploadItem, {
      customerId: customer,
      itemId: itemId as string,
      leaseToken: batch.leaseToken,
    });
    expect(outcome.status).toBe('failed');
    const rows = await trail(customer);
    expect(rows).toEqual([
      expect.objectContaining({
        kind: 'item.failed',
        itemId,
        attempt: 1,
        actor: WORKER,
        details: expect.objectContaining({ reason: expect.stringContaining('404') }),
      }),
    ]);
  });

  it('records an item given up after too many failed attempts, and none for one that only waits', async () => {
    const customer = uniqueName('gave_up');
    const [waits, givesUp] = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 2);
    const batch = await runActivity(stack.activities.fetchBatch, customer, 2);
    const policy = { initialDelayMs: 1000, maxDelayMs: 1000, maxAgeMs: 3_600_000 };
    const by = { actor: WORKER };
    await deferItem(stack.database.db, waits!, batch.leaseToken, 'source 503', { ...policy, maxAttempts: 5 }, by);
    await deferItem(stack.database.db, givesUp!, batch.leaseToken, 'source 503', { ...policy, maxAttempts: 1 }, by);
    const rows = await trail(customer);
    expect(rows).toEqual([
      expect.objectContaining({
        kind: 'item.failed',
        itemId: givesUp,
        details: { reason: expect.stringMatching(/^gave up after 1 failed attempts .*: source 503$/) },
      }),
    ]);
  });

  it('marks several items of two customers in one transaction, each with its row in its own chain, and leaves an item whose lease was lost', async () => {
    const [one, two] = [uniqueName('many_a'), uniqueName('many_b')];
    const marks = [];
    for (const customer of [one, two]) {
      const ids = await insertItems(stack.database.db, customer, TOKEN, stack.media.url, 3);
      const { leaseToken } = await runActivity(stack.activities.fetchBatch, customer, 3);
      for (const [n, itemId] of ids.entries())
        marks.push({
          itemId,
          // The last item of the second customer was leased again by someone else.
          leaseToken: customer === two && n === 2 ? randomUUID() : leaseToken,
          remote: { path: `/a/${itemId}`, rev: `rev${itemId}`, contentHash: 'f'.repeat(64), size: 10 },
          by: { actor: WORKER, details: { activityAttempt: 1 } },
        });
    }
    const marked = await markManyArchived(stack.database.db, marks);
    expect([...marked].sort()).toEqual(
      marks
        .slice(0, 5)
        .map((m) => m.itemId)
        .sort(),
    );
    const lost = marks[5]!.itemId;
    const [row] = await stack.database.db.query<{ state: string }>('SELECT state FROM archive_items WHERE id = $1', [
      lost,
    ]);
    expect(row?.state).toBe('leased');
    for (const [customer, count] of [
      [one, 3],
      [two, 2],
    ] as const) {
      const rows = await trail(customer);
      expect(rows.map((r) => [r.seq, r.kind, r.remotePath])).toEqual(
        marks
          .filter((m) => rows.some((r) => r.itemId === m.itemId))
          .map((m, i) => [i + 1, 'item.archived', m.remote.path]),
      );
      expect(rows).toHaveLength(count);
      expect(await verifyAuditChain(stack.database.db, customer)).toEqual({ intact: true, rows: count });
    }
  });

  it('keeps one chain when workers archive the same customer at once', async () => {
    const customer = uniqueName('concurrent');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        stack.database.db.transaction((tx) =>
          appendAuditEvent(tx, { customerId: customer, kind: 'item.archived', actor: `w${i % 4}`, itemId: String(i) }),
        ),
      ),
    );
    const rows = await trail(customer);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await verifyAuditChain(stack.database.db, customer)).toEqual({ intact: true, rows: 20 });
  });
});

describe('append-only', () => {
  it('refuses UPDATE and DELETE through the trigger, even to the owner', async () => {
    const customer = await chainOf(1);
    await expect(
      stack.database.db.query(`UPDATE audit_events SET actor = 'mallory' WHERE customer_id = $1`, [customer]),
    ).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(
      stack.database.db.query('DELETE FROM audit_events WHERE customer_id = $1', [customer]),
    ).rejects.toThrow(/append-only: DELETE refused/);
    await expect(stack.database.db.query('TRUNCATE audit_events')).rejects.toThrow(/append-only: TRUNCATE refused/);
  });

  it('lets the archiver_worker role insert into the trail but not update it', async () => {
    const customer = uniqueName('role');
    const client = await stack.database.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL ROLE archiver_worker');
      await appendAuditEvent(dbFromConnection(client), {
        customerId: customer,
        kind: 'item.archived',
        actor: WORKER,
      });
      await client.query('SAVEPOINT before_update');
      const refused = await client
        .query(`UPDATE audit_events SET actor = 'mallory' WHERE customer_id = $1`, [customer])
        .catch((err: { code?: string; message: string }) => err);
      // Refused by the grants, before the trigger is reached.
      expect(refused).toMatchObject({ code: '42501', message: expect.stringMatching(/permission denied/) });
      await client.query('ROLLBACK TO SAVEPOINT before_update');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await trail(customer)).toHaveLength(1);
  });
});

describe('archiver audit verify', () => {
  it('passes an intact chain', async () => {
    const customer = await chainOf(3);
    const result = await archiver(['audit', 'verify', customer]);
    expect(result).toMatchObject({ code: 0, stdout: expect.stringContaining('intact, 3 rows') });
  });

  it('names the row that was changed', async () => {
    const customer = await chainOf(4);
    await tamper(`UPDATE audit_events SET actor = 'mallory' WHERE customer_id = $1 AND seq = 3`, [customer]);
    const result = await archiver(['audit', 'verify', customer]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/broken at row 3 .*hash does not match its fields/);
  });

  it('names the row after one that was deleted, and a deleted last row', async () => {
    const customer = await chainOf(4);
    await tamper('DELETE FROM audit_events WHERE customer_id = $1 AND seq = 2', [customer]);
    const middle = await archiver(['audit', 'verify', customer]);
    expect(middle.code).toBe(1);
    expect(middle.stderr).toMatch(/broken at row 3 .*row 2 is missing/);

    const tail = await chainOf(3);
    await tamper('DELETE FROM audit_events WHERE customer_id = $1 AND seq = 3', [tail]);
    const last = await archiver(['audit', 'verify', tail]);
    expect(last.code).toBe(1);
    expect(last.stderr).toMatch(/broken at row 3: .*last rows were deleted/);
  });

  it('names the row after a changed row whose hash was recomputed to match', async () => {
    const customer = await chainOf(3);
    const [row] = await auditEventsAfter(stack.database.db, customer, 1, 1);
    const forged = { ...row!, actor: 'mallory' };
    await tamper('UPDATE audit_events SET actor = $2, hash = $3 WHERE id = $1', [
      row!.id,
      forged.actor,
      auditHash(forged),
    ]);
    expect(await verifyAuditChain(stack.database.db, customer)).toMatchObject({
      intact: false,
      seq: 3,
      problem: expect.stringContaining('does not match row 2'),
    });
  });

  it('refuses an unknown customer', async () => {
    const result = await archiver(['audit', 'verify', 'nobody_here']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown customer "nobody_here"');
  });
});

describe('archiver audit export', () => {
  it('streams the rows in a time window as jsonl and csv', async () => {
    const customer = await chainOf(3);
    const rows = await trail(customer);
    const [first, second] = rows;
    const since = first!.recordedAt.toISOString();
    const jsonl = await archiver(['audit', 'export', customer, '--since', since, '--format', 'jsonl']);
    expect(jsonl.code).toBe(0);
    const lines = jsonl.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(lines[0]).toMatchObject({ kind: 'operator.action', actor: 'alice', hash: first!.hash });

    // --until excludes its own instant: the window is [since, until).
    const until = new Date(second!.recordedAt.getTime() + 1).toISOString();
    const csv = await archiver([
      'audit',
      'export',
      customer,
      '--since',
      second!.recordedAt.toISOString(),
      '--until',
      until,
      '--format',
      'csv',
    ]);
    expect(csv.code).toBe(0);
    const [header, ...body] = csv.stdout.trim().split('\n');
    expect(header).toBe(
      'seq,recorded_at,customer_id,kind,item_id,remote_path,content_hash,remote_rev,attempt,actor,command,details,prev_hash,hash',
    );
    expect(body.length).toBeGreaterThanOrEqual(1);
    expect(body[0]).toContain(`2,${second!.recordedAt.toISOString()},${customer},operator.action`);
    expect(body[0]).toContain('"{""args"":{""id"":');
    expect(body.every((line) => !line.startsWith('1,'))).toBe(true);

    const none = await archiver(['audit', 'export', customer, '--until', '2000-01-01']);
    expect(none).toMatchObject({ code: 0, stdout: '' });
  });

  it('reads a long trail page by page, in order, without skipping or repeating a row', async () => {
    const customer = await chainOf(7);
    const seen: number[] = [];
    for await (const row of auditEvents(stack.database.db, customer, {}, 3)) seen.push(row.seq);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('says what a bad date or an unknown customer is', async () => {
    const badDate = await archiver(['audit', 'export', 'x', '--since', 'yesterday']);
    expect(badDate.code).toBe(2);
    expect(badDate.stderr).toContain('--since must be a date like 2026-11-01');
    const unknown = await archiver(['audit', 'export', 'nobody_here', '--format', 'csv']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown customer "nobody_here"');
    const help = await archiver(['audit', 'export', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--since <time>');
  });
});

describe('operator actions', () => {
  it('records a CLI command with its customer, arguments and operator, never a token', async () => {
    const customer = uniqueName('operator');
    const secret = 'sl.secret-token-that-must-not-be-recorded';
    const added = await archiver(['customers', 'add', customer, '--name', 'Acme', '--access-token', secret], {
      ARCHIVER_OPERATOR: 'carol@example.com',
    });
    expect(added.code).toBe(0);
    const rows = await trail(customer);
    expect(rows).toEqual([
      expect.objectContaining({
        kind: 'operator.action',
        command: 'customers add',
        actor: 'carol@example.com',
        details: { args: { id: customer, name: 'Acme', accessToken: '[redacted]' } },
      }),
    ]);
    const [stored] = await stack.database.db.query<{ text: string }>(
      'SELECT row_to_json(a)::text AS text FROM audit_events a WHERE customer_id = $1',
      [customer],
    );
    expect(stored?.text).not.toContain(secret);

    // A read changes nothing and leaves no row; a refused command leaves none either.
    expect((await archiver(['customers', 'list'])).code).toBe(0);
    expect((await archiver(['customers', 'add', uniqueName('noname')])).code).toBe(2);
    expect(await trail(customer)).toHaveLength(1);
  });

  it("records a command on no one customer in the '*' chain", async () => {
    const rotated = await archiver(['rotate-secrets'], { ARCHIVER_OPERATOR: 'erin' });
    expect(rotated.code).toBe(0);
    expect(await trail('*')).toEqual([
      expect.objectContaining({
        kind: 'operator.action',
        command: 'rotate-secrets',
        actor: 'erin',
        details: { args: {} },
      }),
    ]);
    expect(await archiver(['audit', 'verify', '*'])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('intact, 1 rows'),
    });
  });

  it('takes the operator from the OS user without ARCHIVER_OPERATOR', async () => {
    const customer = uniqueName('os_user');
    const added = await archiver(['customers', 'add', customer, '--name', 'Acme'], { ARCHIVER_OPERATOR: '' });
    expect(added.code).toBe(0);
    const [row] = await trail(customer);
    expect(row?.actor).toBe(userInfo().username);
  });
});
